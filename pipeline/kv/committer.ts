import { type Mutation, mutationBytes } from "./blob.ts";

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

  constructor(readonly kv: Deno.Kv) {}

  /** Commits that needed the write-ahead log (they exceeded one atomic commit). */
  get walCommits(): number {
    return this.#walCommits;
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
    const groups = splitIntoAtomicGroups(mutations);
    if (groups.length === 1) {
      await this.#apply(groups[0]);
      return;
    }
    this.#walCommits++;
    const entries: Mutation[] = mutations.map((m, i) => ({
      key: [...WAL, "e", i],
      value: encodeEntry(m),
    }));
    for (const group of splitIntoAtomicGroups(entries)) await this.#apply(group);
    await this.#apply([{ key: [...WAL, "head"], value: mutations.length }]);
    await this.#finishWal(mutations);
  }

  /** Completes or discards a write-ahead log left by a crash. Call once at start-up. */
  async recover(): Promise<void> {
    const head = await this.kv.get<number>([...WAL, "head"]);
    const entries: Mutation[] = [];
    for await (const e of this.kv.list<Uint8Array>({ prefix: [...WAL, "e"] })) {
      entries.push(decodeEntry(e.value));
    }
    if (head.value !== null && entries.length === head.value) {
      await this.#finishWal(entries);
    } else {
      await this.#clearWal(entries.length);
    }
  }

  async #finishWal(mutations: readonly Mutation[]): Promise<void> {
    for (const group of splitIntoAtomicGroups(mutations)) await this.#apply(group);
    await this.#clearWal(mutations.length);
  }

  async #clearWal(count: number): Promise<void> {
    const deletes: Mutation[] = [{ key: [...WAL, "head"], value: null }];
    for (let i = 0; i < count; i++) deletes.push({ key: [...WAL, "e", i], value: null });
    // The head goes first so a crash mid-clear leaves a headless log, which is discarded.
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

// A WAL entry holds one mutation; its value (<= 60 000 bytes) plus key fits one KV value.
function encodeEntry(m: Mutation): Uint8Array {
  const v = m.value;
  const kind = v === null ? "d" : v instanceof Uint8Array ? "b" : typeof v === "number" ? "n" : "s";
  const header = encoder.encode(
    JSON.stringify({
      k: m.key.map(encodeKeyPart),
      t: kind,
      v: kind === "n" || kind === "s" ? v : undefined,
    }) +
      "\n",
  );
  if (!(v instanceof Uint8Array)) return header;
  const out = new Uint8Array(header.length + v.length);
  out.set(header);
  out.set(v, header.length);
  return out;
}

function decodeEntry(bytes: Uint8Array): Mutation {
  const nl = bytes.indexOf(10);
  const head = JSON.parse(decoder.decode(bytes.subarray(0, nl)));
  const key = (head.k as unknown[]).map(decodeKeyPart);
  switch (head.t) {
    case "d":
      return { key, value: null };
    case "b":
      return { key, value: bytes.slice(nl + 1) };
    default:
      return { key, value: head.v };
  }
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
