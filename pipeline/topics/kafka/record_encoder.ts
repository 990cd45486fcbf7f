/**
 * One record of a Kafka record batch (the format kafkajs calls Record v0), written in one pass
 * into a shared arena: kafkajs builds each record from a 512-byte buffer of its own plus one per
 * header, copies them together, and measures and writes each string with Buffer calls of its
 * own. The result is a kafkajs Encoder holding the record's bytes, as its record batch expects.
 * Records this does not handle (headers with several values, keys or values that are neither
 * text nor bytes, time deltas past 2^51 ms) go to kafkajs.
 */
import { Buffer } from "node:buffer";
import { isVarlongNumber, varintSize, writeVarint, zigZag32, zigZag64 } from "./varints.ts";

/** A record as kafkajs' produce request passes it. */
export interface RecordInput {
  offsetDelta?: unknown;
  timestampDelta?: unknown;
  key?: unknown;
  value?: unknown;
  headers?: unknown;
}

/** The shape of a kafkajs Encoder that its record batch reads: the bytes and their length. */
interface EncoderLike {
  buf: Uint8Array;
  offset: number;
}

const ARENA_BYTES = 1 << 20;
let arena = Buffer.allocUnsafe(ARENA_BYTES);
let used = 0;

/** Room for `n` bytes from `used` on (a new arena once this one is full; old ones live on while
 * records refer to them). */
function reserve(n: number): void {
  if (used + n <= arena.length) return;
  arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, n));
  used = 0;
}

const encoder = new TextEncoder();

/** Text up to this long is written in place (its length prefix fits 3 bytes); longer, encoded. */
const IN_PLACE_CHARS = 300_000;

/** A field as kafkajs writes it: a Buffer as it is, text as UTF-8, null for none. */
type Field = Uint8Array | string | null;

function isField(v: unknown): v is Field | undefined {
  return v === null || v === undefined || typeof v === "string" || Buffer.isBuffer(v);
}

/** The most bytes a field can take. */
function maxFieldSize(f: Field | undefined): number {
  if (f === null || f === undefined) return 1;
  return 5 + (typeof f === "string" ? 3 * f.length : f.length);
}

/** Header names as UTF-8, cached (a pipeline uses a handful). */
const headerNames = new Map<string, Uint8Array>();

function headerName(name: string): Uint8Array {
  let bytes = headerNames.get(name);
  if (!bytes) {
    bytes = encoder.encode(name);
    if (headerNames.size < 256) headerNames.set(name, bytes);
  }
  return bytes;
}

function writeField(out: Uint8Array, at: number, f: Field | undefined): number {
  if (f === null || f === undefined) return writeVarint(out, at, 1); // -1
  if (typeof f === "string" && f.length > IN_PLACE_CHARS) f = encoder.encode(f);
  if (typeof f !== "string") {
    at = writeVarint(out, at, zigZag32(f.length));
    out.set(f, at);
    return at + f.length;
  }
  // Text goes 3 bytes on (room for its length), then the length is written before it and the
  // text moved back when the length took fewer.
  const text = at + 3;
  let n = 0;
  if (f.length <= 32) {
    for (; n < f.length; n++) {
      const c = f.charCodeAt(n);
      if (c > 0x7f) break;
      out[text + n] = c;
    }
  }
  if (n < f.length) n = encoder.encodeInto(f, out.subarray(text, text + 3 * f.length)).written;
  const length = zigZag32(n);
  const prefix = varintSize(length);
  writeVarint(out, at, length);
  if (prefix < 3) out.copyWithin(at + prefix, text, text + n);
  return at + prefix + n;
}

/**
 * Encodes a record into an Encoder made with `makeEncoder`, or returns undefined for a record
 * kafkajs must encode itself.
 */
export function encodeRecord<E extends EncoderLike>(
  r: RecordInput,
  makeEncoder: () => E,
): E | undefined {
  const offsetDelta = r.offsetDelta ?? 0;
  const timestampDelta = r.timestampDelta ?? 0;
  if (
    typeof offsetDelta !== "number" || (offsetDelta | 0) !== offsetDelta ||
    !isVarlongNumber(timestampDelta)
  ) return undefined;
  const { key, value } = r;
  if (!isField(key) || !isField(value)) return undefined;
  const headers: [Uint8Array, Field][] = [];
  let max = 5 + 1 + 10 + 5 + maxFieldSize(key) + maxFieldSize(value) + 5;
  if (r.headers !== undefined) {
    if (typeof r.headers !== "object" || r.headers === null) return undefined;
    for (const [k, v] of Object.entries(r.headers)) {
      if (v === null || v === undefined || !isField(v)) return undefined;
      const name = headerName(k);
      headers.push([name, v as Field]);
      max += maxFieldSize(name) + maxFieldSize(v);
    }
  }
  // The body goes 5 bytes on (room for its length), the length right before it.
  reserve(max);
  const out = arena;
  const start = used + 5;
  let at = start;
  out[at++] = 0; // attributes
  at = writeVarint(out, at, zigZag64(timestampDelta));
  at = writeVarint(out, at, zigZag32(offsetDelta));
  at = writeField(out, at, key);
  at = writeField(out, at, value);
  at = writeVarint(out, at, zigZag32(headers.length));
  for (const [k, v] of headers) at = writeField(out, writeField(out, at, k), v);
  const length = zigZag32(at - start);
  const begin = start - varintSize(length);
  writeVarint(out, begin, length);
  used = at;
  const e = makeEncoder();
  e.buf = out.subarray(begin, at);
  e.offset = at - begin;
  return e;
}
