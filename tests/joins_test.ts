import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { JoinWindows } from "../pipeline/mod.ts";
import { partitionForKey } from "../pipeline/topics/partitioner.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";

type Order = { orderId: string; customerId: string; amount: number; timestamp: number };
type Customer = { tier: string };

Deno.test("stream-table left join emits with the match, with null without one, and honours tombstones", async () => {
  const d = await TestDriver.create({
    topics: { orders: 3, customers: 3 },
    build: (b) => {
      const customers = b.table<Customer>("customers", { store: "customers-store" });
      b.stream<Order>("orders")
        .leftJoin(customers, (o, c) => ({ orderId: o.orderId, tier: c?.tier ?? null }))
        .to("enriched");
    },
  });
  await d.input<Customer>("customers").pipe("c1", { tier: "GOLD" }, { timestamp: 1 });
  await d.input<Order>("orders").pipe("c1", {
    orderId: "o1",
    customerId: "c1",
    amount: 5,
    timestamp: 10,
  });
  await d.input<Order>("orders").pipe("c2", {
    orderId: "o2",
    customerId: "c2",
    amount: 5,
    timestamp: 11,
  });
  await d.input<Customer>("customers").pipe("c1", null, { timestamp: 12 }); // tombstone deletes c1
  await d.input<Order>("orders").pipe("c1", {
    orderId: "o3",
    customerId: "c1",
    amount: 5,
    timestamp: 13,
  });
  assertEquals(d.output("enriched").readKeyValues(), [
    ["c1", { orderId: "o1", tier: "GOLD" }],
    ["c2", { orderId: "o2", tier: null }],
    ["c1", { orderId: "o3", tier: null }],
  ]);
  assertEquals(d.keyValueStore("customers-store").get("c1"), undefined);
  d.close();
});

Deno.test("stream-table inner join drops records without a match", async () => {
  const d = await TestDriver.create({
    build: (b) => {
      const customers = b.table<Customer>("customers", { store: "c" });
      b.stream<Order>("orders").join(customers, (o, c) => `${o.orderId}:${c.tier}`).to("out");
    },
  });
  await d.input<Customer>("customers").pipe("c1", { tier: "SILVER" }, { timestamp: 1 });
  await d.input<Order>("orders").pipe("c1", {
    orderId: "o1",
    customerId: "c1",
    amount: 1,
    timestamp: 2,
  });
  await d.input<Order>("orders").pipe("zz", {
    orderId: "o2",
    customerId: "zz",
    amount: 1,
    timestamp: 3,
  });
  assertEquals(d.output("out").readValues(), ["o1:SILVER"]);
  d.close();
});

Deno.test("re-keyed stream joins a table through a repartition topic with the table's partition count", async () => {
  const d = await TestDriver.create({
    topics: { orders: 2, customers: 4 },
    build: (b) => {
      const customers = b.table<Customer>("customers", { store: "customers-by-id" });
      b.stream<Order>("orders")
        .selectKey((_k, o) => o.customerId)
        .leftJoin(customers, (o, c) => ({ orderId: o.orderId, tier: c?.tier ?? null }))
        .to("enriched");
    },
  });
  const customers = ["c1", "c2", "c3", "c4", "c5"];
  for (const [i, c] of customers.entries()) {
    await d.input<Customer>("customers").pipe(c, { tier: `T${i}` }, { timestamp: 1 });
  }
  await d.input<Order>("orders").pipeMany(
    customers.map((c, i) => ({
      key: `o${i}`,
      value: { orderId: `o${i}`, customerId: c, amount: 1, timestamp: 10 + i },
    })),
  );
  const out = d.output<{ orderId: string; tier: string }>("enriched").readRecords();
  assertEquals(
    out.map((r) => [r.key, r.value.orderId, r.value.tier]).sort(),
    customers.map((c, i) => [c, `o${i}`, `T${i}`]),
  );
  const repartition = "test-customers-by-id-join-repartition";
  assertEquals(d.log.partitions(repartition), 4);
  // Consumed repartition records are purged; their end offsets show where each key went.
  const expected = [0, 0, 0, 0];
  for (const c of customers) expected[partitionForKey(c, 4)]++;
  assertEquals([0, 1, 2, 3].map((p) => d.log.endOffset(repartition, p)), expected);
  d.close();
});

Deno.test("stream-stream join pairs records within the window only", async () => {
  type View = { page: string; timestamp: number };
  type Click = { button: string; timestamp: number };
  const d = await TestDriver.create({
    build: (b) => {
      const clicks = b.stream<Click>("clicks");
      b.stream<View>("views")
        .join(clicks, (v, c) => `${v.page}+${c.button}`, {
          window: JoinWindows.ofTimeDifferenceAndGrace(60_000, 0),
          store: "view-click",
        })
        .to("joined");
    },
  });
  await d.input<View>("views").pipe("u1", { page: "home", timestamp: 100_000 });
  await d.input<Click>("clicks").pipe("u1", { button: "buy", timestamp: 150_000 }); // 50 s later: joins
  await d.input<Click>("clicks").pipe("u1", { button: "late", timestamp: 170_000 }); // 70 s: outside
  await d.input<Click>("clicks").pipe("u2", { button: "other-key", timestamp: 150_000 });
  await d.input<View>("views").pipe("u1", { page: "cart", timestamp: 200_000 }); // 50 s after buy, 30 s after late
  assertEquals(d.output("joined").readValues(), ["home+buy", "cart+buy", "cart+late"]);
  d.close();
});
