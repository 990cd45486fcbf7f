/**
 * Faster versions of six kafkajs 2.2.4 internals (its last release) on the produce and fetch
 * paths, applied when this module is first imported, which must be before kafkajs itself
 * (kafka_client.ts imports it first):
 * - the protocol encoder wrote every varint through a fresh array and `Buffer.from`, and every
 *   64-bit varint through BigInt arithmetic: ~8 such buffers per produced record. The
 *   replacements write the same bytes straight into the encoder's buffer; values they do not
 *   handle go to the originals.
 * - grouping a request's messages by partition copied the partition's list for every message
 *   (quadratic in the messages per partition). The replacement appends.
 * - each record was built from a 512-byte buffer of its own plus one per header;
 *   record_encoder.ts writes it in one pass into a shared arena.
 * - each record batch was copied three times over (records into a growing body, the body into
 *   the batch, the batch into its result); record_batch_encoder.ts writes it once.
 * - record batches were checksummed a byte at a time; crc32c.ts takes eight per step.
 * - each fetched record's time and offset were computed in BigInt; record_decoder.ts uses numbers
 *   while they are exact.
 * Each is byte-for-byte and order-for-order the same as kafkajs' (tested against the originals).
 */
import Module from "node:module";
import Encoder from "kafkajs/src/protocol/encoder.js";
import kafkajsGroupMessagesPerPartition from "kafkajs/src/producer/groupMessagesPerPartition.js";
import kafkajsCrc32C from "kafkajs/src/protocol/recordBatch/crc32C/index.js";
import kafkajsRecord from "kafkajs/src/protocol/recordBatch/record/v0/index.js";
import kafkajsRecordBatchV0 from "kafkajs/src/protocol/recordBatch/v0/index.js";
import kafkajsRecordDecoder from "kafkajs/src/protocol/recordBatch/record/v0/decoder.js";
import { crc32c } from "./crc32c.ts";
import {
  type BatchEncoder,
  encodeRecordBatch,
  type RecordBatchInput,
} from "./record_batch_encoder.ts";
import { type BatchContext, decodeRecord, type DecoderLike } from "./record_decoder.ts";
import { encodeRecord, type RecordInput } from "./record_encoder.ts";
import { isVarlongNumber, varintSize, writeVarint, zigZag64 } from "./varints.ts";

/** The encoder methods replaced, as kafkajs defines them. */
interface EncoderInstance {
  buf: Uint8Array;
  offset: number;
  /** The bytes written (a view). */
  readonly buffer: Uint8Array;
  ensureAvailable(length: number): void;
}
interface EncoderClass {
  prototype: EncoderInstance & {
    writeUVarInt(value: number): unknown;
    writeVarLong(value: unknown): unknown;
    writeBufferInternal(buffer: Uint8Array): void;
  };
  sizeOfVarLong(value: unknown): number;
}

/** What kafkajs passes to its partition grouping. */
export interface GroupingInput<M> {
  topic: string;
  partitionMetadata: readonly unknown[];
  messages: readonly M[];
  partitioner: (
    args: { topic: string; partitionMetadata: readonly unknown[]; message: M },
  ) => number;
}
type Grouping = <M>(input: GroupingInput<M>) => Record<number, M[]>;

const kafkajsEncoder = Encoder as unknown as EncoderClass;

/** kafkajs' own implementations, for values the fast paths leave to them, and for tests. */
export const originals = {
  writeUVarInt: kafkajsEncoder.prototype.writeUVarInt,
  writeVarLong: kafkajsEncoder.prototype.writeVarLong,
  writeBufferInternal: kafkajsEncoder.prototype.writeBufferInternal,
  sizeOfVarLong: kafkajsEncoder.sizeOfVarLong,
  groupMessagesPerPartition: kafkajsGroupMessagesPerPartition as Grouping,
  crc32C: kafkajsCrc32C as (bytes: Uint8Array) => number,
  record: kafkajsRecord as (record: RecordInput) => EncoderInstance,
  recordBatch:
    (kafkajsRecordBatchV0 as { RecordBatch: (input: RecordBatchInput) => Promise<EncoderInstance> })
      .RecordBatch,
  recordDecoder: kafkajsRecordDecoder as (d: DecoderLike, context?: BatchContext) => unknown,
};

