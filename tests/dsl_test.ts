import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type StreamsBuilder, TimeWindows, z } from "../pipeline/mod.ts";
import { partitionForKey } from "../pipeline/topics/partitioner.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";
import { storedPages } from "./fixtures/stored_pages.ts";

type Sale = { shop: string; product: string; amount: number; timestamp: number };
const sale = (shop: string, product: string, amount: number, timestamp: number): Sale => ({
  shop,
  product,
  amount,
  timestamp,
});

Deno.test("selectKey + groupByKey repartitions so counts per new key are complete across partitions", async () => {
  const d = await TestDriver.create({
    topics: { sales: 3 },
    build: (b) =>
      b.stream<Sale>("sales")
        .selectKey((_k, s) => s.product)
        .groupByKey()
        .count({ store: "sales-per-product" })
        .toStream().to("product-counts"),
  });
  // Keyed by shop, so one product's sales start in several partitions.
  const sales = [
    sale("s1", "p1", 1, 1),
    sale("s2", "p1", 1, 2),
    sale("s3", "p1", 1, 3),
    sale("s4", "p2", 1, 4),
    sale("s5", "p1", 1, 5),
  ];
  await d.input<Sale>("sales").pipeMany(sales.map((s) => ({ key: s.shop, value: s })));
  const partitions = new Set(["s1", "s2", "s3", "s5"].map((k) => partitionForKey(k, 3)));
  assertEquals(partitions.size > 1, true, "test data must span partitions");
  assertEquals(d.keyValueStore("sales-per-product").all(), [["p1", 4], ["p2", 1]]);
  const finals = new Map(d.output<number>("product-counts").readKeyValues());
  assertEquals(finals, new Map([["p1", 4], ["p2", 1]]));
  assertEquals(d.log.hasTopic("test-sales-per-product-repartition"), true);
  d.close();
});

Deno.test("filter, map, mapValues, flatMap, peek and split route records as declared", async () => {
  const seen: string[] = [];
  const d = await TestDriver.create({
    build: (b) => {
      const sales = b.stream<Sale>("sales").peek((k) => seen.push(String(k)));
      const { big, small } = sales.filter((_k, s) => s.amount > 0)
        .split()
        .branch((_k, s) => s.amount >= 100, "big")
        .defaultBranch("small");
      big.mapValues((s) => s.product).to("big");
      small.flatMap((
        k,
        s,
      ) => [{ key: `${k}-a`, value: s.amount }, { key: `${k}-b`, value: s.amount * 2 }])
        .to("small");
      sales.map((_k, s) => ({ key: s.product, value: s.shop })).to("by-product");
    },
  });
  await d.input<Sale>("sales").pipeMany([
    { key: "s1", value: sale("s1", "p1", 150, 1) },
    { key: "s2", value: sale("s2", "p2", 5, 2) },
    { key: "s3", value: sale("s3", "p3", 0, 3) },
  ]);
  assertEquals(seen, ["s1", "s2", "s3"]);
  assertEquals(d.output("big").readKeyValues(), [["s1", "p1"]]);
  assertEquals(d.output("small").readKeyValues(), [["s2-a", 5], ["s2-b", 10]]);
  assertEquals(d.output("by-product").readKeyValues(), [["p1", "s1"], ["p2", "s2"], ["p3", "s3"]]);
  d.close();
});

Deno.test("reduce and aggregate keep the latest aggregate per key; tables materialize the latest value", async () => {
  const d = await TestDriver.create({
    build: (b) => {
      const s = b.stream<Sale>("sales").groupByKey();
      s.reduce((a, v) => ({ ...v, amount: a.amount + v.amount }), { store: "sum" }).toStream()
        .mapValues((v) => v.amount).to("sums");
      s.aggregate(
        () => ({ n: 0, max: 0 }),
        (_k, v, a) => ({ n: a.n + 1, max: Math.max(a.max, v.amount) }),
        {
          store: "stats",
        },
      );
      b.table<{ name: string }>("shops", { store: "shops" });
    },
  });
  await d.input<Sale>("sales").pipeMany([
    { key: "s1", value: sale("s1", "p", 3, 1) },
    { key: "s1", value: sale("s1", "p", 7, 2) },
    { key: "s2", value: sale("s2", "p", 1, 3) },
  ]);
  await d.input("shops").pipe("s1", { name: "one" });
  await d.input("shops").pipe("s1", { name: "uno" });
  assertEquals(d.output("sums").readKeyValues(), [["s1", 3], ["s1", 10], ["s2", 1]]);
  assertEquals(d.keyValueStore("stats").all(), [["s1", { n: 2, max: 7 }], ["s2", {
    n: 1,
    max: 1,
  }]]);
  assertEquals(d.keyValueStore("shops").get("s1"), { name: "uno" });
  d.close();
});

