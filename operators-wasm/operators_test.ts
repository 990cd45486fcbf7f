// The WebAssembly operators against plain reference models, on seeded random inputs.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type FraudAlertType, scorePayment } from "./mod.ts";

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

interface History {
  recent: number[];
  scored: [number, boolean][];
  alerts: [number, FraudAlertType][];
  count: number;
  sum: number;
  inBurst: boolean;
}

/** The fraud rules written plainly: the model the operator must agree with. */
function referenceScore(h: History, time: number, amount: number, failed: boolean) {
  const insertByTime = <T extends [number, unknown] | number>(list: T[], item: T): T[] => {
    const t = (x: T) => (typeof x === "number" ? x : x[0]);
    const out = [...list];
    let i = out.length;
    while (i > 0 && t(out[i - 1]) > t(item)) i--;
    out.splice(i, 0, item);
    return out;
  };
  const recent = insertByTime(h.recent.filter((t) => t > time - RULES.rapidWindowMs * 2), time);
  const inSpan = recent.filter((t) => t >= time - RULES.rapidWindowMs && t <= time).length;
  const scored = insertByTime(h.scored.filter(([t]) => t > time - RULES.scoreWindowMs), [
    time,
    failed,
  ]);
  const alerts = h.alerts.filter(([t]) => t > time - RULES.scoreWindowMs);
  let inBurst = h.inBurst;
  let raiseRapid = false;
  if (inSpan > RULES.rapidThreshold) {
    raiseRapid = !inBurst;
    inBurst = true;
  } else inBurst = false;
  const raiseUnusual = h.count >= RULES.unusualMinHistory && h.count > 0 &&
    amount > RULES.unusualMultiplier * (h.sum / h.count);
  const all = [...alerts.map(([, type]) => type)];
  if (raiseRapid) all.push("RAPID_PAYMENTS");
  if (raiseUnusual) all.push("UNUSUAL_AMOUNT");
  const score = Math.min(
    100,
    (all.includes("RAPID_PAYMENTS") ? 50 : 0) + (all.includes("UNUSUAL_AMOUNT") ? 30 : 0) +
      20 * (scored.filter(([, f]) => f).length / scored.length),
  );
  return { recent, inSpan, scored, alerts, raiseRapid, raiseUnusual, inBurst, score };
}

/** The operator on a history kept as the reference keeps it. */
function score(h: History, time: number, amount: number, failed: boolean) {
  return scorePayment(
    {
      recentTimes: h.recent,
      scoredTimes: h.scored.map(([t]) => t),
      scoredFailed: h.scored.map(([, f]) => f),
      alerts: h.alerts,
      count: h.count,
      sum: h.sum,
      inBurst: h.inBurst,
    },
    { time, amount, failed },
    RULES,
  );
}

Deno.test("fraud scoring agrees with the reference rules over random payment streams", () => {
  const next = random(7);
  for (let customer = 0; customer < 300; customer++) {
    const h: History = { recent: [], scored: [], alerts: [], count: 0, sum: 0, inBurst: false };
    let clock = Date.parse("2026-11-26T10:00:00Z");
    for (let n = 0; n < 80; n++) {
      // Bursts of payments seconds apart, pauses, and some late (out-of-order) arrivals.
      clock += next() < 0.7 ? Math.floor(next() * 20_000) : Math.floor(next() * 1_200_000);
      const time = next() < 0.1 ? clock - Math.floor(next() * 400_000) : clock;
      const amount = next() < 0.05 ? 500 + next() * 5_000 : 5 + next() * 100;
      const failed = next() < 0.15;
      const want = referenceScore(h, time, amount, failed);
      const d = score(h, time, amount, failed);
      const recent = [
        ...h.recent.slice(d.recentFrom, d.recentInsert),
        time,
        ...h.recent.slice(d.recentInsert),
      ];
      const scored: [number, boolean][] = [
        ...h.scored.slice(d.scoredFrom, d.scoredInsert),
        [time, failed],
        ...h.scored.slice(d.scoredInsert),
      ];
      const at = `customer ${customer}, payment ${n}`;
      assertEquals(recent, want.recent, at);
      assertEquals(d.spanTo - d.spanFrom, want.inSpan, at);
      assertEquals(scored, want.scored, at);
      assertEquals(d.alerts, want.alerts, at);
      assertEquals([d.raiseRapid, d.raiseUnusual, d.inBurst], [
        want.raiseRapid,
        want.raiseUnusual,
        want.inBurst,
      ], at);
      assertEquals(d.score, want.score, at);
      h.recent = recent;
      h.scored = scored;
      h.alerts = [...d.alerts];
      if (d.raiseRapid) h.alerts.push([time, "RAPID_PAYMENTS"]);
      if (d.raiseUnusual) h.alerts.push([time, "UNUSUAL_AMOUNT"]);
      h.inBurst = d.inBurst;
      h.count++;
      h.sum += amount;
    }
  }
});

Deno.test("fraud scoring reads a history larger than the operator's first memory page", () => {
  // 20 000 payments a millisecond apart: the scratch area outgrows 64 KiB and moves.
  const t0 = Date.parse("2026-11-26T10:00:00Z");
  const h: History = {
    recent: Array.from({ length: 20_000 }, (_, i) => t0 + i),
    scored: Array.from({ length: 20_000 }, (_, i) => [t0 + i, i % 4 === 0] as [number, boolean]),
    alerts: [[t0, "RAPID_PAYMENTS"]],
    count: 20_000,
    sum: 20_000 * 10,
    inBurst: true,
  };
  const time = t0 + 20_000;
  const want = referenceScore(h, time, 10, false);
  const d = score(h, time, 10, false);
  assertEquals(d.spanTo - d.spanFrom, want.inSpan);
  assertEquals(d.spanTo - d.spanFrom, 20_001);
  assertEquals([d.raiseRapid, d.inBurst, d.score], [false, true, want.score]);
  assertEquals(d.alerts, [[t0, "RAPID_PAYMENTS"]]);
});
