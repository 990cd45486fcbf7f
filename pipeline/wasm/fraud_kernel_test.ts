// The fraud-scoring operator: WebAssembly against the TypeScript reference, and the reference
// against the rules written plainly, on seeded random payment streams.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type FraudKernel, fraudKernel, SCORE, SCORE_ROW } from "./fraud_kernel.ts";

/** Park–Miller: a seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

const RULES = {
  rapidWindowMs: 300_000,
  rapidThreshold: 10,
  unusualMultiplier: 5,
  unusualMinHistory: 3,
  scoreWindowMs: 3_600_000,
};
const T0 = Date.parse("2026-11-26T10:00:00Z");

interface Payment {
  customer: number;
  time: number;
  amount: number;
  failed: boolean;
  handle: number;
}

/**
 * Payments of `customers` customers: bursts seconds apart, pauses, late (out-of-order)
 * arrivals, and sometimes payments at exactly the same time.
 */
function payments(seed: number, customers: number, n: number): Payment[] {
  const next = random(seed);
  const clocks = Array.from({ length: customers }, () => T0);
  const out: Payment[] = [];
  for (let i = 0; i < n; i++) {
    const customer = Math.floor(next() * customers);
    const r = next();
    clocks[customer] += r < 0.1 ? 0 : r < 0.75 ? Math.floor(next() * 20_000) : Math.floor(
      next() * 1_200_000,
    );
    const late = next() < 0.1;
    out.push({
      customer,
      time: late ? clocks[customer] - Math.floor(next() * 700_000) : clocks[customer],
      amount: next() < 0.05 ? 500 + next() * 5_000 : 5 + Math.floor(next() * 10_000) / 100,
      failed: next() < 0.15,
      handle: i,
    });
  }
  return out;
}

/** One payment's results, copied out of the kernel's rows. */
interface Score {
  raiseRapid: boolean;
  raiseUnusual: boolean;
  score: number;
  average: number;
  earlier: number;
  span: number[];
}

/** Scores `batch` in one call; returns each payment's results and the handles freed. */
function scoreBatch(
  k: FraudKernel,
  batch: readonly Payment[],
): { scores: Score[]; freed: number[] } {
  const c = k.prepare(batch.length);
  batch.forEach((p, i) => {
    c.keys[i] = p.customer;
    c.times[i] = p.time;
    c.amounts[i] = p.amount;
    c.failed[i] = p.failed ? 1 : 0;
    c.handles[i] = p.handle;
  });
  const r = k.score(batch.length);
  const scores = batch.map((_, i) => {
    const row = r.rows.subarray(i * SCORE_ROW, (i + 1) * SCORE_ROW);
    const at = row[SCORE.spanAt];
    return {
      raiseRapid: row[SCORE.raiseRapid] === 1,
      raiseUnusual: row[SCORE.raiseUnusual] === 1,
      score: row[SCORE.score],
      average: row[SCORE.average],
      earlier: row[SCORE.earlier],
      span: [...r.spans.subarray(at, at + row[SCORE.span])],
    };
  });
  return { scores, freed: [...r.freed] };
}

/** The stream cut into batches of 1 to `max` payments, with a cut at `at`. */
function batches<T>(stream: readonly T[], seed: number, max: number, at: number): T[][] {
  const next = random(seed);
  const out: T[][] = [];
  for (let i = 0; i < stream.length;) {
    const end = Math.min(i + 1 + Math.floor(next() * max), i < at ? at : stream.length);
    out.push(stream.slice(i, end));
    i = end;
  }
  return out;
}

type Dump = (number[] | null)[];

function dumpAll(k: FraudKernel, customers: number): Dump {
  return Array.from({ length: customers }, (_, c) => {
    const d = k.dump(c);
    return d ? [...d] : null;
  });
}

Deno.test("WebAssembly and TypeScript fraud scoring agree on every payment and on state, in batches of any size and across a restart", () => {
  const customers = 400;
  const stream = payments(11, customers, 40_000);
  const restartAt = 20_000;
  // Each side cuts the stream differently: results must not depend on the batches.
  const run = (mode: "wasm" | "ts", max: number, restore: (own: (number[] | null)[]) => Dump) => {
    let k = fraudKernel(mode, RULES);
    const scores: Score[] = [];
    const freed: number[] = [];
    let dump: Dump = [];
    for (const batch of batches(stream, max, max, restartAt)) {
      if (scores.length === restartAt) {
        dump = dumpAll(k, customers);
        k.release();
        k = fraudKernel(mode, RULES);
        restore(dump).forEach((d, c) => d && k.load(c, Float64Array.from(d)));
      }
      const r = scoreBatch(k, batch);
      scores.push(...r.scores);
      freed.push(...r.freed);
    }
    return { k, scores, freed, dump };
  };
  const ts = run("ts", 7, (own) => own);
  // The WebAssembly side restarts from the reference's dump.
  const wasm = run("wasm", 500, () => ts.dump);
  assertEquals(wasm.dump, ts.dump);
  for (let i = 0; i < stream.length; i++) {
    assertEquals(wasm.scores[i], ts.scores[i], `payment ${i}`);
  }
  assertEquals(wasm.freed, ts.freed);
  assertEquals(dumpAll(wasm.k, customers), dumpAll(ts.k, customers));
  assertEquals(wasm.k.customers, customers);
  // The stream exercises both rules.
  const rapid = ts.scores.filter((s) => s.raiseRapid).length;
  const unusual = ts.scores.filter((s) => s.raiseUnusual).length;
  assertEquals(rapid > 50 && unusual > 50, true, `${rapid} rapid, ${unusual} unusual`);
  wasm.k.release();
  ts.k.release();
});

