import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { murmur2, partitionForKey } from "./partitioner.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("murmur2 matches Kafka's Utils.murmur2 test vectors", () => {
  // Vectors from Kafka's UtilsTest.testMurmur2.
  assertEquals(murmur2(enc("21")), -973932308);
  assertEquals(murmur2(enc("foobar")), -790332482);
  assertEquals(murmur2(enc("a-little-bit-long-string")), -985981536);
  assertEquals(murmur2(enc("a-little-bit-longer-string")), -1486304829);
  assertEquals(murmur2(enc("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")), -58897971);
  assertEquals(murmur2(enc("abc")), 479470107);
});

Deno.test("partitionForKey uses the positive hash of the key's UTF-8 bytes modulo the partition count", () => {
  assertEquals(partitionForKey("21", 3), (-973932308 & 0x7fffffff) % 3);
  assertEquals(partitionForKey("foobar", 7), (-790332482 & 0x7fffffff) % 7);
  // Longer keys (buffer growth) and non-ASCII keys (also after an ASCII start) hash their UTF-8 bytes.
  for (const key of ["é-ü-€-客户", "C0-客户-é", "x".repeat(1000), "C000042"]) {
    assertEquals(partitionForKey(key, 12), (murmur2(enc(key)) & 0x7fffffff) % 12);
  }
});
