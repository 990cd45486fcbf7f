import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { CHANGED_ROW, UPDATE_ROW, type WindowKernel, windowKernel } from "./window_kernel.ts";

/** Park–Miller: a seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

/** Rows of a flat array, sorted so both implementations compare equal whatever tie order. */
function rows(values: ArrayLike<number>, width: number): number[][] {
  const all = Array.from(values);
  const out: number[][] = [];
  for (let i = 0; i < all.length; i += width) out.push(all.slice(i, i + width));
  return out;
}

const canonical = (r: number[][]) =>
  [...r].sort((a, b) => {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return 0;
  });

/** Runs a batch through a kernel; results copied (views die with the next call). */
function run(k: WindowKernel, batch: { key: number; t: number; v: number; st: number }[]) {
  const c = k.prepare(batch.length);
  batch.forEach((r, i) => {
    c.keys[i] = r.key;
    c.times[i] = r.t;
    c.values[i] = r.v;
    c.streamTimes[i] = r.st;
  });
  const out = k.aggregate(batch.length, true);
  return {
    updates: rows(out.updates, UPDATE_ROW),
    closed: canonical(rows(out.closed, UPDATE_ROW)),
    late: Array.from(out.late),
    changed: canonical(rows(out.changed, CHANGED_ROW)),
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
    assertEquals(out.changed, [
      [7, 0, 100, 110, 0, 0, 0, 0, 0, 0, 2],
      [8, 100, 200, 210, 1, 1, 1, 1, 1, 1, 2],
    ], mode);
    assertEquals(k.liveWindows, 1, mode);
  }
});

Deno.test("the WebAssembly window operator gives row for row what the TypeScript reference gives, on random streams with hopping windows, lateness, restarts and 50 000 keys", () => {
  const next = random(7);
  for (const [size, advance, grace] of [[300, 300, 0], [300, 100, 50], [1000, 250, 400]]) {
    let wasm = windowKernel("wasm", size, advance, grace);
    let ts = windowKernel("ts", size, advance, grace);
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
        };
      });
      const a = run(wasm, records);
      const b = run(ts, records);
      assertEquals(a, b, `size ${size} advance ${advance} grace ${grace} batch ${batch}`);
      if (batch % 10 === 9) {
        // A restart: both reload from a snapshot of the other's windows.
        const snapshot = dumped(ts);
        // Both hold the same windows, whatever their order in memory.
        assertEquals(rowsOf(dumped(wasm)).sort(byKeyStart), rowsOf(snapshot).sort(byKeyStart));
        const load = new Float64Array(snapshot.length / CHANGED_ROW * 9);
        for (let i = 0, j = 0; i < snapshot.length; i += CHANGED_ROW, j += 9) {
          load.set(snapshot.subarray(i, i + 9), j);
        }
        wasm = windowKernel("wasm", size, advance, grace);
        ts = windowKernel("ts", size, advance, grace);
        wasm.load(load);
        ts.load(load);
      }
      assertEquals(wasm.liveWindows, ts.liveWindows);
    }
  }
});

/** Every page of a kernel's dump, as one array. */
function dumped(k: WindowKernel): Float64Array {
  const pages = [...k.dump()];
  const out = new Float64Array(pages.reduce((n, p) => n + p.length, 0));
  pages.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

function rowsOf(dump: Float64Array): number[][] {
  const out: number[][] = [];
  for (let at = 0; at < dump.length; at += CHANGED_ROW) {
    out.push([...dump.subarray(at, at + CHANGED_ROW)]);
  }
  return out;
}

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
  const all = rowsOf(dumped(source)).sort(byKeyStart);
  const load = new Float64Array(all.length * 9);
  all.forEach((row, i) => load.set(row.slice(0, 9), i * 9));
  for (const mode of ["wasm", "ts"] as const) {
    const k = windowKernel(mode, 100, 100, 10);
    k.load(load);
    assertEquals(rowsOf(dumped(k)).sort(byKeyStart), all, mode);
    k.release();
  }
  source.release();
});
