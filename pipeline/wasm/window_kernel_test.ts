import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { CHANGED_ROW, UPDATE_ROW, type WindowKernel, windowKernel } from "./window_kernel.ts";
import { canonical, joined, random, rows } from "./test_rows.ts";

/** Runs a batch through a kernel; results copied (views die with the next call). */
function run(
  k: WindowKernel,
  batch: { key: number; t: number; v: number; st: number; category?: number }[],
) {
  const c = k.prepare(batch.length);
  batch.forEach((r, i) => {
    c.keys[i] = r.key;
    c.times[i] = r.t;
    c.values[i] = r.v;
    c.streamTimes[i] = r.st;
    c.categories[i] = r.category ?? -1;
  });
  const out = k.aggregate(batch.length, true);
  return {
    updates: rows(out.updates, k.rows.update),
    closed: canonical(rows(out.closed, k.rows.update)),
    late: Array.from(out.late),
    changed: canonical(rows(out.changed, k.rows.changed)),
  };
}

Deno.test("the window operator counts, sums, takes min, max and last per key and window, closes by stream time + grace and reports late records", () => {
  for (const mode of ["wasm", "ts"] as const) {
    const k = windowKernel(mode, 100, 100, 10);
    // Windows of 100 ms with 10 ms grace: key 7's [0, 100) closes once stream time reaches 110,
    // when the third record arrives; the fourth falls in it and is late.
    const out = run(k, [
      { key: 7, t: 5, v: 2, st: 5 },
      { key: 7, t: 50, v: 4, st: 50 },
      { key: 8, t: 150, v: 1, st: 150 },
      { key: 7, t: 20, v: 9, st: 150 },
    ]);
    assertEquals(out.updates, [
      [0, 7, 0, 100, 1, 2, 2, 2, 2],
      [1, 7, 0, 100, 2, 6, 2, 4, 4],
      [2, 8, 100, 200, 1, 1, 1, 1, 1],
    ], mode);
    assertEquals(out.closed, [[2, 7, 0, 100, 2, 6, 2, 4, 4]], mode);
    assertEquals(out.late, [3], mode);
    // Key 7's window closed after updates in this batch: its final state, last updated by
    // record 1, marked UPDATED_CLOSED (2).
    assertEquals(out.changed, [
      [7, 0, 100, 110, 2, 6, 2, 4, 4, 2, 1],
      [8, 100, 200, 210, 1, 1, 1, 1, 1, 1, 2],
    ], mode);
    assertEquals(k.liveWindows, 1, mode);
    // Closed by a later batch, with no update in it: zeros and the closing record (CLOSED, 0).
    const later = run(k, [{ key: 9, t: 400, v: 1, st: 400 }]);
    assertEquals(later.changed, [
      [8, 100, 200, 210, 0, 0, 0, 0, 0, 0, 0],
      [9, 400, 500, 510, 1, 1, 1, 1, 1, 1, 0],
    ], mode);
    assertEquals(k.liveWindows, 1, mode);
  }
});

Deno.test("the window operator counts each window's records per category; a record of no category (-1) or one out of range is counted in none", () => {
  for (const mode of ["wasm", "ts"] as const) {
    const k = windowKernel(mode, 100, 100, 0, 2);
    const out = run(k, [
      { key: 1, t: 5, v: 1, st: 5, category: 1 },
      { key: 1, t: 6, v: 1, st: 6, category: 1 },
      { key: 1, t: 7, v: 1, st: 7, category: -1 },
      { key: 1, t: 8, v: 1, st: 8, category: 2 },
      { key: 1, t: 9, v: 1, st: 9, category: 0 },
      { key: 1, t: 120, v: 1, st: 120, category: 0 },
    ]);
    assertEquals(out.updates.map((r) => [r[0], r[4], ...r.slice(UPDATE_ROW)]), [
      [0, 1, 0, 1],
      [1, 2, 0, 2],
      [2, 3, 0, 2],
      [3, 4, 0, 2],
      [4, 5, 1, 2],
      [5, 1, 1, 0],
    ], mode);
    assertEquals(out.closed, [[5, 1, 0, 100, 5, 5, 1, 1, 1, 1, 2]], mode);
    assertEquals(out.changed, [
      [1, 0, 100, 100, 5, 5, 1, 1, 1, 2, 4, 1, 2],
      [1, 100, 200, 200, 1, 1, 1, 1, 1, 1, 5, 1, 0],
    ], mode);
    const [dump] = [...k.dump()];
    assertEquals([...dump], [1, 100, 200, 200, 1, 1, 1, 1, 1, 1, -1, 1, 0], mode);
  }
});

