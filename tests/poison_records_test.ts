import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { definePlugin, z } from "../pipeline/mod.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";
import customerActivity from "../plugins/customer_activity/mod.ts";
import dynamicPricing from "../plugins/dynamic_pricing/mod.ts";
import fraud from "../plugins/fraud_detection/mod.ts";
import orderEnrichment from "../plugins/order_enrichment/mod.ts";
import recommendations from "../plugins/recommendations/mod.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");

type DeadLetter = {
  sourceTopic: string;
  partition: number;
  offset: number;
  key: string | null;
  plugin?: string;
  reason: string;
  error?: { name: string; message: string };
  raw: string | null;
};

const STREAMS = [
  "bss.payment.events",
  "bss.customer.events",
  "bss.order.events",
  "bss.product.views",
];

Deno.test("a null value on each stream topic is dead-lettered; the valid records after it still raise their outputs", async () => {
  const d = await TestDriver.create({
    plugins: [customerActivity, orderEnrichment, fraud, recommendations, dynamicPricing].map(
      (plugin) => ({ plugin }),
    ),
    topics: Object.fromEntries([...STREAMS, "bss.customer.info"].map((t) => [t, 3])),
  });
  for (const topic of STREAMS) await d.input(topic).pipe("C1", null);
  const dlq = d.output<DeadLetter>("bss.dlq").readValues();
  // Every plugin reading a topic refuses its null, naming the field and what it expected.
  assertEquals(
    dlq.map((r) => [r.sourceTopic, r.plugin, r.reason, r.raw]).sort(),
    [
      ["bss.customer.events", "customer_activity", nullReason, null],
      ["bss.customer.events", "recommendations", nullReason, null],
      ["bss.order.events", "dynamic_pricing", nullReason, null],
      ["bss.order.events", "order_enrichment", nullReason, null],
      ["bss.payment.events", "fraud_detection", nullReason, null],
      ["bss.product.views", "recommendations", nullReason, null],
    ].sort(),
  );

  await d.input("bss.payment.events").pipeMany(
    Array.from({ length: 11 }, (_, i) => ({
      key: "C1",
      value: {
        paymentId: `p${i}`,
        customerId: "C1",
        amount: 20,
        currency: "USD",
        method: "CARD",
        status: "SUCCESS",
        timestamp: T0 + i * 1_000,
      },
    })),
  );
  await d.input("bss.customer.events").pipe("C1", {
    customerId: "C1",
    activityType: "LOGIN",
    timestamp: T0,
  });
  await d.input("bss.product.views").pipe("C1", {
    customerId: "C1",
    productId: "P1",
    category: "Laptops",
    timestamp: T0,
  });
  await d.input("bss.order.events").pipe("o1", {
    orderId: "o1",
    customerId: "C1",
    productId: "P1",
    quantity: 1,
    unitPrice: 1500,
    totalAmount: 1500,
    currency: "USD",
    status: "CREATED",
    timestamp: T0,
  });
  const alerts = d.output<{ type: string; paymentId: string }>("bss.fraud.alerts").readValues();
  assertEquals(alerts.map((a) => [a.type, a.paymentId]), [["RAPID_PAYMENTS", "p10"]]);
  assertEquals(
    d.output<{ totalEvents: number }>("bss.customer.activity.aggregated").readValues()
      .map((a) => a.totalEvents),
    [1],
  );
  assertEquals(
    d.output<{ productId: string }>("bss.recommendations").readValues().map((r) => r.productId),
    ["P1"],
  );
  assertEquals(
    d.output<{ orderId: string }>("bss.orders.highvalue").readValues().map((o) => o.orderId),
    ["o1"],
  );
  assertEquals(
    d.output<{ orders: number }>("bss.pricing.recommendations").readValues().map((p) => p.orders),
    [1],
  );
  assertEquals(d.output("bss.dlq").readValues(), []);
  d.close();
});

const nullReason = "value: Invalid input: expected object, received null";

/** Forwards each record's amount, doubled, then throws for records marked `explode`. */
const fragile = definePlugin({
  name: "fragile",
  options: z.strictObject({}),
  build(b) {
    const events = b.stream<{ amount: number; explode?: boolean }>("events");
    events.mapValues((v) => v.amount).to("amounts");
    // A step that writes, then throws further down for the same record: the write must not leak.
    const doubled = events.mapValues((v) => ({ ...v, amount: v.amount * 2 }));
    doubled.to("doubled");
    doubled.mapValues((v) => {
      if (v.explode) throw new TypeError(`cannot handle amount ${v.amount}`);
      return v.amount;
    }).to("checked");
  },
});

/** Another plugin on the same topic, which never throws. */
const steady = definePlugin({
  name: "steady",
  options: z.strictObject({}),
  build(b) {
    b.stream<{ amount: number }>("events").groupByKey()
      .count({ store: "steady-counts" }).toStream().to("counts");
  },
});

