import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { committedRecords } from "./kafka_reader.ts";

/** A fetched record of producer `p`, in a transaction unless told otherwise. */
const rec = (offset: number, p: string, control = false, inTransaction = true) => ({
  offset: String(offset),
  key: control
    ? new Uint8Array([0, 0, 0, control ? 0 : 1])
    : new TextEncoder().encode(`k${offset}`),
  value: null,
  timestamp: "0",
  isControlRecord: control,
  batchContext: { producerId: p, inTransaction, isControlBatch: control },
});

Deno.test("read committed drops every aborted transaction, also when several producers' transactions interleave", () => {
  // Producers A and B both abort transactions that overlap; C commits in between; D writes
  // outside transactions.
  const messages = [
    rec(10, "A"),
    rec(11, "B"),
    rec(12, "C"),
    rec(13, "A"),
    rec(14, "D", false, false),
    rec(15, "B"),
    rec(16, "A", true), // A's abort marker
    rec(17, "C", true), // C's commit marker
    rec(18, "B", true), // B's abort marker
    rec(19, "A"), // A's next transaction is not aborted
  ];
  const abortedTransactions = [
    { producerId: "B", firstOffset: "11" },
    { producerId: "A", firstOffset: "10" },
  ];
  const { records, next } = committedRecords({ messages, abortedTransactions }, 10);
  assertEquals(records.map((r) => Number(r.offset)), [12, 14, 19]);
  assertEquals(next, 20);
  // A fetch starting inside the aborted range still drops the rest of it.
  const later = committedRecords({ messages: messages.slice(3), abortedTransactions }, 13);
  assertEquals(later.records.map((r) => Number(r.offset)), [14, 19]);
  // Nothing new: the position stays.
  assertEquals(committedRecords({ messages: [], abortedTransactions: [] }, 20), {
    records: [],
    next: 20,
  });
  // Only markers: passed over.
  assertEquals(committedRecords({ messages: [rec(20, "C", true)], abortedTransactions: [] }, 20), {
    records: [],
    next: 21,
  });
});
