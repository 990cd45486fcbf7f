import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type SessionKernel, sessionKernel } from "./session_kernel.ts";
import { canonical, joined, random, rows } from "./test_rows.ts";

type Input = { key: number; t: number; v: number; st: number; category: number };

function run(k: SessionKernel, batch: Input[]) {
  const c = k.prepare(batch.length);
  batch.forEach((r, i) => {
    c.keys[i] = r.key;
    c.times[i] = r.t;
    c.values[i] = r.v;
    c.streamTimes[i] = r.st;
    c.categories[i] = r.category;
  });
  const out = k.aggregate(batch.length);
  return {
    updates: rows(out.updates, k.rows.update),
    closed: canonical(rows(out.closed, k.rows.closed)),
    late: Array.from(out.late),
    changed: canonical(rows(out.changed, k.rows.changed)),
  };
}

Deno.test("the session operator extends a session, merges the two a record bridges (retracting the absorbed one), closes by stream time + gap + grace and reports late records", () => {
  for (const mode of ["wasm", "ts"] as const) {
    // Gap 10, grace 5: a key has at most 2 + 5 / 10 = 2 live sessions.
    const k = sessionKernel(mode, 10, 5, 2, false);
    assertEquals(k.perKey, 2);
    const out = run(k, [
      { key: 1, t: 0, v: 2, st: 0, category: 0 },
      { key: 1, t: 30, v: 4, st: 30, category: 1 },
      { key: 1, t: 25, v: 1, st: 30, category: 1 },
      { key: 2, t: 28, v: 7, st: 30, category: -1 },
      { key: 2, t: 5, v: 1, st: 30, category: 0 },
    ]);
    assertEquals(out.updates, [
      [0, 0, 1, 0, 0, 1, 2, 2, 2, 2, 1, 0],
      [1, 0, 1, 30, 30, 1, 4, 4, 4, 4, 0, 1],
      // [30, 30] extended to [25, 30]: its start changed, so the old one is retracted.
      [2, 1, 1, 30, 30, 0, 0, 0, 0, 0, 0, 0],
      [2, 0, 1, 25, 30, 2, 5, 1, 4, 1, 0, 2],
      [3, 0, 2, 28, 28, 1, 7, 7, 7, 7, 0, 0],
    ], mode);
    // [0, 0] closed when stream time reached 15 (the second record); key 2's record at 5 is late.
    assertEquals(out.closed, [[1, 1, 0, 0, 1, 2, 2, 2, 2, 1, 0]], mode);
    assertEquals(out.late, [4], mode);
    assertEquals(out.changed, [
      [1, 1, 25, 30, 2, 5, 1, 4, 1, 0, 2, ...Array(9).fill(0)],
      [2, 1, 28, 28, 1, 7, 7, 7, 7, 0, 0, ...Array(9).fill(0)],
    ], mode);
    // A record between two live sessions merges them: the later one is retracted.
    const merged = run(k, [
      { key: 2, t: 40, v: 3, st: 40, category: 0 },
      { key: 2, t: 33, v: 1, st: 40, category: 0 },
    ]);
    assertEquals(merged.updates, [
      [0, 0, 2, 40, 40, 1, 3, 3, 3, 3, 1, 0],
      [1, 1, 2, 40, 40, 0, 0, 0, 0, 0, 0, 0],
      [1, 0, 2, 28, 40, 3, 11, 1, 7, 1, 2, 0],
    ], mode);
    assertEquals(k.liveSessions, 2, mode);
    k.release();
  }
});

Deno.test("the WebAssembly session operator gives row for row what the TypeScript reference gives, on random streams with late records, bridges, restarts and 20 000 keys", () => {
  const next = random(5);
  for (
    const [gap, grace, categories, retractAll] of [[300, 0, 0, 0], [300, 100, 3, 0], [
      200,
      450,
      2,
      1,
    ]]
  ) {
    let wasm = sessionKernel("wasm", gap, grace, categories, retractAll === 1);
    let ts = sessionKernel("ts", gap, grace, categories, retractAll === 1);
    let streamTime = 0;
    for (let batch = 0; batch < 40; batch++) {
      const records = Array.from({ length: 1 + Math.floor(next() * 1500) }, () => {
        const t = Math.floor(streamTime + (next() - 0.2) * 2 * gap);
        streamTime = Math.max(streamTime, t);
        return {
          key: Math.floor(next() ** 2 * 20_000),
          t,
          v: Math.round((next() - 0.5) * 1000) / 10,
          st: streamTime,
          category: Math.floor(next() * (categories + 1)) - 1,
        };
      });
      const name = `gap ${gap} grace ${grace} categories ${categories} batch ${batch}`;
      assertEquals(run(wasm, records), run(ts, records), name);
      assertEquals(wasm.liveSessions, ts.liveSessions, name);
      if (batch % 10 === 9) {
        // A restart: both reload from the other's dump.
        const dump = joined(ts.dump());
        assertEquals(
          canonical(rows(joined(wasm.dump()), wasm.rows.changed)),
          canonical(rows(dump, ts.rows.changed)),
          name,
        );
        wasm.release();
        ts.release();
        wasm = sessionKernel("wasm", gap, grace, categories, retractAll === 1);
        ts = sessionKernel("ts", gap, grace, categories, retractAll === 1);
        wasm.load(dump);
        ts.load(dump);
        assertEquals(wasm.liveSessions, ts.liveSessions, name);
      }
    }
    wasm.release();
    ts.release();
  }
});
