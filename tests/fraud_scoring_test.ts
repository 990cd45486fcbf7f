// Fraud detection on the WebAssembly operator and on the TypeScript reference: the same alerts
// and the same payment histories, across restarts that switch between them and reload the
// binary state from Deno KV.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { definePlugin, events, type OperatorMode, z } from "../pipeline/mod.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";
import fraud from "../plugins/fraud_detection/mod.ts";
import { type Payment, payment } from "./fixtures/payments.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const MIN = 60_000;

/**
 * A seeded stream over 150 customers: payments minutes apart, bursts of 10 (at the threshold,
 * no alert) or 11-14 within a minute or two, some late by up to 12 minutes, some FAILED, and
 * now and then an amount far above the customer's average.
 */
function randomPayments(n: number, seed: number): Payment[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const clocks = new Map<string, number>();
  const out: Payment[] = [];
  const pay = (customerId: string, timestamp: number) =>
    out.push(
      payment(
        `pay-${out.length}`,
        customerId,
        next() < 0.03 ? 2_000 + Math.floor(next() * 5_000) : 10 + Math.floor(next() * 90),
        timestamp,
        next() < 0.15 ? "FAILED" : "SUCCESS",
      ),
    );
  while (out.length < n) {
    const customerId = `cust-${Math.floor(next() * 150)}`;
    const clock = (clocks.get(customerId) ?? T0) + Math.floor(next() * 20 * MIN);
    clocks.set(customerId, clock);
    if (next() < 0.08) {
      const burst = next() < 0.3 ? 10 : 11 + Math.floor(next() * 4);
      for (let i = 0; i < burst; i++) pay(customerId, clock + i * Math.floor(next() * 10_000));
    } else {
      pay(customerId, next() < 0.1 ? clock - Math.floor(next() * 12 * MIN) : clock);
    }
  }
  return out.slice(0, n);
}

/**
 * Pipes `payments` in chunks of 50, reopening the state every `restartEvery` chunks. With a
 * record cache, each chunk's payments reach the operator in one call; without, one by one.
 */
async function run(
  payments: Payment[],
  modes: OperatorMode[],
  restartEvery: number,
  cacheMaxBytes = 0,
) {
  const dir = await Deno.makeTempDir();
  const alerts: unknown[] = [];
  const highRisk: unknown[] = [];
  let d: TestDriver | null = null;
  let opened = 0;
  for (let chunk = 0; chunk * 50 < payments.length; chunk++) {
    if (chunk % restartEvery === 0) {
      d?.close();
      d = await TestDriver.create({
        // A day's score window keeps every payment in the histories: big enough commits that
        // the store writes binary snapshots and reloads them.
        plugins: [{ plugin: fraud, options: { scoreWindowMs: 86_400_000 } }],
        topics: { "bss.payment.events": 1 },
        kvPath: `${dir}/state.kv`,
        operators: modes[opened++ % modes.length],
        cacheMaxBytes,
      });
    }
    await d!.input<Payment>("bss.payment.events").pipeMany(
      payments.slice(chunk * 50, chunk * 50 + 50).map((value) => ({
        key: value.customerId,
        value,
      })),
    );
    alerts.push(...d!.output("bss.fraud.alerts").readValues());
    highRisk.push(...d!.output("bss.fraud.high-risk").readValues());
  }
  const histories = d!.fraudStore("fraud-state").all();
  d!.close();
  await Deno.remove(dir, { recursive: true });
  return { alerts, highRisk, histories };
}

Deno.test("fraud alerts and payment histories are the same in WebAssembly and TypeScript, across restarts that switch between them", async () => {
  const payments = randomPayments(8_000, 3);
  const wasm = await run(payments, ["wasm"], Infinity);
  const ts = await run(payments, ["ts"], Infinity);
  const restarted = await run(payments, ["ts", "wasm"], 20);
  const batched = await run(payments, ["wasm", "ts"], 20, 10 * 1024 * 1024);
  const types = (wasm.alerts as { type: string }[]).map((a) => a.type);
  const rapid = types.filter((t) => t === "RAPID_PAYMENTS").length;
  const unusual = types.filter((t) => t === "UNUSUAL_AMOUNT").length;
  assertEquals(rapid > 40 && unusual > 40 && wasm.highRisk.length > 10, true, `${rapid} rapid`);
  assertEquals(wasm.histories.length, 150);
  assertEquals(ts, wasm);
  assertEquals(restarted, wasm);
  assertEquals(batched, wasm);
});

