import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import {
  fastPaths,
  groupMessagesPerPartition,
  modulesReplaced,
  originals,
  record,
  recordBatch,
  recordDecoder,
} from "./kafkajs_fast_paths.ts";
import Decoder from "kafkajs/src/protocol/decoder.js";
import { crc32c } from "./crc32c.ts";
import Encoder from "kafkajs/src/protocol/encoder.js";
import { Buffer } from "node:buffer";

// deno-lint-ignore no-explicit-any
type AnyEncoder = any;
const EncoderClass = Encoder as AnyEncoder;

/** Runs `fn` with kafkajs' own encoder methods in place, then puts the fast paths back. */
function withOriginals<T>(fn: () => T): T {
  const proto = EncoderClass.prototype;
  proto.writeUVarInt = originals.writeUVarInt;
  proto.writeVarLong = originals.writeVarLong;
  proto.writeBufferInternal = originals.writeBufferInternal;
  EncoderClass.sizeOfVarLong = originals.sizeOfVarLong;
  try {
    return fn();
  } finally {
    proto.writeUVarInt = fastPaths.writeUVarInt;
    proto.writeVarLong = fastPaths.writeVarLong;
    proto.writeBufferInternal = fastPaths.writeBufferInternal;
    EncoderClass.sizeOfVarLong = fastPaths.sizeOfVarLong;
  }
}

function bytes(write: (e: AnyEncoder) => void): number[] {
  const e = new EncoderClass();
  write(e);
  return [...e.buffer];
}

/** Edges of every varint length, signs, the fast paths' own limit, and seeded random values. */
function values(): number[] {
  const edges = [0, 1, 63, 64, 127, 128, 300, 8191, 8192, 16383, 16384];
  for (let bits = 20; bits <= 53; bits++) edges.push(2 ** bits - 1, 2 ** bits);
  edges.push(2 ** 31 - 1, 2 ** 32 - 1, 2 ** 51 - 1, Number.MAX_SAFE_INTEGER);
  let s = 7;
  const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 2000; i++) edges.push(Math.floor(next() * 2 ** Math.floor(next() * 52)));
  return edges.flatMap((v) => [v, -v]);
}

Deno.test("the varint fast paths write exactly kafkajs' bytes and sizes", () => {
  for (const v of values()) {
    const fast = {
      varLong: bytes((e) => e.writeVarLong(v)),
      size: EncoderClass.sizeOfVarLong(v),
      varInt: bytes((e) => e.writeVarInt(v)),
      uVarInt: bytes((e) => e.writeUVarInt(v)),
    };
    const kafkajs = withOriginals(() => ({
      varLong: bytes((e) => e.writeVarLong(v)),
      size: EncoderClass.sizeOfVarLong(v),
      varInt: bytes((e) => e.writeVarInt(v)),
      uVarInt: bytes((e) => e.writeUVarInt(v)),
    }));
    assertEquals(fast, kafkajs, `value ${v}`);
    assertEquals(fast.size, fast.varLong.length, `size of ${v}`);
  }
  // What kafkajs refuses, refused alike.
  throws(() => bytes((e) => e.writeVarLong(1.5)), RangeError);
});

Deno.test("records and record batches encode to exactly kafkajs' bytes", async () => {
  const records: Record<string, unknown>[] = [
    { key: Buffer.from("C0000001"), value: Buffer.from('{"amount":12.5}'), offsetDelta: 0 },
    { key: null, value: null, timestampDelta: 1_800_000, offsetDelta: 300 },
    { key: "text key", value: "é-ключ", timestampDelta: -5, offsetDelta: 2 ** 20 },
    { key: "C0000002", value: '{"city":"Zürich","emoji":"📦"}', headers: { "bss.origin": "x" } },
    {
      key: Buffer.from("k"),
      value: Buffer.from("x".repeat(70_000)),
      headers: {
        "bss.origin": Buffer.from("bss.order.events:1:42:0"),
        "ключ": "значение",
        text: "bss.order.events:1:42:1",
        empty: "",
      },
    },
    { key: "", value: "", headers: {} },
    // Text whose length prefix takes 1, 2 and 3 bytes, and text too long to write in place.
    { key: "k".repeat(33), value: "v".repeat(100), headers: { h: "ü".repeat(40) } },
    { key: "k", value: "é".repeat(70_000) },
    { key: "k", value: "v".repeat(300_001) },
    // Left to kafkajs: several values per header, huge time deltas.
    { key: "k", value: "v", headers: { multi: ["a", "b"] } },
    { key: "k", value: "v", timestampDelta: 2 ** 60 },
  ];
  for (const r of records) {
    const fast = [...record(r).buffer];
    assertEquals(fast, withOriginals(() => [...originals.record(r).buffer]), JSON.stringify(r));
  }
  // Batches of them, as one transactional producer's, and as a plain one's with defaults.
  const inputs = [
    {
      firstTimestamp: "1795651200000",
      maxTimestamp: "1795651260000",
      transactional: true,
      producerId: "4611686018427387904",
      producerEpoch: 3,
      firstSequence: 17,
      partitionLeaderEpoch: 2,
      lastOffsetDelta: 4,
    },
    { firstTimestamp: 5, maxTimestamp: 5, firstOffset: 12 },
  ];
  for (const input of inputs) {
    const fast = await recordBatch({ ...input, records: records.slice(0, 5).map(record) });
    const kafkajs = await withOriginals(() =>
      originals.recordBatch({ ...input, records: records.slice(0, 5).map(originals.record) })
    );
    assertEquals([...fast.buffer], [...kafkajs.buffer], JSON.stringify(input));
  }
  const empty = await recordBatch({ firstTimestamp: 1, maxTimestamp: 1, records: [] });
  assertEquals(
    [...empty.buffer],
    [...(await originals.recordBatch({ firstTimestamp: 1, maxTimestamp: 1, records: [] })).buffer],
  );
});