/** The same 32-bit operations as kafkajs (the same bytes for any input), at most 5 bytes. */
function writeUVarInt(this: EncoderInstance, value: number) {
  this.ensureAvailable(5);
  const buf = this.buf;
  let at = this.offset;
  while ((value & 0xffffff80) !== 0) {
    buf[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[at++] = value & 0x7f;
  this.offset = at;
  return this;
}

function writeVarLong(this: EncoderInstance, value: unknown) {
  if (!isVarlongNumber(value)) return originals.writeVarLong.call(this, value);
  this.ensureAvailable(10);
  this.offset = writeVarint(this.buf, this.offset, zigZag64(value));
  return this;
}

function writeBufferInternal(this: EncoderInstance, buffer: Uint8Array) {
  this.ensureAvailable(buffer.length);
  this.buf.set(buffer, this.offset);
  this.offset += buffer.length;
}

function sizeOfVarLong(value: unknown): number {
  if (!isVarlongNumber(value)) return originals.sizeOfVarLong.call(kafkajsEncoder, value);
  return varintSize(zigZag64(value));
}

/** Messages by the partition the partitioner gives, in their order. */
export function groupMessagesPerPartition<M>(
  { topic, partitionMetadata, messages, partitioner }: GroupingInput<M>,
): Record<number, M[]> {
  const groups: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return groups;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (groups[partition] ??= []).push(message);
  }
  return groups;
}

const newEncoder = (): EncoderInstance => Object.create(kafkajsEncoder.prototype);

/** A record as kafkajs' record batch takes it: an Encoder holding its bytes. */
export function record(r: RecordInput): EncoderInstance {
  return encodeRecord(r, newEncoder) ?? originals.record(r);
}

const KafkajsEncoder = Encoder as unknown as new () => EncoderInstance & BatchEncoder;

/** A record batch as kafkajs' produce request takes it. */
export function recordBatch(input: RecordBatchInput): Promise<EncoderInstance> {
  const batch = encodeRecordBatch(input, () => new KafkajsEncoder());
  return batch ? Promise.resolve(batch) : originals.recordBatch(input);
}

/** A fetched record as kafkajs' record batch decoder takes it. */
export function recordDecoder(d: DecoderLike, context?: BatchContext): unknown {
  return decodeRecord(d, context) ?? originals.recordDecoder(d, context);
}

export const fastPaths = { writeUVarInt, writeVarLong, writeBufferInternal, sizeOfVarLong };

kafkajsEncoder.prototype.writeUVarInt = writeUVarInt;
kafkajsEncoder.prototype.writeVarLong = writeVarLong;
kafkajsEncoder.prototype.writeBufferInternal = writeBufferInternal;
kafkajsEncoder.sizeOfVarLong = sizeOfVarLong;

// kafkajs' producer, produce request and record batches take the grouping, the record, the
// record batch, the record decoder and the checksum from the CommonJS module cache when they load:
// replacing the cached modules' exports now gives them these. Where a module is not found there
// (a loader without that cache), kafkajs keeps its own, which is only slower.
const cache = (Module as unknown as { _cache?: Record<string, { exports: unknown }> })._cache;
const replacements = new Map<unknown, unknown>([
  [kafkajsGroupMessagesPerPartition, groupMessagesPerPartition],
  [kafkajsCrc32C, crc32c],
  [kafkajsRecord, record],
  [kafkajsRecordDecoder, recordDecoder],
  [kafkajsRecordBatchV0, { ...kafkajsRecordBatchV0 as object, RecordBatch: recordBatch }],
]);
for (const entry of Object.values(cache ?? {})) {
  if (replacements.has(entry.exports)) entry.exports = replacements.get(entry.exports);
}

/** Whether kafkajs' module cache now gives the faster modules to whoever loads them. */
export function modulesReplaced(): boolean {
  const exports = new Set(Object.values(cache ?? {}).map((e) => e.exports));
  return [...replacements.values()].every((fast) => exports.has(fast));
}
