/**
 * One record of a Kafka record batch (the format kafkajs calls Record v0), encoded in one pass
 * into a shared arena: kafkajs builds each record from a 512-byte buffer of its own plus one per
 * header and copies them together. The result is a kafkajs Encoder holding the record's bytes,
 * as its record batch expects. Records this does not handle (headers with several values, keys
 * or values that are neither text nor bytes, timestamps past 2^51 ms apart) go to kafkajs.
 */
import { Buffer } from "node:buffer";

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

/** `n` bytes of the arena (a new arena once this one is full; old ones live while referenced). */
function take(n: number): Buffer {
  if (used + n > arena.length) {
    arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, n));
    used = 0;
  }
  const bytes = arena.subarray(used, used + n);
  used += n;
  return bytes;
}

const encoder = new TextEncoder();

type Field = Uint8Array | null;

/** Bytes as kafkajs writes them: a Buffer as it is, text as UTF-8, null for none. */
function asField(v: unknown): Field | undefined {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === "string") return encoder.encode(v);
  return undefined;
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

function zigZag32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

function zigZag64(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

/** Bytes of an unsigned varint (`z` below 2^53). */
function varintSize(z: number): number {
  let n = 1;
  while (z >= 0x80) {
    z = Math.floor(z / 0x80);
    n++;
  }
  return n;
}

function writeVarint(out: Uint8Array, at: number, z: number): number {
  while (z >= 0x80) {
    out[at++] = (z % 0x80) | 0x80;
    z = Math.floor(z / 0x80);
  }
  out[at++] = z;
  return at;
}

function fieldSize(f: Field): number {
  return f === null ? 1 : varintSize(zigZag32(f.length)) + f.length;
}

function writeField(out: Uint8Array, at: number, f: Field): number {
  if (f === null) return writeVarint(out, at, 1); // -1
  at = writeVarint(out, at, zigZag32(f.length));
  out.set(f, at);
  return at + f.length;
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
    typeof timestampDelta !== "number" || !Number.isInteger(timestampDelta) ||
    Math.abs(timestampDelta) >= 2 ** 51
  ) return undefined;
  const key = asField(r.key);
  const value = asField(r.value);
  if (key === undefined || value === undefined) return undefined;
  const headers: [Uint8Array, Uint8Array][] = [];
  if (r.headers !== undefined) {
    if (typeof r.headers !== "object" || r.headers === null) return undefined;
    for (const [k, v] of Object.entries(r.headers)) {
      const field = asField(v);
      if (!field) return undefined;
      headers.push([headerName(k), field]);
    }
  }
  let body = 1 + varintSize(zigZag64(timestampDelta)) + varintSize(zigZag32(offsetDelta)) +
    fieldSize(key) + fieldSize(value) + varintSize(zigZag32(headers.length));
  for (const [k, v] of headers) body += fieldSize(k) + fieldSize(v);
  const length = zigZag32(body);
  const out = take(varintSize(length) + body);
  let at = writeVarint(out, 0, length);
  out[at++] = 0; // attributes
  at = writeVarint(out, at, zigZag64(timestampDelta));
  at = writeVarint(out, at, zigZag32(offsetDelta));
  at = writeField(out, at, key);
  at = writeField(out, at, value);
  at = writeVarint(out, at, zigZag32(headers.length));
  for (const [k, v] of headers) at = writeField(out, writeField(out, at, k), v);
  const e = makeEncoder();
  e.buf = out;
  e.offset = at;
  return e;
}