Deno.test("a record re-keyed to no key is dead-lettered by the step that needs one, with its value as raw", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Sale>("sales").selectKey((_k, s) => s.shop === "s2" ? null : s.product)
        .groupByKey().count({ store: "per-product" }),
  });
  await d.input<Sale>("sales").pipeMany([
    { key: "s1", value: sale("s1", "p1", 3, 1) },
    { key: "s2", value: sale("s2", "p1", 4, 2) },
  ]);
  assertEquals(d.keyValueStore("per-product").all(), [["p1", 1]]);
  const dlq = d.output<Record<string, unknown>>("bss.dlq").readValues();
  assertEquals(dlq.map((r) => [r.sourceTopic, r.key, r.plugin, r.reason]), [
    [
      "test-per-product-repartition",
      null,
      "test",
      "aggregation 'per-product' needs a string key: the record has null",
    ],
  ]);
  // Handed over in memory, the re-keyed value was never serialized: the report still has it.
  assertEquals(JSON.parse(String(dlq[0].raw)), sale("s2", "p1", 4, 2));
  d.close();
});

Deno.test("malformed, invalid and badly timed records go to bss.dlq with the reason; processing goes on", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream("sales", { schema: z.object({ amount: z.number(), timestamp: z.number() }) })
        .mapValues((s) => s.amount).to("amounts"),
  });
  const sales = d.input("sales");
  await sales.pipeText("k1", "{not json");
  await sales.pipe("k2", { amount: "12", timestamp: 1 });
  await sales.pipe("k3", { amount: 5, timestamp: "yesterday" });
  await sales.pipe("k4", { amount: 7, timestamp: 2 });
  assertEquals(d.output("amounts").readValues(), [7]);
  const dlq = d.output<Record<string, unknown>>("bss.dlq").readValues();
  assertEquals(dlq.map((r) => [r.sourceTopic, r.partition, r.offset, r.key]), [
    ["sales", 0, 0, "k1"],
    ["sales", 0, 1, "k2"],
    ["sales", 0, 2, "k3"],
  ]);
  assertEquals(dlq[0].raw, "{not json");
  assertEquals(String(dlq[0].reason).startsWith("value is not valid JSON"), true);
  assertEquals(String(dlq[1].reason), "amount: Invalid input: expected number, received string");
  assertEquals(dlq[1].plugin, "test");
  assertEquals(
    String(dlq[2].reason).startsWith("timestamp: expected epoch milliseconds or an ISO-8601"),
    true,
  );
  d.close();
});

Deno.test("ISO-8601 timestamps are event time", async () => {
  const d = await TestDriver.create({
    build: (b) => b.stream("e").mapValues((v) => v).to("out"),
  });
  await d.input("e").pipe("k", { timestamp: "2026-01-01T00:00:00Z" }, { timestamp: 5 });
  assertEquals(d.output("out").readRecords()[0].timestamp, Date.parse("2026-01-01T00:00:00Z"));
  d.close();
});

Deno.test("cleanup purges unconsumed repartition records, so reprocessing counts each input once", async () => {
  const d = await TestDriver.create({
    handoff: false, // re-keyed records wait in the repartition topic for a later batch
    topics: { sales: 2 },
    build: (b) =>
      b.stream<Sale>("sales").selectKey((_k, s) => s.product).groupByKey().count({
        store: "per-product",
      }),
  });
  await d.log.append(
    "sales",
    ["s1", "s2", "s3", "s4"].map((shop, i) => ({
      key: shop,
      value: JSON.stringify(sale(shop, "p1", 1, i)),
    })),
  );
  await d.runner.runOnce(); // re-keys into the repartition topic; counting comes in a later batch
  assertEquals(d.keyValueStore("per-product").all(), []);
  await d.runner.cleanup();
  assertEquals(d.keyValueStore("per-product").all(), []);
  await d.runner.runUntilIdle();
  assertEquals(d.keyValueStore("per-product").all(), [["p1", 4]]);
  d.close();
});