Deno.test("a plugin that throws for one record dead-letters that record with the plugin, the error and the offset, and goes on", async () => {
  const d = await TestDriver.create({ plugins: [{ plugin: fragile }, { plugin: steady }] });
  await d.input("events").pipeMany([
    { key: "k", value: { amount: 1 } },
    { key: "k", value: { amount: 2, explode: true } },
    { key: "k", value: { amount: 3 } },
  ]);
  // Everything fragile wrote for the failing record is dropped, including its earlier steps.
  assertEquals(d.output("amounts").readValues(), [1, 3]);
  assertEquals(d.output("doubled").readValues(), [{ amount: 2 }, { amount: 6 }]);
  assertEquals(d.output("checked").readValues(), [2, 6]);
  // The other plugin reading the topic sees all three.
  assertEquals(d.output("counts").readValues(), [1, 2, 3]);
  const dlq = d.output<DeadLetter>("bss.dlq").readValues();
  assertEquals(dlq, [{
    sourceTopic: "events",
    partition: 0,
    offset: 1,
    key: "k",
    plugin: "fragile",
    reason: "processing the record failed: TypeError: cannot handle amount 4",
    error: { name: "TypeError", message: "cannot handle amount 4" },
    raw: JSON.stringify({ amount: 2, explode: true }),
  }]);
  d.close();
});

Deno.test("a plain stream without a schema hands a null value to plugin code; if that throws, the record is dead-lettered", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<{ amount: number }>("events").mapValues((v) => v.amount * 10).to("tenfold"),
  });
  await d.input("events").pipeMany([
    { key: "a", value: { amount: 1 } },
    { key: "b", value: null },
    { key: "c", value: { amount: 2 } },
  ]);
  assertEquals(d.output("tenfold").readValues(), [10, 20]);
  const dlq = d.output<DeadLetter>("bss.dlq").readValues();
  assertEquals(dlq.map((r) => [r.plugin, r.offset, r.error?.name, r.raw]), [
    ["test", 1, "TypeError", null],
  ]);
  d.close();
});

Deno.test("with onError 'stop' a throwing plugin stops the pipeline, naming the plugin; its batch is never committed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kvPath = `${dir}/state.kv`;
    const d = await TestDriver.create({
      plugins: [{ plugin: fragile, onError: "stop" }, { plugin: steady }],
      kvPath,
    });
    await d.input("events").pipe("k", { amount: 1 });
    await rejects(d.input("events").pipe("k", { amount: 2, explode: true }), (e: Error) => {
      assertEquals(e.name, "ProcessingError");
      ok(e.message.startsWith("plugin fragile failed on events[0]@1: TypeError: cannot handle"));
      return true;
    });
    assertEquals(d.runner.state, "ERROR");
    assertEquals(d.output("amounts").readValues(), [1]);
    // Nothing of the failed batch was committed, for either plugin.
    assertEquals(d.output("counts").readValues(), [1]);
    d.close();

    // Restarted with dead-lettering, the record is processed exactly once.
    const again = await TestDriver.create({
      plugins: [{ plugin: fragile }, { plugin: steady }],
      kvPath,
    });
    await again.runner.runUntilIdle();
    assertEquals(again.output("counts").readValues().slice(-1), [2]);
    assertEquals(again.output<DeadLetter>("bss.dlq").readValues().map((r) => r.offset), [1]);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("event times far ahead of the wall clock, before 1970 or beyond the date range are dead-lettered and leave stream time alone", async () => {
  const d = await TestDriver.create({
    plugins: [{ plugin: fraud }],
    startTime: T0,
    eventTime: { min: 0, maxAheadMs: 86_400_000 },
  });
  const pay = (id: string, timestamp: unknown) => ({
    key: "C1",
    value: {
      paymentId: id,
      customerId: "C1",
      amount: 20,
      currency: "USD",
      method: "CARD",
      status: "SUCCESS",
      timestamp,
    },
  });
  await d.input("bss.payment.events").pipeMany([
    pay("future", 9e15),
    pay("tomorrow-and-a-bit", T0 + 86_400_001),
    pay("minus-one", -1),
    pay("iso-before-1970", "1969-12-31T23:59:59Z"),
  ]);
  const reasons = d.output<DeadLetter>("bss.dlq").readValues().map((r) => r.reason);
  assertEquals(reasons, [
    "timestamp: 9000000000000000 is outside the range of dates (±8640000000000000 ms)",
    `timestamp: ${
      T0 + 86_400_001
    } (2026-11-27T10:00:00.001Z) is more than 86400000 ms ahead of the wall clock (2026-11-26T10:00:00.000Z)`,
    "timestamp: -1 is before the earliest accepted event time 0 (1970-01-01T00:00:00.000Z)",
    "timestamp: -1000 is before the earliest accepted event time 0 (1970-01-01T00:00:00.000Z)",
  ]);
  // Stream time did not move: 11 payments now still form a burst, none of them late.
  await d.input("bss.payment.events").pipeMany(
    Array.from({ length: 11 }, (_, i) => pay(`p${i}`, T0 + i)),
  );
  assertEquals(
    d.output<{ paymentId: string }>("bss.fraud.alerts").readValues().map((a) => a.paymentId),
    ["p10"],
  );
  assertEquals(d.runner.tasks.map((t) => t.streamTime).filter(Number.isFinite), [T0 + 10]);
  assertEquals(d.output("bss.late").readValues(), []);
  d.close();
});

Deno.test("a table update's record timestamp is checked too", async () => {
  const d = await TestDriver.create({
    build: (b) => {
      b.table("users", { store: "users" });
    },
    startTime: T0,
    eventTime: { min: 0, maxAheadMs: 1_000 },
  });
  await d.input("users").pipe("u1", { name: "Ada" }, { timestamp: T0 + 5_000 });
  assertEquals(d.output<DeadLetter>("bss.dlq").readValues().map((r) => r.reason), [
    `the record timestamp: ${
      T0 + 5_000
    } (2026-11-26T10:00:05.000Z) is more than 1000 ms ahead of the wall clock (2026-11-26T10:00:00.000Z)`,
  ]);
  assertEquals(d.keyValueStore("users").all(), []);
  d.close();
});