Deno.test("the TypeScript side loads the WebAssembly side's dump and goes on alike", () => {
  const customers = 50;
  const stream = payments(3, customers, 6_000);
  const wasm = fraudKernel("wasm", RULES);
  scoreBatch(wasm, stream.slice(0, 3_000));
  const ts = fraudKernel("ts", RULES);
  dumpAll(wasm, customers).forEach((d, c) => d && ts.load(c, Float64Array.from(d)));
  assertEquals(scoreBatch(ts, stream.slice(3_000)), scoreBatch(wasm, stream.slice(3_000)));
  assertEquals(dumpAll(ts, customers), dumpAll(wasm, customers));
  wasm.release();
  ts.release();
});

/** The rules written plainly, on one customer's whole history: the model both must match. */
function model(history: Payment[], p: Payment) {
  // What each earlier payment pruned: a payment leaves the recent list once any payment
  // processed after it is 2 rapid windows later, the score window once one is a window later.
  const processed = [...history, p];
  const survives = (q: Payment, window: number) =>
    processed.slice(processed.indexOf(q) + 1).every((x) => q.time > x.time - window);
  const recent = processed.filter((q) => survives(q, 2 * RULES.rapidWindowMs));
  const inSpan =
    recent.filter((q) => q === p || (q.time >= p.time - RULES.rapidWindowMs && q.time <= p.time))
      .length;
  const scored = processed.filter((q) => survives(q, RULES.scoreWindowMs));
  const failed = scored.filter((q) => q.failed).length;
  const earlier = history.length;
  const sum = history.reduce((a, q) => a + q.amount, 0);
  const average = earlier >= RULES.unusualMinHistory && earlier > 0 ? sum / earlier : 0;
  return { inSpan, share: failed / scored.length, earlier, average };
}

Deno.test("the TypeScript reference keeps the rules: span, failed share, average and one alert per burst", () => {
  const stream = payments(5, 30, 3_000);
  const k = fraudKernel("ts", RULES);
  const seen = new Map<number, Payment[]>();
  const alerts = new Map<number, [number, string][]>();
  const inBurst = new Map<number, boolean>();
  for (const p of stream) {
    const history = seen.get(p.customer) ?? [];
    const m = model(history, p);
    const s = scoreBatch(k, [p]).scores[0];
    const burst = m.inSpan > RULES.rapidThreshold;
    const raiseRapid = burst && !inBurst.get(p.customer);
    inBurst.set(p.customer, burst);
    const raiseUnusual = m.average > 0 && p.amount > RULES.unusualMultiplier * m.average;
    const kept = (alerts.get(p.customer) ?? []).filter(([t]) => t > p.time - RULES.scoreWindowMs);
    if (raiseRapid) kept.push([p.time, "RAPID"]);
    if (raiseUnusual) kept.push([p.time, "UNUSUAL"]);
    alerts.set(p.customer, kept);
    const score = Math.min(
      100,
      (kept.some(([, t]) => t === "RAPID") ? 50 : 0) +
        (kept.some(([, t]) => t === "UNUSUAL") ? 30 : 0) + 20 * m.share,
    );
    assertEquals(
      [s.raiseRapid, s.raiseUnusual, s.earlier, s.average, s.score],
      [raiseRapid, raiseUnusual, m.earlier, m.average, score],
    );
    if (raiseRapid) assertEquals(s.span.length, m.inSpan);
    history.push(p);
    seen.set(p.customer, history);
  }
  k.release();
});

Deno.test("a customer with 8 000 payments in the window outgrows the first memory pages", () => {
  const n = 8_000; // two lists of 16-byte entries: 256 KB
  for (const mode of ["wasm", "ts"] as const) {
    const k = fraudKernel(mode, RULES);
    const burst = Array.from({ length: n }, (_, i) => ({
      customer: 7,
      time: T0 + i,
      amount: 10,
      failed: i % 4 === 0,
      handle: i,
    }));
    const { scores } = scoreBatch(k, burst);
    const last = scores[n - 1];
    assertEquals([last.raiseRapid, last.score], [false, 50 + 20 * 0.25]);
    assertEquals(scores.filter((s) => s.raiseRapid).length, 1);
    const [s] = scoreBatch(k, [{ customer: 7, time: T0 + n, amount: 10, failed: false, handle: n }])
      .scores;
    assertEquals(s.raiseRapid, false);
    const d = k.dump(7)!;
    assertEquals([d[0], d[2], d[3], d[4], d[5]], [n + 1, 1, n + 1, n + 1, 1]);
    k.release();
  }
});
