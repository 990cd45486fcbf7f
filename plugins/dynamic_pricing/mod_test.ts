import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TestDriver } from "../../pipeline/testing/mod.ts";
import pricing from "./mod.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z"); // a 15-minute boundary
const order = (i: number, productId: string, unitPrice: number, at: number) => ({
  key: `o${i}`,
  value: {
    orderId: `o${i}`,
    customerId: `c${i % 7}`,
    productId,
    quantity: 1,
    unitPrice,
    totalAmount: unitPrice,
    currency: "USD",
    status: "CREATED",
    timestamp: at,
  },
});
type Rec = {
  productId: string;
  orders: number;
  demandFactor: number;
  basePrice: number;
  recommendedPrice: number;
  changePercent: number;
  eventIds: string[];
};

Deno.test("200 orders against 50 expected in 15 minutes recommend exactly +10 %", async () => {
  const d = await TestDriver.create({
    plugins: [{ plugin: pricing }],
    topics: { "bss.order.events": 3 },
  });
  await d.input("bss.order.events").pipeMany(
    Array.from({ length: 200 }, (_, i) => order(i, "P1", 100, T0 + i * 4_000)),
  );
  const recs = d.output<Rec>("bss.pricing.recommendations").readValues();
  assertEquals(recs.length, 200);
  const last = recs[recs.length - 1];
  assertEquals([
    last.orders,
    last.demandFactor,
    last.basePrice,
    last.recommendedPrice,
    last.changePercent,
  ], [200, 4, 100, 110, 10]);
  // Orders arrive from three partitions in partition order; each is counted exactly once.
  assertEquals(
    recs.flatMap((r) => r.eventIds).sort(),
    Array.from({ length: 200 }, (_, i) => `o${i}`).sort(),
  );
  // 1 order of 50 expected: factor 0.02 → 100 × (1 − 0.098) = 90.2
  assertEquals([recs[0].demandFactor, recs[0].recommendedPrice], [0.02, 90.2]);
  // 60 orders: factor 1.2 → +2 %
  assertEquals([recs[59].orders, recs[59].recommendedPrice, recs[59].changePercent], [60, 102, 2]);
  d.close();
});

Deno.test("per-product expected orders and base prices override the defaults; windows are 15 minutes", async () => {
  const d = await TestDriver.create({
    plugins: [{
      plugin: pricing,
      options: { expectedOrdersByProduct: { P2: 2 }, basePrices: { P2: 40 } },
    }],
  });
  await d.input("bss.order.events").pipeMany([
    order(1, "P2", 55, T0),
    order(2, "P2", 55, T0 + 1),
    order(3, "P2", 55, T0 + 2),
    order(4, "P2", 55, T0 + 15 * 60_000), // next window
  ]);
  const recs = d.output<Rec & { windowStart: number }>("bss.pricing.recommendations").readValues();
  assertEquals(
    recs.map((
      r,
    ) => [r.windowStart - T0, r.orders, r.demandFactor, r.basePrice, r.recommendedPrice]),
    [
      [0, 1, 0.5, 40, 38],
      [0, 2, 1, 40, 40],
      [0, 3, 1.5, 40, 42],
      [900_000, 1, 0.5, 40, 38],
    ],
  );
  d.close();
});
