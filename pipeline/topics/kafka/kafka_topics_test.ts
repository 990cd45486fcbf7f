import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { refreshedOffsets } from "./kafka_topics.ts";

const answer = (ends: number[], starts: number[]) =>
  ends.map((high, partition) => ({
    partition,
    high: String(high),
    low: String(starts[partition]),
  }));

Deno.test("a ListOffsets answer older than a commit never moves an end offset back", () => {
  // Ends as a commit just advanced them from its produce results, then a refresh sent before it.
  const known = { partitions: 3, ends: [120, 40, 7], starts: [0, 0, 0] };
  assertEquals(refreshedOffsets(known, answer([100, 55, 7], [10, 0, 3])), {
    partitions: 3,
    ends: [120, 55, 7],
    starts: [10, 0, 3],
  });
});

Deno.test("offsets of a topic first seen, or whose partition count changed, are the broker's", () => {
  assertEquals(refreshedOffsets(undefined, answer([5, 6], [1, 2])), {
    partitions: 2,
    ends: [5, 6],
    starts: [1, 2],
  });
  const known = { partitions: 2, ends: [90, 90], starts: [0, 0] };
  assertEquals(refreshedOffsets(known, answer([5, 6, 0], [0, 0, 0])), {
    partitions: 3,
    ends: [5, 6, 0],
    starts: [0, 0, 0],
  });
});