Deno.test("the WebAssembly window operator gives row for row what the TypeScript reference gives, on random streams with hopping windows, lateness, restarts and 50 000 keys", () => {
  const next = random(7);
  const configs = [[300, 300, 0, 0], [300, 100, 50, 0], [1000, 250, 400, 0], [300, 100, 50, 3]];
  for (const [size, advance, grace, categories] of configs) {
    let wasm = windowKernel("wasm", size, advance, grace, categories);
    let ts = windowKernel("ts", size, advance, grace, categories);
    let streamTime = 0;
    for (let batch = 0; batch < 40; batch++) {
      const records = Array.from({ length: 1 + Math.floor(next() * 2000) }, () => {
        const t = Math.floor(streamTime + (next() - 0.3) * 2 * size);
        streamTime = Math.max(streamTime, t);
        return {
          key: Math.floor(next() ** 2 * 50_000),
          t,
          v: Math.round((next() - 0.5) * 1000) / 10,
          st: streamTime,
          // Now and then no category (-1).
          category: Math.floor(next() * (categories + 1)) - 1,
        };
      });
      const a = run(wasm, records);
      const b = run(ts, records);
      const name = `size ${size} advance ${advance} grace ${grace} categories ${categories}`;
      assertEquals(a, b, `${name} batch ${batch}`);
      if (batch % 10 === 9) {
        // A restart: both reload from a snapshot of the other's windows.
        const snapshot = joined(ts.dump());
        // Both hold the same windows, whatever their order in memory.
        assertEquals(
          rows(joined(wasm.dump()), wasm.rows.changed).sort(byKeyStart),
          rows(snapshot, ts.rows.changed).sort(byKeyStart),
        );
        const load = new Float64Array(snapshot.length / ts.rows.changed * ts.rows.load);
        for (let i = 0, j = 0; i < snapshot.length; i += ts.rows.changed, j += ts.rows.load) {
          load.set(snapshot.subarray(i, i + 9), j);
          load.set(snapshot.subarray(i + CHANGED_ROW, i + ts.rows.changed), j + 9);
        }
        wasm = windowKernel("wasm", size, advance, grace, categories);
        ts = windowKernel("ts", size, advance, grace, categories);
        wasm.load(load);
        ts.load(load);
      }
      assertEquals(wasm.liveWindows, ts.liveWindows);
    }
  }
});

const byKeyStart = (a: number[], b: number[]) => a[0] - b[0] || a[1] - b[1];

Deno.test("a dump of 10 000 windows comes in pages and loads back into either implementation as the same windows", () => {
  const n = 10_000;
  const source = windowKernel("wasm", 100, 100, 10);
  const c = source.prepare(n);
  for (let i = 0; i < n; i++) {
    c.keys[i] = i;
    c.times[i] = i % 300;
    c.values[i] = i;
    c.streamTimes[i] = 0;
  }
  source.aggregate(n, false);
  const pages = [...source.dump()];
  assertEquals(pages.map((p) => p.length / CHANGED_ROW), [4096, 4096, 1808]);
  const all = rows(joined(source.dump()), CHANGED_ROW).sort(byKeyStart);
  const load = new Float64Array(all.length * 9);
  all.forEach((row, i) => load.set(row.slice(0, 9), i * 9));
  for (const mode of ["wasm", "ts"] as const) {
    const k = windowKernel(mode, 100, 100, 10);
    k.load(load);
    assertEquals(rows(joined(k.dump()), CHANGED_ROW).sort(byKeyStart), all, mode);
    k.release();
  }
  source.release();
});