/** Scores payments and fails on the one with the given id, after scoring. */
const fragile = definePlugin({
  name: "fragile_fraud",
  options: z.strictObject({ failOn: z.string() }),
  build(b, o) {
    const rules = {
      rapidWindowMs: 300_000,
      rapidThreshold: 10,
      unusualMultiplier: 5,
      unusualMinHistory: 3,
      scoreWindowMs: 3_600_000,
    };
    b.stream("bss.payment.events", { schema: events.PaymentEvent, keyField: "customerId" })
      .scorePayments(b.fraudScoringStore("fragile-state", rules), (p) => ({
        paymentId: p.paymentId,
        amount: p.amount,
        failed: false,
      }))
      .mapValues(({ payment, risk }) => {
        if (payment.paymentId === o.failOn) throw new Error(`refusing ${payment.paymentId}`);
        return { paymentId: payment.paymentId, earlier: risk.earlierPayments };
      })
      .to("scored");
  },
});

Deno.test("a plugin failing on one payment of a scored batch dead-letters that payment; the batch's others go on", async () => {
  for (const cacheMaxBytes of [0, 1024 * 1024]) {
    const d = await TestDriver.create({
      plugins: [{ plugin: fragile, options: { failOn: "p2" } }],
      topics: { "bss.payment.events": 1 },
      cacheMaxBytes,
    });
    await d.input<Payment>("bss.payment.events").pipeMany(
      [0, 1, 2, 3, 4].map((i) => ({ key: "c1", value: payment(`p${i}`, "c1", 20, T0 + i) })),
    );
    assertEquals(d.output("scored").readValues(), [
      { paymentId: "p0", earlier: 0 },
      { paymentId: "p1", earlier: 1 },
      { paymentId: "p3", earlier: 3 },
      { paymentId: "p4", earlier: 4 },
    ]);
    const dlq = d.output<{ offset: number; reason: string }>("bss.dlq").readValues();
    assertEquals(dlq.map((r) => [r.offset, r.reason]), [[
      2,
      "processing the record failed: Error: refusing p2",
    ]]);
    // The operator scored the failed payment too: a plugin's later code throwing drops that
    // record's outputs, not the state its earlier steps changed.
    assertEquals(d.fraudStore("fragile-state").get("c1")!.count, 5);
    d.close();
  }
});

Deno.test("a burst of exactly 10 payments raises nothing; the 11th raises one alert naming all 11", async () => {
  const d = await TestDriver.create({
    plugins: [{ plugin: fraud }],
    topics: { "bss.payment.events": 3 },
  });
  const p = (i: number) => payment(`p${i}`, "c1", 20, T0 + i * 20_000);
  const input = d.input<Payment>("bss.payment.events");
  await input.pipeMany(Array.from({ length: 10 }, (_, i) => ({ key: "c1", value: p(i) })));
  assertEquals(d.output("bss.fraud.alerts").readValues(), []);
  await input.pipe("c1", p(10));
  const alerts = d.output<{ type: string; eventIds: string[] }>("bss.fraud.alerts").readValues();
  assertEquals(alerts.map((a) => [a.type, a.eventIds]), [[
    "RAPID_PAYMENTS",
    Array.from({ length: 11 }, (_, i) => `p${i}`),
  ]]);
  const h = d.fraudStore("fraud-state").get("c1")!;
  assertEquals([h.count, h.inBurst, h.recent.length, h.alerts], [11, true, 11, [[
    T0 + 200_000,
    "RAPID_PAYMENTS",
  ]]]);
  d.close();
});
