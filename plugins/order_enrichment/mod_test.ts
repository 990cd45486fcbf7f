import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TestDriver } from "../../pipeline/testing/mod.ts";
import enrichment from "./mod.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const order = (
  orderId: string,
  customerId: string,
  totalAmount: number,
  at: number,
  extra: object = {},
) => ({
  key: orderId,
  value: {
    orderId,
    customerId,
    productId: "P1",
    quantity: 1,
    unitPrice: totalAmount,
    totalAmount,
    currency: "USD",
    status: "CREATED",
    timestamp: at,
    ...extra,
  },
});

async function driver() {
  const d = await TestDriver.create({
    plugins: [{ plugin: enrichment }],
    topics: { "bss.order.events": 3, "bss.customer.info": 3 },
  });
  await d.input("bss.customer.info").pipeMany([
    {
      key: "C-GOLD",
      value: { customerId: "C-GOLD", tier: "GOLD", region: "EU-WEST", name: "Ada" },
      options: { timestamp: 1 },
    },
    {
      key: "C-BRONZE",
      value: { customerId: "C-BRONZE", tier: "BRONZE", region: "US-EAST" },
      options: { timestamp: 1 },
    },
  ]);
  return d;
}

Deno.test("a $1 500 order from a GOLD customer goes to bss.orders.highvalue as the enriched order", async () => {
  const d = await driver();
  await d.input("bss.order.events").pipeMany([
    order("o1", "C-GOLD", 1500, T0),
    order("o2", "C-GOLD", 999, T0 + 1),
  ]);
  const high = d.output<Record<string, unknown>>("bss.orders.highvalue").readRecords();
  assertEquals(high.map((r) => r.key), ["o1"]);
  const enriched = {
    orderId: "o1",
    customerId: "C-GOLD",
    productId: "P1",
    quantity: 1,
    unitPrice: 1500,
    totalAmount: 1500,
    currency: "USD",
    status: "CREATED",
    timestamp: T0,
    customer: { customerId: "C-GOLD", tier: "GOLD", region: "EU-WEST", name: "Ada", segment: null },
    region: "EU-WEST",
    eventIds: ["o1"],
  };
  assertEquals(high[0].value, enriched);
  const all = d.output<Record<string, unknown>>("bss.orders.enriched").readValues();
  assertEquals(all.find((e) => e.orderId === "o1"), enriched);
  d.close();
});

Deno.test("a high-value order of an unknown customer carries customer: null", async () => {
  const d = await driver();
  await d.input("bss.order.events").pipe("o9", order("o9", "C-NOBODY", 5000, T0).value);
  const high = d.output<{ customer: unknown; region: string }>("bss.orders.highvalue")
    .readValues();
  assertEquals(high.map((h) => [h.customer, h.region]), [[null, "UNKNOWN"]]);
  d.close();
});

Deno.test("an order from an unknown customer is still emitted, with customer: null and its own region", async () => {
  const d = await driver();
  await d.input("bss.order.events").pipeMany([
    order("o3", "C-NOBODY", 50, T0, { region: "APAC" }),
    order("o4", "C-BRONZE", 20, T0 + 1, { region: "APAC" }),
    order("o5", "C-NOBODY2", 30, T0 + 2),
  ]);
  const enriched = d.output<Record<string, unknown>>("bss.orders.enriched").readValues();
  // Orders of different customers pass different partitions: compare them by order id.
  assertEquals(enriched.map((e) => [e.orderId, e.customer, e.region]).sort(), [
    ["o3", null, "APAC"],
    [
      "o4",
      { customerId: "C-BRONZE", name: null, region: "US-EAST", segment: null, tier: "BRONZE" },
      "US-EAST",
    ],
    ["o5", null, "UNKNOWN"],
  ]);
  d.close();
});

Deno.test("regional trends count, sum and average new orders per 1-hour window", async () => {
  const d = await driver();
  await d.input("bss.order.events").pipeMany([
    order("o1", "C-GOLD", 100, T0),
    order("o2", "C-GOLD", 50.5, T0 + 60_000),
    order("o2", "C-GOLD", 50.5, T0 + 61_000, { status: "PAID" }), // not a new order
    order("o3", "C-BRONZE", 10, T0 + 120_000),
  ]);
  const trend = d.output<Record<string, unknown>>("bss.orders.region.trend").readValues();
  const hour = Math.floor(T0 / 3_600_000) * 3_600_000;
  assertEquals(trend, [
    {
      region: "EU-WEST",
      windowStart: hour,
      windowEnd: hour + 3_600_000,
      orderCount: 1,
      totalValue: 100,
      averageValue: 100,
      eventIds: ["o1"],
    },
    {
      region: "EU-WEST",
      windowStart: hour,
      windowEnd: hour + 3_600_000,
      orderCount: 2,
      totalValue: 150.5,
      averageValue: 75.25,
      eventIds: ["o2"],
    },
    {
      region: "US-EAST",
      windowStart: hour,
      windowEnd: hour + 3_600_000,
      orderCount: 1,
      totalValue: 10,
      averageValue: 10,
      eventIds: ["o3"],
    },
  ]);
  d.close();
});
