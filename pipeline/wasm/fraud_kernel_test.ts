// The fraud-scoring operator: WebAssembly against the TypeScript reference, and the reference
// against the rules written plainly, on seeded random payment streams.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type FraudKernel, fraudKernel, type PaymentScore } from "./fraud_kernel.ts";

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

const copy = (s: PaymentScore) => ({ ...s, span: [...s.span], freed: [...s.freed] });

function dumpAll(k: FraudKernel, customers: number): (number[] | null)[] {
  return Array.from({ length: customers }, (_, c) => {
    const d = k.dump(c);
    return d ? [...d] : null;
  });
}

Deno.test("WebAssembly and TypeScript fraud scoring agree on every payment and on state, across a restart", () => {
  const customers = 400;
  const stream = payments(11, customers, 40_000);
  let wasm = fraudKernel("wasm", RULES);
  let ts = fraudKernel("ts", RULES);
  let rapid = 0;
  let unusual = 0;
  for (const [i, p] of stream.entries()) {
    if (i === 20_000) {
      // A restart in the middle, each side loading the other's dump.
      const [fromWasm, fromTs] = [dumpAll(wasm, customers), dumpAll(ts, customers)];
      assertEquals(fromWasm, fromTs);
      wasm.release();
      ts.release();
      wasm = fraudKernel("wasm", RULES);
      ts = fraudKernel("ts", RULES);
      fromTs.forEach((d, c) => d && wasm.load(c, Float64Array.from(d)));
      fromWasm.forEach((d, c) => d && ts.load(c, Float64Array.from(d)));
    }
    const want = copy(ts.score(p.customer, p.time, p.amount, p.failed, p.handle));
    const got = copy(wasm.score(p.customer, p.time, p.amount, p.failed, p.handle));
    assertEquals(got, want, `payment ${i}`);
    if (want.raiseRapid) rapid++;
    if (want.raiseUnusual) unusual++;
  }
  assertEquals(dumpAll(wasm, customers), dumpAll(ts, customers));
  assertEquals(wasm.customers, customers);
  // The stream exercises both rules.
  assertEquals(rapid > 50 && unusual > 50, true, `${rapid} rapid, ${unusual} unusual`);
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
    const s = copy(k.score(p.customer, p.time, p.amount, p.failed, p.handle));
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
    let last: PaymentScore | null = null;
    for (let i = 0; i < n; i++) last = k.score(7, T0 + i, 10, i % 4 === 0, i);
    assertEquals([last!.raiseRapid, last!.score], [false, 50 + 20 * 0.25]);
    const s = k.score(7, T0 + n, 10, false, n);
    assertEquals(s.raiseRapid, false);
    const d = k.dump(7)!;
    assertEquals([d[0], d[2], d[3], d[4], d[5]], [n + 1, 1, n + 1, n + 1, 1]);
    k.release();
  }
});
