/**
 * A consumer group's committed offsets, stable (KIP-447): OffsetFetch version 7 with
 * `require_stable`, which kafkajs does not send (its OffsetFetch stops at version 4). Without it,
 * while a transaction that committed offsets is still being completed (a broker restarting loads
 * its transactions and writes their markers afterwards), the broker answers with the offsets from
 * before that transaction, and a restarted task would process its records again. With it the
 * broker says UNSTABLE_OFFSET_COMMIT until the transaction is complete, and the fetch waits.
 */
import { Buffer } from "node:buffer";

/** The offset a group committed for a partition (-1: none), with its metadata. */
export interface CommittedOffset {
  readonly partition: number;
  readonly offset: number;
  readonly metadata: string | null;
}

/** The part of kafkajs' internal cluster and broker this needs. */
export interface CoordinatorLookup {
  findGroupCoordinator(args: { groupId: string }): Promise<{
    connectionPool: { send(request: ProtocolRequest): Promise<unknown> };
  }>;
}

/** A request as kafkajs' connections send it: they write the header, we the rest. */
interface ProtocolRequest {
  readonly request: {
    readonly apiKey: number;
    readonly apiVersion: number;
    readonly apiName: string;
    encode(): Promise<{ buf: Buffer; buffer: Buffer }>;
  };
  readonly response: {
    decode(payload: Buffer): Promise<OffsetFetchResult>;
    parse(data: OffsetFetchResult): Promise<OffsetFetchResult>;
  };
}

/** What a response says: offsets by topic, or the first error (decoded, not thrown, so that
 * kafkajs does not log each wait for an unstable offset as an error). */
interface OffsetFetchResult {
  readonly offsets: Map<string, CommittedOffset[]>;
  readonly error: OffsetFetchError | null;
}

const OFFSET_FETCH = 9;
const UNSTABLE_OFFSET_COMMIT = 88;
/** Kafka error codes worth waiting out (coordinator moving or loading), beside UNSTABLE. */
const RETRIABLE = new Set([14, 15, 16]);

/** Thrown for a group or partition error; `code` is Kafka's error code. */
export class OffsetFetchError extends Error {
  constructor(readonly code: number, where: string) {
    super(
      code === UNSTABLE_OFFSET_COMMIT
        ? `a transaction committing offsets for ${where} is still open (UNSTABLE_OFFSET_COMMIT): waiting for it to commit or time out`
        : `OffsetFetch failed for ${where}: Kafka error code ${code}`,
    );
    this.name = "OffsetFetchError";
  }
}

/**
 * The committed offsets of `groupId` for the partitions of `topics`, once no transaction that
 * commits offsets for them is pending; waits up to `timeoutMs` for one to complete.
 */
export async function fetchStableOffsets(
  cluster: CoordinatorLookup,
  groupId: string,
  topics: readonly { topic: string; partitions: readonly number[] }[],
  timeoutMs = 60_000,
): Promise<Map<string, CommittedOffset[]>> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 20;; wait = Math.min(500, wait * 2)) {
    try {
      const coordinator = await cluster.findGroupCoordinator({ groupId });
      const result = await coordinator.connectionPool.send(
        offsetFetch(groupId, topics),
      ) as OffsetFetchResult;
      if (!result.error) return result.offsets;
      throw result.error;
    } catch (e) {
      const retriable = e instanceof OffsetFetchError &&
        (e.code === UNSTABLE_OFFSET_COMMIT || RETRIABLE.has(e.code));
      if (!retriable || Date.now() + wait > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}

function offsetFetch(
  groupId: string,
  topics: readonly { topic: string; partitions: readonly number[] }[],
): ProtocolRequest {
  return {
    request: {
      apiKey: OFFSET_FETCH,
      apiVersion: 7,
      apiName: "OffsetFetch",
      encode: () => {
        const w = new Writer();
        // Flexible versions have a request header v2: kafkajs writes v1, so its tagged fields
        // (none) lead the body.
        w.uvarint(0);
        w.compactString(groupId);
        w.uvarint(topics.length + 1);
        for (const t of topics) {
          w.compactString(t.topic);
          w.uvarint(t.partitions.length + 1);
          for (const p of t.partitions) w.int32(p);
          w.uvarint(0);
        }
        w.int8(1); // require_stable
        w.uvarint(0);
        const buf = Buffer.from(w.bytes());
        return Promise.resolve({ buf, buffer: buf });
      },
    },
    response: {
      decode: (payload) => Promise.resolve(decodeResponse(payload, groupId)),
      parse: (data) => Promise.resolve(data),
    },
  };
}

/** Reads a version 7 response (after the correlation id kafkajs has read). */
function decodeResponse(payload: Buffer, groupId: string): OffsetFetchResult {
  const r = new Reader(payload);
  r.skipTags(); // response header v1
  r.int32(); // throttle time
  const out = new Map<string, CommittedOffset[]>();
  let first: OffsetFetchError | null = null;
  for (let t = r.uvarint() - 1; t > 0; t--) {
    const topic = r.compactString()!;
    const partitions: CommittedOffset[] = [];
    for (let p = r.uvarint() - 1; p > 0; p--) {
      const partition = r.int32();
      const offset = r.int64();
      r.int32(); // leader epoch
      const metadata = r.compactString();
      const error = r.int16();
      r.skipTags();
      if (error !== 0) first ??= new OffsetFetchError(error, `${topic}[${partition}]`);
      partitions.push({ partition, offset, metadata });
    }
    r.skipTags();
    out.set(topic, partitions);
  }
  const error = r.int16();
  if (error !== 0) first = new OffsetFetchError(error, `group ${groupId}`);
  return { offsets: out, error: first };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

class Writer {
  #bytes: number[] = [];

  int8(v: number): void {
    this.#bytes.push(v & 0xff);
  }

  int32(v: number): void {
    this.#bytes.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  }

  uvarint(v: number): void {
    while (v >= 0x80) {
      this.#bytes.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    this.#bytes.push(v);
  }

  compactString(s: string): void {
    const b = encoder.encode(s);
    this.uvarint(b.length + 1);
    for (const x of b) this.#bytes.push(x);
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

class Reader {
  #at = 0;
  readonly #view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  int16(): number {
    return this.#view.getInt16((this.#at += 2) - 2);
  }

  int32(): number {
    return this.#view.getInt32((this.#at += 4) - 4);
  }

  int64(): number {
    return Number(this.#view.getBigInt64((this.#at += 8) - 8));
  }

  uvarint(): number {
    let v = 0;
    for (let shift = 0;; shift += 7) {
      const b = this.buf[this.#at++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  }

  compactString(): string | null {
    const n = this.uvarint();
    if (n === 0) return null;
    return decoder.decode(this.buf.subarray(this.#at, this.#at += n - 1));
  }

  /** Skips tagged fields. */
  skipTags(): void {
    for (let n = this.uvarint(); n > 0; n--) {
      this.uvarint(); // tag
      this.#at += this.uvarint();
    }
  }
}
