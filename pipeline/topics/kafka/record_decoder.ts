/**
 * One fetched record of a Kafka record batch (the format kafkajs calls Record v0), decoded as
 * kafkajs decodes it (the same object: offset and timestamp as decimal strings, key and value as
 * views of the fetched bytes, headers by name) with number arithmetic where kafkajs used BigInt
 * for every record's time and offset. Records it does not handle (time deltas past 2^48 ms,
 * truncated bytes) are left to kafkajs, which reports them as it does.
 */
import { Buffer } from "node:buffer";

/** A kafkajs Decoder, as a record decoder reads it. */
export interface DecoderLike {
  buffer: Buffer;
  offset: number;
}

/** What kafkajs' record batch decoder tells each record about its batch. */
export interface BatchContext {
  firstOffset?: string;
  firstTimestamp?: string;
  magicByte?: number;
  isControlBatch?: boolean;
  timestampType?: number;
  maxTimestamp?: string;
}

export interface DecodedRecord {
  magicByte: number | undefined;
  attributes: number;
  timestamp: string;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Header | Header[]>;
  isControlRecord: boolean;
  batchContext: BatchContext;
}

type Header = Buffer | null;

const LOG_APPEND_TIME = 1;
const decoder = new TextDecoder();

/** `base + delta` as kafkajs' Long gives it: a decimal string. */
function plus(base: string | undefined, delta: number): string {
  const n = Number(base);
  const sum = n + delta;
  if (Number.isSafeInteger(n) && Number.isSafeInteger(sum)) return String(sum);
  return String(BigInt(base ?? 0) + BigInt(delta));
}

/** Decodes the record `d` holds, or returns undefined (its offset unmoved) for kafkajs to. */
export function decodeRecord(
  d: DecoderLike,
  batchContext: BatchContext = {},
): DecodedRecord | undefined {
  const buf = d.buffer;
  const end = buf.length;
  let at = d.offset;
  // kafkajs' 32-bit varint, as it reads it; undefined past the end.
  const varint = (): number | undefined => {
    let result = 0;
    let shift = 0;
    let byte;
    do {
      if (at >= end) return undefined;
      byte = buf[at++];
      result += (byte & 0x7f) << shift;
      shift += 7;
    } while (byte >= 0x80);
    return (result >>> 1) ^ -(result & 1);
  };
  const bytes = (): Buffer | null | undefined => {
    const length = varint();
    if (length === undefined || length < -1 || at + length > end) return undefined;
    if (length === -1) return null;
    const b = buf.subarray(at, at + length);
    at += length;
    return b;
  };

  if (at >= end) return undefined;
  const attributes = (buf[at++] << 24) >> 24;
  // The 64-bit zigzag time delta, in numbers while exact.
  let z = 0;
  let scale = 1;
  let byte;
  do {
    if (at >= end || scale > 2 ** 42) return undefined;
    byte = buf[at++];
    z += (byte & 0x7f) * scale;
    scale *= 0x80;
  } while (byte >= 0x80);
  const timestampDelta = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  const offsetDelta = varint();
  if (offsetDelta === undefined) return undefined;
  const key = bytes();
  const value = bytes();
  const count = varint();
  if (key === undefined || value === undefined || count === undefined || count < -1) {
    return undefined;
  }
  const headers: Record<string, Header | Header[]> = {};
  for (let i = 0; i < count; i++) {
    const name = bytes();
    const v = bytes();
    if (name === undefined || name === null || v === undefined) return undefined;
    const k = decoder.decode(name);
    const before = headers[k];
    // kafkajs keeps a repeated header's values in order, as an array.
    headers[k] = before === undefined ? v : Array.isArray(before) ? [...before, v] : [before, v];
  }
  d.offset = at;
  const { firstOffset, firstTimestamp, magicByte, isControlBatch = false } = batchContext;
  return {
    magicByte,
    attributes,
    timestamp: batchContext.timestampType === LOG_APPEND_TIME && batchContext.maxTimestamp
      ? batchContext.maxTimestamp
      : plus(firstTimestamp, timestampDelta),
    offset: plus(firstOffset, offsetDelta),
    key,
    value,
    headers,
    isControlRecord: isControlBatch,
    batchContext,
  };
}