Deno.test("fetched records decode to exactly what kafkajs' record decoder gives", () => {
  const records: Record<string, unknown>[] = [
    { key: "C0000001", value: '{"amount":12.5}', headers: { "bss.origin": "in:0:5:0" } },
    { key: null, value: null, timestampDelta: -1_800_000, offsetDelta: 300 },
    { key: "é-ключ", value: "x".repeat(20_000), timestampDelta: 2 ** 40, offsetDelta: 2 ** 30 },
    // A repeated header (kafkajs gives its values as an array), a header with no value.
    { key: "k", value: "v", headers: { multi: ["a", "b", "c"], one: "d" } },
    { key: "k", value: "v", timestampDelta: 2 ** 50 }, // left to kafkajs: past 2^48
  ];
  const contexts = [
    { firstOffset: "0", firstTimestamp: "1795651200000", magicByte: 2, timestampType: 0 },
    { firstOffset: "9007199254740990", firstTimestamp: "-5", isControlBatch: true },
    { firstOffset: "7", firstTimestamp: "1", timestampType: 1, maxTimestamp: "1795651209999" },
  ];
  const decoded = (decode: (d: unknown, c: unknown) => unknown, bytes: Uint8Array, c: unknown) =>
    decode(new (Decoder as AnyEncoder)(Buffer.from(bytes)), c);
  for (const r of records) {
    // A record batch holds each record as its length and its body; the decoder reads the body.
    const encoded = Buffer.from(withOriginals(() => [...originals.record(r).buffer]));
    const bytes = new (Decoder as AnyEncoder)(encoded).readVarIntBytes();
    for (const c of contexts) {
      assertEquals(
        decoded(recordDecoder as (d: unknown, c: unknown) => unknown, bytes, c),
        decoded(originals.recordDecoder as (d: unknown, c: unknown) => unknown, bytes, c),
        `${JSON.stringify(r)} in ${JSON.stringify(c)}`,
      );
    }
  }
  // A header whose value is null, encoded by hand (kafkajs cannot produce one).
  const nullHeader = Uint8Array.from([0, 0, 0, 2, 0x6b, 2, 0x76, 2, 2, 0x68, 1]);
  assertEquals(
    decoded(recordDecoder as (d: unknown, c: unknown) => unknown, nullHeader, contexts[0]),
    decoded(
      originals.recordDecoder as (d: unknown, c: unknown) => unknown,
      nullHeader,
      contexts[0],
    ),
  );
});

Deno.test("messages are grouped by partition in their order, as kafkajs groups them", () => {
  let s = 11;
  const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
  const messages = Array.from(
    { length: 5000 },
    (_, i) => ({ i, partition: Math.floor(next() * 7) }),
  );
  const input = {
    topic: "t",
    partitionMetadata: [{}, {}],
    messages,
    partitioner: ({ message }: { message: { partition: number } }) => message.partition,
  };
  const grouped = groupMessagesPerPartition(input);
  assertEquals(grouped, originals.groupMessagesPerPartition(input));
  assertEquals(Object.values(grouped).flat().length, messages.length);
  assertEquals(groupMessagesPerPartition({ ...input, partitionMetadata: [] }), {});
});

Deno.test("CRC-32C eight bytes at a time equals kafkajs' checksum, and the standard check value", () => {
  assertEquals(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  let s = 5;
  const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
  for (const length of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 70_001]) {
    const bytes = Uint8Array.from({ length }, () => Math.floor(next() * 256));
    assertEquals(crc32c(bytes), originals.crc32C(bytes), `length ${length}`);
    assertEquals(crc32c(bytes.subarray(3)), originals.crc32C(bytes.subarray(3)), `offset 3`);
  }
});

Deno.test("kafkajs' module cache hands its producer and record batches the faster modules", () => {
  ok(modulesReplaced());
});
