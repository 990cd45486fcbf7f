/**
 * A Kafka record batch (magic 2, uncompressed) written once into a buffer of its exact size:
 * kafkajs copies each record into a growing body, the body into the batch and the batch into its
 * result. The header fields go through a kafkajs Encoder (its 64-bit integers take numbers,
 * strings and Longs alike); the records are kafkajs Encoders holding their bytes.
 */
import { Buffer } from "node:buffer";
import { crc32c } from "./crc32c.ts";

/** What a kafkajs Encoder offers here: its bytes, and writing the header's fields. */
export interface BatchEncoder {
  buf: Uint8Array;
  offset: number;
  writeInt8(v: number): BatchEncoder;
  writeInt16(v: number): BatchEncoder;
  writeInt32(v: number): BatchEncoder;
  writeUInt32(v: number): BatchEncoder;
  writeInt64(v: unknown): BatchEncoder;
}

/** The arguments of kafkajs' RecordBatch. */
export interface RecordBatchInput {
  compression?: number;
  firstOffset?: unknown;
  firstTimestamp?: unknown;
  maxTimestamp?: unknown;
  partitionLeaderEpoch?: number;
  lastOffsetDelta?: number;
  transactional?: boolean;
  producerId?: unknown;
  producerEpoch?: number;
  firstSequence?: number;
  records?: readonly unknown[];
}

const MAGIC = 2;
const TRANSACTIONAL = 16;

function isEncoded(r: unknown): r is { buf: Uint8Array; offset: number } {
  return typeof r === "object" && r !== null && Buffer.isBuffer((r as { buf?: unknown }).buf);
}

/**
 * The batch as kafkajs' RecordBatch gives it (first offset, length, then the batch), or
 * undefined for what it must do itself (compressed batches).
 */
export function encodeRecordBatch<E extends BatchEncoder>(
  input: RecordBatchInput,
  newEncoder: () => E,
): E | undefined {
  const records = input.records ?? [];
  if ((input.compression ?? 0) !== 0 || !records.every(isEncoded)) return undefined;
  const now = Date.now();
  const head = newEncoder()
    .writeInt16(input.transactional ? TRANSACTIONAL : 0)
    .writeInt32(input.lastOffsetDelta ?? 0)
    .writeInt64(input.firstTimestamp ?? now)
    .writeInt64(input.maxTimestamp ?? now)
    .writeInt64(input.producerId ?? -1)
    .writeInt16(input.producerEpoch ?? 0)
    .writeInt32(input.firstSequence ?? 0)
    .writeInt32(records.length);
  let bodyLength = head.offset;
  for (const r of records) bodyLength += r.offset;
  // First offset (8), batch length (4), leader epoch (4), magic (1), CRC (4), then the body.
  const out = Buffer.allocUnsafe(21 + bodyLength);
  let at = 21;
  out.set(head.buf.subarray(0, head.offset), at);
  at += head.offset;
  for (const r of records) {
    out.set(r.buf.subarray(0, r.offset), at);
    at += r.offset;
  }
  const prefix = newEncoder()
    .writeInt64(input.firstOffset ?? 0)
    .writeInt32(9 + bodyLength)
    .writeInt32(input.partitionLeaderEpoch ?? 0)
    .writeInt8(MAGIC)
    .writeUInt32(crc32c(out.subarray(21)));
  out.set(prefix.buf.subarray(0, 21), 0);
  const batch = newEncoder();
  batch.buf = out;
  batch.offset = out.length;
  return batch;
}
