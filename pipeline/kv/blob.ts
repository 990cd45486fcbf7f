/**
 * Blobs: byte strings of any size in Deno KV. A blob is deflated (JSON pages shrink 4-6×: a fifth
 * of the bytes for KV to write and keep) and split into parts of at most PART_BYTES, under the
 * 64 KiB value limit, stored under `[...key, i]` with `i` a bigint; readers group parts back by
 * their key prefix. Parts keyed by a plain number are a blob stored as it is (earlier versions),
 * still read.
 */
import { deflateRawSync, inflateRawSync } from "node:zlib";

export const PART_BYTES = 60_000;

/** Fastest deflate: most of the size for a fraction of a millisecond per commit. */
const DEFLATE_LEVEL = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One KV write: a value to set, or null to delete. */
export interface Mutation {
  readonly key: Deno.KvKey;
  readonly value: Uint8Array | number | string | null;
}

/** Where a blob's parts are: enough to delete it. */
export interface StoredBlob {
  readonly key: Deno.KvKey;
  readonly parts: number;
  /** False for a blob stored as it is, by an earlier version. */
  readonly deflated: boolean;
}

/**
 * Mutations that store `data` (text as UTF-8) deflated under `key`, in parts of at most
 * PART_BYTES bytes; `stored` says where they are.
 */
export function blobMutations(
  key: Deno.KvKey,
  data: string | Uint8Array,
): { mutations: Mutation[]; stored: StoredBlob } {
  const bytes = deflateRawSync(typeof data === "string" ? encoder.encode(data) : data, {
    level: DEFLATE_LEVEL,
  });
  const mutations: Mutation[] = [];
  for (let i = 0, part = 0; i < bytes.length || part === 0; i += PART_BYTES, part++) {
    mutations.push({ key: [...key, BigInt(part)], value: bytes.subarray(i, i + PART_BYTES) });
  }
  return { mutations, stored: { key, parts: mutations.length, deflated: true } };
}

/** Deletes of a blob's parts. */
export function blobDeletes(blob: StoredBlob): Mutation[] {
  return Array.from({ length: blob.parts }, (_, i) => ({
    key: [...blob.key, blob.deflated ? BigInt(i) : i],
    value: null,
  }));
}

/** A blob read back: where it is, and its bytes. */
export interface Blob extends StoredBlob {
  readonly bytes: Uint8Array;
  /** The bytes as UTF-8 text. */
  readonly text: string;
}

/** Where a blob read back is stored, without its bytes (to keep, for deleting it later). */
export function storedOf(blob: StoredBlob): StoredBlob {
  return { key: blob.key, parts: blob.parts, deflated: blob.deflated };
}

/** Lists the blobs under a prefix, or in a key range, in key order, joining their parts. */
export async function* listBlobs(
  kv: Deno.Kv,
  selector: Deno.KvKey | { start: Deno.KvKey; end: Deno.KvKey },
): AsyncGenerator<Blob> {
  let currentKey: Deno.KvKey | null = null;
  let deflated = false;
  let chunks: Uint8Array[] = [];
  const flush = (): Blob => {
    const bytes = joinParts(chunks, deflated);
    return {
      key: currentKey!,
      bytes,
      get text() {
        return decoder.decode(bytes);
      },
      parts: chunks.length,
      deflated,
    };
  };
  const range: Deno.KvListSelector = "start" in selector
    ? selector as { start: Deno.KvKey; end: Deno.KvKey }
    : { prefix: selector as Deno.KvKey };
  for await (const entry of kv.list<Uint8Array>(range, { batchSize: 500 })) {
    const blobKey = entry.key.slice(0, -1);
    const partDeflated = typeof entry.key[entry.key.length - 1] === "bigint";
    if (currentKey && (!sameKey(currentKey, blobKey) || partDeflated !== deflated)) {
      yield flush();
      chunks = [];
    }
    currentKey = blobKey;
    deflated = partDeflated;
    chunks.push(entry.value);
  }
  if (currentKey) yield flush();
}

/** Deno KV's limit of keys per `getMany`. */
const GET_MANY_KEYS = 10;

/**
 * The bytes of each blob, in order (null for one not stored), read with as few KV calls as
 * their keys allow: ten one-part blobs per call, each larger one with one listing.
 */
export async function readBlobs(
  kv: Deno.Kv,
  blobs: readonly StoredBlob[],
): Promise<(Uint8Array | null)[]> {
  const out: (Uint8Array | null)[] = blobs.map(() => null);
  const single = blobs.flatMap((b, i) => b.parts === 1 ? [i] : []);
  for (let at = 0; at < single.length; at += GET_MANY_KEYS) {
    const chunk = single.slice(at, at + GET_MANY_KEYS);
    const entries = await kv.getMany<Uint8Array[]>(
      chunk.map((i) => [...blobs[i].key, blobs[i].deflated ? 0n : 0]),
    );
    entries.forEach((e, j) => {
      const blob = blobs[chunk[j]];
      if (e.value !== null) out[chunk[j]] = joinParts([e.value], blob.deflated);
    });
  }
  for (let i = 0; i < blobs.length; i++) {
    if (blobs[i].parts === 1) continue;
    for await (const blob of listBlobs(kv, blobs[i].key)) {
      if (blob.key.length === blobs[i].key.length) out[i] = blob.bytes;
    }
  }
  return out;
}

/** A blob's bytes from its parts. */
function joinParts(chunks: readonly Uint8Array[], deflated: boolean): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const joined = chunks.length === 1 ? chunks[0] : new Uint8Array(total);
  if (chunks.length > 1) {
    let at = 0;
    for (const c of chunks) {
      joined.set(c, at);
      at += c.length;
    }
  }
  return deflated ? new Uint8Array(inflateRawSync(joined)) : joined;
}

/** Whether two KV keys are equal part by part. */
export function sameKey(a: Deno.KvKey, b: Deno.KvKey): boolean {
  return a.length === b.length && a.every((part, i) => part === b[i]);
}

/** Approximate bytes a mutation adds to an atomic commit. */
export function mutationBytes(m: Mutation): number {
  let n = 16;
  for (const part of m.key) n += typeof part === "string" ? part.length * 3 : 9;
  const v = m.value;
  if (v instanceof Uint8Array) n += v.length;
  else if (typeof v === "string") n += v.length * 3;
  else n += 8;
  return n;
}
