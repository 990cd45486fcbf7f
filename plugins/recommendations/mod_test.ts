import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TestDriver } from "../../pipeline/testing/mod.ts";
import recommendations from "./mod.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const view = (customerId: string, productId: string, category: string, at: number) => ({
  key: customerId,
  value: { customerId, productId, category, timestamp: at, eventId: `v-${productId}-${at}` },
});

async function driver() {
  return await TestDriver.create({
    plugins: [{ plugin: recommendations }],
    topics: { "bss.product.views": 3, "bss.customer.events": 3 },
  });
}

Deno.test("a view after views counted 5/3/2/1 recommends the top three categories in order", async () => {
  const d = await driver();
  const counts: [string, number][] = [["Laptops", 5], ["Phones", 3], ["Audio", 2], ["Books", 1]];
  let t = T0;
  const history = counts.flatMap(([category, n]) =>
    Array.from({ length: n }, () => view("C1", `P-${category}`, category, t++))
  );
  await d.input("bss.product.views").pipeMany(history);
  d.output("bss.recommendations").readValues(); // one per view so far
  await d.input("bss.product.views").pipe("C1", view("C1", "P-new", "Laptops", t).value);
  assertEquals(d.output("bss.recommendations").readValues(), [{
    customerId: "C1",
    productId: "P-new",
    category: "Laptops",
    recommendations: ["Laptops", "Phones", "Audio"],
    confidence: 0.85,
    algorithm: "category-affinity-v1",
    eventIds: [`v-P-new-${t}`],
  }]);
  d.close();
});

Deno.test("ties go to the most recent category; activities with a category count too", async () => {
  const d = await driver();
  await d.input("bss.product.views").pipeMany([
    view("C2", "p1", "Books", T0),
    view("C2", "p2", "Garden", T0 + 10),
  ]);
  await d.input("bss.customer.events").pipe("C2", {
    customerId: "C2",
    activityType: "SEARCH",
    category: "Books",
    timestamp: T0 + 20,
  });
  await d.input("bss.customer.events").pipe("C2", {
    customerId: "C2",
    activityType: "LOGIN",
    timestamp: T0 + 25,
  });
  await d.input("bss.product.views").pipe("C2", view("C2", "p3", "Toys", T0 + 30).value);
  const recs = d.output<{ recommendations: string[] }>("bss.recommendations").readValues();
  assertEquals(recs.map((r) => r.recommendations), [["Books"], ["Garden", "Books"], [
    "Books",
    "Toys",
    "Garden",
  ]]);
  d.close();
});

Deno.test("trending carries the top products of the current hour window, updated as counts change", async () => {
  const d = await TestDriver.create({
    plugins: [{ plugin: recommendations, options: { trendingSize: 2 } }],
    topics: { "bss.product.views": 3, "bss.customer.events": 3 },
  });
  await d.input("bss.product.views").pipeMany([
    view("a", "P1", "x", T0),
    view("b", "P2", "x", T0 + 1),
    view("c", "P2", "x", T0 + 2),
    view("d", "P3", "x", T0 + 3),
    view("e", "P3", "x", T0 + 4),
    view("f", "P3", "x", T0 + 5),
  ]);
  const trending = d.output<
    { windowStart: number; products: { productId: string; views: number }[]; eventIds: string[] }
  >("bss.products.trending")
    .readValues();
  const hour = Math.floor(T0 / 3_600_000) * 3_600_000;
  assertEquals(trending.map((t) => t.windowStart), trending.map(() => hour));
  assertEquals(trending[trending.length - 1].products, [{ productId: "P3", views: 3 }, {
    productId: "P2",
    views: 2,
  }]);
  // Each update names the view behind it: one of those piped, of a product in its list.
  const piped = ["P1", "P2", "P2", "P3", "P3", "P3"].map((p, i) => `v-${p}-${T0 + i}`);
  for (const t of trending) {
    assertEquals(t.eventIds.length, 1);
    assertEquals(piped.includes(t.eventIds[0]), true);
    assertEquals(t.products.some((p) => t.eventIds[0].startsWith(`v-${p.productId}-`)), true);
  }
  d.close();
});

Deno.test("a view that leaves the top list as it was writes nothing to trending", async () => {
  const d = await TestDriver.create({
    plugins: [{ plugin: recommendations, options: { trendingSize: 2 } }],
    topics: { "bss.product.views": 3, "bss.customer.events": 3 },
  });
  // One customer, so the views are counted in the order piped.
  await d.input("bss.product.views").pipeMany(
    ["P1", "P2", "P2", "P3", "P3", "P3"].map((p, i) => view("a", p, "x", T0 + i)),
  );
  const trending = d.output<{ products: { productId: string; views: number }[] }>(
    "bss.products.trending",
  ).readValues();
  // P3's first view leaves the top two (P2 2, P1 1) as they were.
  assertEquals(
    trending.map((t) => t.products.map((p) => `${p.productId}:${p.views}`).join(" ")),
    ["P1:1", "P1:1 P2:1", "P2:2 P1:1", "P2:2 P3:2", "P3:3 P2:2"],
  );
  d.close();
});

Deno.test("profiles persist their counts but not the view behind the last update", async () => {
  const kvPath = await Deno.makeTempFile({ suffix: ".kv" });
  const options = {
    plugins: [{ plugin: recommendations }],
    topics: { "bss.product.views": 3, "bss.customer.events": 3 },
    kvPath,
  };
  const before = await TestDriver.create(options);
  await before.input("bss.product.views").pipeMany([
    view("C3", "p1", "Books", T0),
    view("C3", "p2", "Books", T0 + 1),
    view("C3", "p3", "Garden", T0 + 2),
  ]);
  before.close();
  const after = await TestDriver.create(options);
  // What a restart reads back: the counts, no view.
  assertEquals(JSON.parse(JSON.stringify(after.keyValueStore("interest-profiles").get("C3"))), {
    categories: { Books: [2, T0 + 1, 2], Garden: [1, T0 + 2, 3] },
    updates: 3,
  });
  await after.input("bss.customer.events").pipe("C3", {
    customerId: "C3",
    activityType: "SEARCH",
    category: "Garden",
    timestamp: T0 + 3,
  });
  await after.input("bss.product.views").pipe("C3", view("C3", "p4", "Toys", T0 + 4).value);
  // Only the view recommends, from the counts kept across the restart.
  assertEquals(
    after.output<{ productId: string; recommendations: string[] }>("bss.recommendations")
      .readValues().map((r) => [r.productId, r.recommendations]),
    [["p4", ["Garden", "Books", "Toys"]]],
  );
  after.close();
  await Deno.remove(kvPath);
});
