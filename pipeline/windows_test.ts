import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { openTimeWindows, TimeWindows } from "./windows.ts";

/** Park–Miller: a seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

/** The definition, walked backwards from the last start. */
function reference(ts: number, size: number, advance: number, grace: number, streamTime: number) {
  const lastStart = ts - (((ts % advance) + advance) % advance);
  const starts: number[] = [];
  for (let s = lastStart; s > ts - size; s -= advance) {
    if (s + size + grace > streamTime) starts.unshift(s);
  }
  return starts;
}

const spec = (size: number, advance: number, grace: number) =>
  TimeWindows.ofSizeAndGrace(size, grace).advanceBy(advance);

Deno.test("window assignment: tumbling and hopping windows, with lateness", () => {
  assertEquals(openTimeWindows(1_000, spec(300, 300, 0), 0), [900]);
  assertEquals(openTimeWindows(1_000, spec(300, 100, 0), 0), [800, 900, 1_000]);
  // [800, 1100) and [900, 1200) have closed at stream time 1260 with 50 ms grace.
  assertEquals(openTimeWindows(1_000, spec(300, 100, 50), 1_260), [1_000]);
  assertEquals(openTimeWindows(1_000, spec(300, 100, 50), 1_350), []);
  assertEquals(openTimeWindows(-50, spec(300, 100, 0), -1e9), [-300, -200, -100]);
  const next = random(42);
  for (let i = 0; i < 20_000; i++) {
    const advance = 1 + Math.floor(next() * 1_000);
    // Sizes that are and are not a multiple of the advance.
    const size = advance * (1 + Math.floor(next() * 6)) +
      (next() < 0.5 ? 0 : Math.floor(next() * advance));
    const grace = Math.floor(next() * 500);
    const ts = Math.floor((next() - 0.2) * 1e7);
    const streamTime = ts + Math.floor((next() - 0.5) * 4 * size);
    assertEquals(
      openTimeWindows(ts, spec(size, advance, grace), streamTime),
      reference(ts, size, advance, grace, streamTime),
      `ts ${ts} size ${size} advance ${advance} grace ${grace} streamTime ${streamTime}`,
    );
  }
});
