/**
 * Partition choice, in one place: Kafka's default partitioner (murmur2 with Kafka's seed) for
 * keyed records, so a key lands on the same partition in the embedded log as in a Kafka topic
 * with the same partition count; round robin for records without a key.
 */
const encoder = new TextEncoder();

/**
 * Kafka's `Utils.murmur2` over the first `length` bytes, returned as a signed 32-bit integer
 * like the Java original.
 */
export function murmur2(data: Uint8Array, length = data.length): number {
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4] & 0xff) | ((data[i4 + 1] & 0xff) << 8) | ((data[i4 + 2] & 0xff) << 16) |
      ((data[i4 + 3] & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  switch (length % 4) {
    case 3:
      h ^= (data[tail + 2] & 0xff) << 16;
    // falls through
    case 2:
      h ^= (data[tail + 1] & 0xff) << 8;
    // falls through
    case 1:
      h ^= data[tail] & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Reused for keys' UTF-8 bytes: partitioning allocates nothing per record. */
let scratch = new Uint8Array(256);

/** The partition Kafka's default partitioner picks for a non-null key (its UTF-8 bytes). */
export function partitionForKey(key: string, partitions: number): number {
  if (scratch.length < key.length * 3) scratch = new Uint8Array(key.length * 3);
  // ASCII keys (ids, almost always) are copied here; encodeInto is a call into the runtime.
  let written = key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) {
      written = encoder.encodeInto(key, scratch).written;
      break;
    }
    scratch[i] = c;
  }
  return (murmur2(scratch, written) & 0x7fffffff) % partitions;
}

/** Chooses partitions for records of one topic: by key, round robin without one. */
export class Partitioner {
  #next = 0;

  constructor(readonly partitions: number) {}

  partitionFor(key: string | null): number {
    return key === null ? this.#next++ % this.partitions : partitionForKey(key, this.partitions);
  }
}