Deno.test("re-keyed records are counted in the batch that re-keys them, and never stored", async () => {
  const d = await TestDriver.create({
    topics: { sales: 2 },
    build: (b) =>
      b.stream<Sale>("sales").selectKey((_k, s) => s.product).groupByKey().count({
        store: "per-product",
      }),
  });
  const repartition = "test-per-product-repartition";
  const sales = (from: number) =>
    ["s1", "s2", "s3", "s4"].map((shop, i) => ({
      key: shop,
      value: JSON.stringify(sale(shop, `p${i % 2}`, 1, from + i)),
    }));
  await d.log.append("sales", sales(0));
  assertEquals(await d.runner.runOnce(), 8); // 4 sales + their 4 re-keyed copies, one batch
  await d.runner.runUntilIdle();
  assertEquals(d.keyValueStore("per-product").all(), [["p0", 2], ["p1", 2]]);
  const ends = () => [0, 1].map((p) => d.log.endOffset(repartition, p));
  const stored = async () => (await storedPages(d.kv, repartition)).length;
  // Offsets move on as if the records had been appended; nothing is written for them.
  assertEquals(ends().reduce((a, b) => a + b), 4);
  assertEquals(await stored(), 0);
  await d.log.append("sales", sales(10));
  await d.runner.runUntilIdle();
  assertEquals(d.keyValueStore("per-product").all(), [["p0", 4], ["p1", 4]]);
  assertEquals(ends().reduce((a, b) => a + b), 8);
  assertEquals(await stored(), 0);
  d.close();
});

Deno.test("records left in a repartition topic are read first; hand-off resumes once caught up", async () => {
  const path = await Deno.makeTempFile({ suffix: ".kv" });
  const build = (b: StreamsBuilder) =>
    b.stream<Sale>("sales").selectKey((_k, s) => s.product).groupByKey()
      .aggregate<string[]>(() => [], (_k, s, seen) => [...seen, s.shop], { store: "shops" });
  const sales = (shops: string[]) =>
    shops.map((shop, i) => ({ key: shop, value: JSON.stringify(sale(shop, "p1", 1, i)) }));
  // Without hand-off, one batch leaves the re-keyed records unread in the repartition topic.
  const before = await TestDriver.create({
    kvPath: path,
    handoff: false,
    topics: { sales: 1 },
    build,
  });
  await before.log.append("sales", sales(["a", "b", "c"]));
  await before.runner.runOnce();
  assertEquals(before.keyValueStore("shops").all(), []);
  before.close();
  // A runner with hand-off reads them before the records it re-keys itself, keeping key order.
  const after = await TestDriver.create({ kvPath: path, topics: { sales: 1 }, build });
  await after.log.append("sales", sales(["d", "e"]));
  await after.runner.runUntilIdle();
  assertEquals(after.keyValueStore("shops").all(), [["p1", ["a", "b", "c", "d", "e"]]]);
  await after.log.append("sales", sales(["f"]));
  await after.runner.runUntilIdle();
  assertEquals(after.keyValueStore("shops").all(), [["p1", ["a", "b", "c", "d", "e", "f"]]]);
  // The records read from the topic were purged; "f" was never stored.
  assertEquals(after.log.endOffset("test-shops-repartition", 0), 6);
  assertEquals(await storedPages(after.kv, "test-shops-repartition"), []);
  after.close();
  await Deno.remove(path);
});

Deno.test("every output record names its origin: input topic, partition, offset and index, extended behind a repartition", async () => {
  const d = await TestDriver.create({
    topics: { sales: 2 },
    build: (b) => {
      const sales = b.stream<Sale>("sales");
      sales.flatMapValues((s) => [s.amount, s.amount * 2]).to("amounts");
      sales.selectKey((_k, s) => s.product).groupByKey().count({ store: "per-product" })
        .toStream().to("counts");
    },
  });
  await d.input<Sale>("sales").pipeMany([
    { key: "s1", value: sale("s1", "p1", 5, 1) },
    { key: "s1", value: sale("s1", "p2", 7, 2) },
  ]);
  const p = partitionForKey("s1", 2);
  const origins = (topic: string) =>
    d.output(topic).readRecords().map((r) => [r.value, r.headers["bss.origin"]]);
  assertEquals(origins("amounts"), [
    [5, `sales:${p}:0:0`],
    [10, `sales:${p}:0:1`],
    [7, `sales:${p}:1:0`],
    [14, `sales:${p}:1:1`],
  ]);
  // The count comes from the re-keyed record, itself output 2 of its input record.
  assertEquals(origins("counts").sort(), [[1, `sales:${p}:0:2.0`], [1, `sales:${p}:1:2.0`]]);
  d.close();
});

