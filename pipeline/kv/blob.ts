/**
 * Values larger than Deno KV's 64 KiB limit are split into parts stored under `[...key, i]`;
 * readers group parts back by their key prefix.
 */
export const PART_BYTES = 60_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One KV write: a value to set, or null to delete. */
export interface Mutation {
  readonly key: Deno.KvKey;
  readonly value: Uint8Array | number | string | null;
}

/** Mutations that store `data` (text as UTF-8) under `key` in parts of at most PART_BYTES bytes. */
export function blobMutations(key: Deno.KvKey, data: string | Uint8Array): Mutation[] {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const out: Mutation[] = [];
  for (let i = 0, part = 0; i < bytes.length || part === 0; i += PART_BYTES, part++) {
    out.push({ key: [...key, part], value: bytes.subarray(i, i + PART_BYTES) });
  }
  return out;
}

/** Deletes of the parts of a blob written by blobMutations. */
export function blobDeletes(key: Deno.KvKey, parts: number): Mutation[] {
  return Array.from({ length: parts }, (_, i) => ({ key: [...key, i], value: null }));
}

/** A blob read back: its key without the part number, its bytes and how many parts it had. */
export interface Blob {
  readonly key: Deno.KvKey;
  readonly bytes: Uint8Array;
  /** The bytes as UTF-8 text. */
  readonly text: string;
  readonly parts: number;
}

/** Lists the blobs under a prefix, or in a key range, in key order, joining their parts. */
export async function* listBlobs(
  kv: Deno.Kv,
  selector: Deno.KvKey | { start: Deno.KvKey; end: Deno.KvKey },
): AsyncGenerator<Blob> {
  let currentKey: Deno.KvKey | null = null;
  let chunks: Uint8Array[] = [];
  const flush = (): Blob => {
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const joined = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      joined.set(c, at);
      at += c.length;
    }
    return {
      key: currentKey!,
      bytes: joined,
      get text() {
        return decoder.decode(joined);
      },
      parts: chunks.length,
    };
  };
  const range: Deno.KvListSelector = "start" in selector
    ? selector as { start: Deno.KvKey; end: Deno.KvKey }
    : { prefix: selector as Deno.KvKey };
  for await (const entry of kv.list<Uint8Array>(range, { batchSize: 500 })) {
    const blobKey = entry.key.slice(0, -1);
    if (currentKey && !sameKey(currentKey, blobKey)) {
      yield flush();
      chunks = [];
    }
    currentKey = blobKey;
    chunks.push(entry.value);
  }
  if (currentKey) yield flush();
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
