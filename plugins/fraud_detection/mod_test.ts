import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TestDriver } from "../../pipeline/testing/mod.ts";
import fraud from "./mod.ts";
import type { FraudAlert } from "./rules.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const payment = (
  id: string,
  customerId: string,
  amount: number,
  at: number,
  status = "SUCCESS",
) => ({
  key: customerId,
  value: {
    paymentId: id,
    customerId,
    amount,
    currency: "USD",
    method: "CARD",
    status,
    timestamp: at,
  },
});

async function driver() {
  return await TestDriver.create({
    plugins: [{ plugin: fraud }],
    topics: { "bss.payment.events": 3 },
  });
}

Deno.test("15 payments within 2 minutes give exactly one RAPID_PAYMENTS HIGH alert", async () => {
  const d = await driver();
  await d.input("bss.payment.events").pipeMany(
    Array.from({ length: 15 }, (_, i) => payment(`p${i + 1}`, "C1", 20, T0 + i * 8_000)),
  );
  const alerts = d.output<FraudAlert>("bss.fraud.alerts").readValues();
  assertEquals(alerts.map((a) => [a.type, a.severity, a.customerId, a.paymentId, a.fraudScore]), [
    ["RAPID_PAYMENTS", "HIGH", "C1", "p11", 50],
  ]);
  assertEquals(alerts[0].eventIds, Array.from({ length: 11 }, (_, i) => `p${i + 1}`));
  assertEquals(d.output("bss.fraud.high-risk").readValues(), []);
  d.close();
});

Deno.test("a second burst alerts again only after the count fell back to 10 or fewer", async () => {
  const d = await driver();
  const burst = (prefix: string, start: number) =>
    Array.from({ length: 11 }, (_, i) => payment(`${prefix}${i}`, "C2", 20, start + i * 1_000));
  await d.input("bss.payment.events").pipeMany(burst("a", T0));
  await d.input("bss.payment.events").pipeMany(burst("b", T0 + 20_000)); // still > 10 in 5 min: same burst
  await d.input("bss.payment.events").pipe("C2", payment("calm", "C2", 20, T0 + 30 * 60_000).value); // 1 in span
  await d.input("bss.payment.events").pipeMany(burst("c", T0 + 31 * 60_000));
  const alerts = d.output<FraudAlert>("bss.fraud.alerts").readValues();
  assertEquals(alerts.map((a) => [a.type, a.paymentId]), [["RAPID_PAYMENTS", "a10"], [
    "RAPID_PAYMENTS",
    "c9",
  ]]);
  d.close();
});

Deno.test("UNUSUAL_AMOUNT needs 3 earlier payments and more than 5 × their average; with a burst the score passes 75", async () => {
  const d = await driver();
  const input = d.input("bss.payment.events");
  await input.pipeMany([payment("u1", "C3", 100, T0), payment("u2", "C3", 100, T0 + 1_000)]);
  await input.pipe("C3", payment("u3", "C3", 900, T0 + 2_000).value); // only 2 earlier payments: no alert
  // Earlier average is now (100 + 100 + 900) / 3 = 366.67; 5 × = 1833.33.
  await input.pipe("C3", payment("u4", "C3", 1800, T0 + 3_000).value);
  await input.pipe("C3", payment("u5", "C3", 10_000, T0 + 4_000).value);
  let alerts = d.output<FraudAlert>("bss.fraud.alerts").readValues();
  assertEquals(alerts.map((a) => [a.type, a.severity, a.paymentId, a.fraudScore]), [[
    "UNUSUAL_AMOUNT",
    "MEDIUM",
    "u5",
    30,
  ]]);
  // A rapid burst in the same hour: 50 + 30 = 80 > 75 → high-risk.
  await input.pipeMany(
    Array.from({ length: 11 }, (_, i) => payment(`r${i}`, "C3", 50, T0 + 10_000 + i * 1_000)),
  );
  alerts = d.output<FraudAlert>("bss.fraud.alerts").readValues();
  assertEquals(alerts.map((a) => [a.type, a.fraudScore]), [["RAPID_PAYMENTS", 80]]);
  const risky = d.output<{ customerId: string; fraudScore: number; reason: string }>(
    "bss.fraud.high-risk",
  ).readRecords();
  assertEquals(risky.map((r) => [r.key, r.value.customerId, r.value.fraudScore, r.value.reason]), [
    ["C3", "C3", 80, "RAPID_PAYMENTS"],
  ]);
  d.close();
});

Deno.test("the failed-payment share adds up to 20 points to the score", async () => {
  const d = await driver();
  const input = d.input("bss.payment.events");
  await input.pipeMany([
    payment("f1", "C4", 10, T0, "FAILED"),
    payment("f2", "C4", 10, T0 + 1_000, "FAILED"),
    payment("f3", "C4", 10, T0 + 2_000, "SUCCESS"),
    payment("f4", "C4", 100, T0 + 3_000, "SUCCESS"), // 100 > 5 × 10 → UNUSUAL; failed share 2/4
  ]);
  assertEquals(d.output<FraudAlert>("bss.fraud.alerts").readValues().map((a) => a.fraudScore), [
    40,
  ]);
  d.close();
});

Deno.test("invalid payments go to bss.dlq with the reason and the raw value", async () => {
  const d = await driver();
  await d.input("bss.payment.events").pipe("C5", {
    paymentId: "x",
    customerId: "C5",
    amount: -3,
    currency: "USD",
    method: "CARD",
    status: "SUCCESS",
    timestamp: T0,
  });
  await d.input("bss.payment.events").pipe("OTHER", payment("y", "C5", 3, T0).value);
  const dlq = d.output<{ reason: string; plugin: string; raw: string; sourceTopic: string }>(
    "bss.dlq",
  ).readValues();
  assertEquals(dlq.map((r) => [r.sourceTopic, r.plugin, r.reason]), [
    ["bss.payment.events", "fraud_detection", "amount: Too small: expected number to be >0"],
    [
      "bss.payment.events",
      "fraud_detection",
      'key: the record key "OTHER" must equal customerId "C5"',
    ],
  ]);
  assertEquals(JSON.parse(dlq[0].raw).paymentId, "x");
  d.close();
});
