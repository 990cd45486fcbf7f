import { type Mutation, mutationBytes, PART_BYTES } from "./blob.ts";

/** Deno KV's per-commit limits, with headroom: 1 000 mutations and 800 KiB. */
export const MAX_MUTATIONS_PER_ATOMIC = 900;
export const MAX_BYTES_PER_ATOMIC = 700 * 1024;

const WAL: Deno.KvKey = ["wal"];

/**
 * Writes logical commits to Deno KV one at a time and all-or-nothing.
 *
 * A commit that fits KV's per-commit limits is one atomic operation. A larger one is first
 * written to a write-ahead log, made visible by one atomic write of the log's head, then
 * applied; `recover()` finishes an applied-but-interrupted log after a crash, and an
 * unfinished log without a head is discarded, so a crash never leaves half a commit.
 */
export class KvCommitter {
  #tail: Promise<unknown> = Promise.resolve();
  #walCommits = 0;
  #bytesWritten = 0;

  constructor(readonly kv: Deno.Kv) {}

  /** Commits that needed the write-ahead log (they exceeded one atomic commit). */
  get walCommits(): number {
    return this.#walCommits;
  }

  /** Approximate bytes of the mutations written so far (keys and values). */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Runs `fn` after every earlier queued commit, so commits land in call order. */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Writes `mutations` atomically. Must be called from inside `serialize`. */
  async write(mutations: readonly Mutation[]): Promise<void> {
    if (mutations.length === 0) return;
    for (const m of mutations) this.#bytesWritten += mutationBytes(m);
    const groups = splitIntoAtomicGroups(mutations);
    if (groups.length === 1) {
      await this.#apply(groups[0]);
      return;
    }
    this.#walCommits++;
    // The log is all mutations packed into one byte string, stored in parts of PART_BYTES.
    const packed = packMutations(mutations);
    const parts: Mutation[] = [];
    for (let at = 0, i = 0; at < packed.length; at += PART_BYTES, i++) {
      parts.push({ key: [...WAL, "p", i], value: packed.subarray(at, at + PART_BYTES) });
    }
    for (const group of splitIntoAtomicGroups(parts)) await this.#apply(group);
    await this.#apply([{ key: [...WAL, "head"], value: parts.length }]);
    await this.#finishWal(mutations, parts.length);
  }

  /** Completes or discards a write-ahead log left by a crash. Call once at start-up. */
  async recover(): Promise<void> {
    const head = await this.kv.get<number>([...WAL, "head"]);
    const parts: Uint8Array[] = [];
    for await (const e of this.kv.list<Uint8Array>({ prefix: [...WAL, "p"] })) parts.push(e.value);
    if (head.value !== null && parts.length === head.value) {
      await this.#finishWal(unpackMutations(concat(parts)), parts.length);
    } else {
      await this.#clearWal(parts.length);
    }
  }

  async #finishWal(mutations: readonly Mutation[], parts: number): Promise<void> {
    for (const group of splitIntoAtomicGroups(mutations)) await this.#apply(group);
    await this.#clearWal(parts);
  }

  async #clearWal(parts: number): Promise<void> {
    // The head goes first so a crash mid-clear leaves a headless log, which is discarded.
    await this.#apply([{ key: [...WAL, "head"], value: null }]);
    const deletes: Mutation[] = [];
    for (let i = 0; i < parts; i++) deletes.push({ key: [...WAL, "p", i], value: null });
    for (const group of splitIntoAtomicGroups(deletes)) await this.#apply(group);
  }

  async #apply(group: readonly Mutation[]): Promise<void> {
    const op = this.kv.atomic();
    for (const m of group) {
      if (m.value === null) op.delete(m.key);
      else op.set(m.key, m.value);
    }
    const result = await op.commit();
    if (!result.ok) throw new Error("Deno KV rejected an unconditional atomic commit");
  }
}

/** Splits mutations into groups that each fit one atomic commit, keeping their order. */
export function splitIntoAtomicGroups(mutations: readonly Mutation[]): Mutation[][] {
  const groups: Mutation[][] = [];
  let group: Mutation[] = [];
  let bytes = 0;
  for (const m of mutations) {
    const size = mutationBytes(m);
    if (
      group.length > 0 &&
      (group.length >= MAX_MUTATIONS_PER_ATOMIC || bytes + size > MAX_BYTES_PER_ATOMIC)
    ) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(m);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Packs mutations as [u32 header length][header JSON][u32 value length][value bytes] each. */
function packMutations(mutations: readonly Mutation[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const m of mutations) {
    const v = m.value;
    const kind = v === null
      ? "d"
      : v instanceof Uint8Array
      ? "b"
      : typeof v === "number"
      ? "n"
      : "s";
    const header = encoder.encode(JSON.stringify({
      k: m.key.map(encodeKeyPart),
      t: kind,
      v: kind === "n" || kind === "s" ? v : undefined,
    }));
    const value = v instanceof Uint8Array ? v : new Uint8Array(0);
    const lengths = new Uint8Array(8);
    const view = new DataView(lengths.buffer);
    view.setUint32(0, header.length);
    view.setUint32(4, value.length);
    chunks.push(lengths.subarray(0, 4), header, lengths.subarray(4), value);
    total += 8 + header.length + value.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function unpackMutations(bytes: Uint8Array): Mutation[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Mutation[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headerLength = view.getUint32(at);
    const head = JSON.parse(decoder.decode(bytes.subarray(at + 4, at + 4 + headerLength)));
    at += 4 + headerLength;
    const valueLength = view.getUint32(at);
    const value = bytes.slice(at + 4, at + 4 + valueLength);
    at += 4 + valueLength;
    const key = (head.k as unknown[]).map(decodeKeyPart);
    out.push({ key, value: head.t === "d" ? null : head.t === "b" ? value : head.v });
  }
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeKeyPart(part: Deno.KvKeyPart): unknown {
  if (typeof part === "bigint") return { big: part.toString() };
  if (part instanceof Uint8Array) return { bytes: Array.from(part) };
  return part;
}

function decodeKeyPart(part: unknown): Deno.KvKeyPart {
  if (part !== null && typeof part === "object") {
    const o = part as { big?: string; bytes?: number[] };
    if (o.big !== undefined) return BigInt(o.big);
    return new Uint8Array(o.bytes!);
  }
  return part as Deno.KvKeyPart;
}