Deno.test("the record cache forwards each key's latest aggregate once per commit, least recently updated first; eviction forwards early", async () => {
  const build = (b: StreamsBuilder) =>
    b.stream<Sale>("sales").groupByKey().count({ store: "cached-counts" }).toStream()
      .to("counts");
  const sales = (keys: string[]) => keys.map((k, i) => ({ key: k, value: sale(k, "p", 1, i) }));
  const cached = await TestDriver.create({ build, cacheMaxBytes: 10 * 1024 * 1024 });
  await cached.input<Sale>("sales").pipeMany(sales(["a", "b", "a", "a", "b"]));
  const first = cached.output<number>("counts").readRecords();
  assertEquals(first.map((r) => [r.key, r.value]), [["a", 3], ["b", 2]]);
  // The latest update's input is the origin: offsets 3 and 4.
  assertEquals(first.map((r) => r.headers["bss.origin"].split(":").slice(1, 3)), [
    ["0", "3"],
    ["0", "4"],
  ]);
  await cached.input<Sale>("sales").pipeMany(sales(["b"]));
  assertEquals(cached.output<number>("counts").readKeyValues(), [["b", 3]]);
  cached.close();

  // Room for one result: changing another key forwards the held one at once.
  const tiny = await TestDriver.create({ build, cacheMaxBytes: 512 });
  await tiny.input<Sale>("sales").pipeMany(sales(["a", "a", "b", "b", "a"]));
  assertEquals(tiny.output<number>("counts").readKeyValues(), [["a", 2], ["b", 2], ["a", 3]]);
  tiny.close();

  // Off: every update.
  const off = await TestDriver.create({ build, cacheMaxBytes: 0 });
  await off.input<Sale>("sales").pipeMany(sales(["a", "b", "a"]));
  assertEquals(off.output<number>("counts").readKeyValues(), [["a", 1], ["b", 1], ["a", 2]]);
  off.close();
});

Deno.test("a cached result forwarded into a cache flushed before it in the same commit is forwarded in that commit too", async () => {
  // The totals' cache holds a direct record's update before the counts' cache exists, so it is
  // flushed first; the counts then forwarded into it must still come out of this commit.
  const d = await TestDriver.create({
    cacheMaxBytes: 10 * 1024 * 1024,
    build: (b) => {
      const counts = b.stream<Sale>("sales").groupByKey().count({ store: "counts" }).toStream();
      b.stream<number>("direct").merge(counts).groupByKey()
        .reduce((a, c) => a + c, { store: "totals" }).toStream().to("totals");
    },
  });
  await d.input<number>("direct").pipeMany([{ key: "k", value: 10 }]);
  assertEquals(d.output<number>("totals").readKeyValues(), [["k", 10]]);
  await d.input<number>("direct").pipeMany([{ key: "k", value: 100 }]);
  await d.input<Sale>("sales").pipeMany([{ key: "k", value: sale("k", "p", 1, 1) }]);
  assertEquals(d.output<number>("totals").readKeyValues(), [["k", 110], ["k", 111]]);
  assertEquals(d.keyValueStore("totals").get("k"), 111);
  d.close();
});

Deno.test("processValues emits per event with its stores, never through the cache; windowed results coalesce per window", async () => {
  const d = await TestDriver.create({
    cacheMaxBytes: 10 * 1024 * 1024,
    build: (b) => {
      const seen = b.keyValueStore<number>("seen");
      const sales = b.stream<Sale>("sales");
      sales.processValues([seen], (s, key, ctx) => {
        const n = (ctx.store(seen).get(key) ?? 0) + 1;
        ctx.store(seen).put(key, n);
        return [`${s.product}#${n}`];
      }).to("seen");
      sales.groupByKey().windowedBy(TimeWindows.ofSizeWithNoGrace(10))
        .count({ store: "per-window" }).toStream()
        .map((wk, n) => ({ key: `${wk.key}@${wk.window.start}`, value: n })).to("windows");
    },
  });
  await d.input<Sale>("sales").pipeMany([
    { key: "s", value: sale("s", "p1", 1, 1) },
    { key: "s", value: sale("s", "p2", 1, 2) },
    { key: "s", value: sale("s", "p3", 1, 12) },
    { key: "s", value: sale("s", "p4", 1, 13) },
  ]);
  assertEquals(d.output("seen").readValues(), ["p1#1", "p2#2", "p3#3", "p4#4"]);
  assertEquals(d.output("windows").readKeyValues(), [["s@0", 2], ["s@10", 2]]);
  assertEquals(d.keyValueStore("seen").get("s"), 4);
  d.close();
});
