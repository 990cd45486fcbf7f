import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type OperatorMode, TimeWindows, type WindowStatsOf } from "../pipeline/mod.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";

const MIN = 60_000;
type Sale = { shop: string; amount: number; timestamp: number };
const sale = (shop: string, amount: number, timestamp: number): Sale => ({
  shop,
  amount,
  timestamp,
});
const MODES: OperatorMode[] = ["wasm", "ts"];

function salesStats(emit: "update" | "close" = "update") {
  return (b: import("../pipeline/mod.ts").StreamsBuilder) =>
    b.stream<Sale>("sales").groupByKey()
      .windowedBy(TimeWindows.ofSizeAndGrace(5 * MIN, 1 * MIN))
      .stats((s) => s.amount, { store: "sales-stats", emit })
      .toStream().to("stats-out");
}

/** count, sum, min, max, last and the amount of the record behind them (and counts, if asked). */
function rows(d: TestDriver, withCounts = false) {
  return d.output<WindowStatsOf<Sale>>("stats-out").readKeyValues().map(([k, v]) => [
    k,
    v === null ? null : [
      v.count,
      v.sum,
      v.min,
      v.max,
      v.last,
      v.event?.amount ?? null,
      ...(withCounts ? [v.counts] : []),
    ],
  ]);
}

for (const operators of MODES) {
  Deno.test(`[${operators}] stats count, sum and take min, max and last per key and window; late records go to bss.late`, async () => {
    const d = await TestDriver.create({ operators, build: salesStats() });
    const sales = d.input<Sale>("sales");
    await sales.pipe("a", sale("a", 10, 1 * MIN));
    await sales.pipe("a", sale("a", 4, 4 * MIN));
    await sales.pipe("b", sale("b", 7, 2 * MIN));
    await sales.pipe("a", sale("a", 30, 5 * MIN)); // next window [5,10)
    await sales.pipe("a", sale("a", 6, 4.5 * MIN)); // within grace: counted in [0,5)
    await sales.pipe("a", sale("a", 1, 6 * MIN)); // stream time 6m closes [0,5)
    await sales.pipe("a", sale("a", 99, 3 * MIN)); // too late
    assertEquals(rows(d), [
      ["a@0-300000", [1, 10, 10, 10, 10, 10]],
      ["a@0-300000", [2, 14, 4, 10, 4, 4]],
      ["b@0-300000", [1, 7, 7, 7, 7, 7]],
      ["a@300000-600000", [1, 30, 30, 30, 30, 30]],
      ["a@0-300000", [3, 20, 4, 10, 6, 6]],
      ["a@300000-600000", [2, 31, 1, 30, 1, 1]],
    ]);
    const late = d.output<Record<string, unknown>>("bss.late").readValues();
    assertEquals(late.map((l) => [l.offset, l.eventTime, l.streamTime, l.store]), [
      [6, 3 * MIN, 6 * MIN, "sales-stats"],
    ]);
    assertEquals(
      d.statsStore("sales-stats").all().map((w) => [w.key, w.start, w.end, w.stats.count]),
      [["a", 5 * MIN, 10 * MIN, 2]],
    );
    d.close();
  });

  Deno.test(`[${operators}] with the record cache on, stats forward each window once per commit, as of the record that last updated it`, async () => {
    const d = await TestDriver.create({ operators, build: salesStats(), cacheMaxBytes: 1 << 20 });
    await d.input<Sale>("sales").pipeMany([
      { key: "a", value: sale("a", 5, 1 * MIN) },
      { key: "b", value: sale("b", 8, 1 * MIN) },
      { key: "a", value: sale("a", 2, 2 * MIN) },
      { key: "a", value: sale("a", 9, 5.5 * MIN) },
      { key: "b", value: sale("b", 1, 3 * MIN) },
    ]);
    // Least recently updated first, as the record cache forwards.
    assertEquals(rows(d), [
      ["a@0-300000", [2, 7, 2, 5, 2, 2]],
      ["a@300000-600000", [1, 9, 9, 9, 9, 9]],
      ["b@0-300000", [2, 9, 1, 8, 1, 1]],
    ]);
    await d.input<Sale>("sales").pipe("b", sale("b", 4, 4 * MIN));
    const [update] = d.output<WindowStatsOf<Sale>>("stats-out").readRecords();
    assertEquals(update.value, {
      count: 3,
      sum: 13,
      min: 1,
      max: 8,
      last: 4,
      counts: {},
      event: sale("b", 4, 4 * MIN),
    });
    // The origin is the input record behind the result (offset 5 of sales), as held for the commit.
    assertEquals(update.headers["bss.origin"], "sales:0:5:0.0");
    d.close();
  });

  Deno.test(`[${operators}] emit-on-close stats emit each window once, when stream time passes end + grace, with no event`, async () => {
    const d = await TestDriver.create({ operators, build: salesStats("close") });
    const sales = d.input<Sale>("sales");
    await sales.pipe("a", sale("a", 3, 1 * MIN));
    await sales.pipe("a", sale("a", 4, 2 * MIN));
    await sales.pipe("a", sale("a", 5, 5.5 * MIN));
    assertEquals(rows(d), []);
    await sales.pipe("a", sale("a", 6, 6 * MIN));
    const out = d.output<WindowStatsOf<Sale>>("stats-out").readRecords();
    assertEquals(out.map((r) => [r.key, r.value, r.timestamp]), [
      [
        "a@0-300000",
        { count: 2, sum: 7, min: 3, max: 4, last: 4, counts: {}, event: null },
        5 * MIN - 1,
      ],
    ]);
    d.close();
  });
}

for (const operators of MODES) {
  Deno.test(`[${operators}] stats with a category count each window's records per category, new categories included, and keep the counts across a restart`, async () => {
    const dir = await Deno.makeTempDir();
    const kvPath = `${dir}/state.kv`;
    // Sales by payment method: the category is whatever the record says, none known in advance.
    const byMethod = (b: import("../pipeline/mod.ts").StreamsBuilder) =>
      b.stream<Sale & { method: string }>("sales").groupByKey()
        .windowedBy(TimeWindows.ofSizeAndGrace(5 * MIN, 1 * MIN))
        .stats((s) => s.amount, { store: "sales-by-method", category: (s) => s.method })
        .toStream().to("stats-out");
    const paid = (amount: number, at: number, method: string) => ({
      key: "a",
      value: { ...sale("a", amount, at), method },
    });
    let d = await TestDriver.create({ kvPath, operators, build: byMethod });
    await d.input("sales").pipeMany([paid(10, 1 * MIN, "CARD"), paid(5, 2 * MIN, "CASH")]);
    await d.input("sales").pipe("a", paid(7, 3 * MIN, "CARD").value);
    assertEquals(rows(d, true).slice(-1), [
      ["a@0-300000", [3, 22, 5, 10, 7, 7, { CARD: 2, CASH: 1 }]],
    ]);
    d.close();
    // After a restart, four new categories: the operator makes room for them as they come.
    d = await TestDriver.create({
      kvPath,
      operators: operators === "wasm" ? "ts" : "wasm",
      build: byMethod,
    });
    await d.input("sales").pipeMany(
      ["PAYPAL", "IDEAL", "CASH", "GIFT", "VOUCHER", "CARD"].map((m, i) => paid(i, 4 * MIN, m)),
    );
    await d.input("sales").pipe("a", paid(1, 6 * MIN, "CARD").value);
    const counts = { CARD: 3, CASH: 2, PAYPAL: 1, IDEAL: 1, GIFT: 1, VOUCHER: 1 };
    // Every update is forwarded (no record cache): the last of the window, then the next one.
    assertEquals(rows(d, true).slice(-2), [
      ["a@0-300000", [9, 37, 0, 10, 5, 5, counts]],
      ["a@300000-600000", [1, 1, 1, 1, 1, 1, { CARD: 1 }]],
    ]);
    // Stream time 6 min closed [0, 5 min) (1 min grace).
    assertEquals(d.statsStore("sales-by-method").all().map((w) => [w.start, w.stats.counts]), [
      [5 * MIN, { CARD: 1 }],
    ]);
    // A category that is not a string is the record's error: dead-lettered, not counted.
    await d.input("sales").pipe("a", { ...sale("a", 2, 7 * MIN), method: 4 });
    assertEquals(rows(d, true), []);
    assertEquals(d.output<{ reason: string }>("bss.dlq").readValues().map((r) => r.reason), [
      "processing the record failed: TypeError: stats 'sales-by-method' categorized a record as 4, not a string",
    ]);
    d.close();
    await Deno.remove(dir, { recursive: true });
  });
}

/** A seeded stream over many shops: out-of-order times, some late, amounts with repeats. */
function randomSales(n: number, seed: number): Sale[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const out: Sale[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += Math.floor(next() * 20_000);
    const shop = `shop-${Math.floor(next() * 300)}`;
    // One in ten records is up to 15 minutes old: within grace or late.
    const at = next() < 0.1 ? Math.max(0, t - Math.floor(next() * 15 * MIN)) : t;
    out.push(sale(shop, Math.floor(next() * 50) - 10, at));
  }
  return out;
}

// Categories by the hour of the sale: a new one every hour for 12 hours, so the operator makes
// room for more while windows are live.
const hopping = (b: import("../pipeline/mod.ts").StreamsBuilder) =>
  b.stream<Sale>("sales").groupByKey()
    .windowedBy(TimeWindows.ofSizeAndGrace(10 * MIN, 2 * MIN).advanceBy(5 * MIN))
    .stats((s) => s.amount, {
      store: "hop-stats",
      category: (s) => `h${Math.floor(s.timestamp / (60 * MIN)) % 12}`,
    })
    .toStream().to("stats-out");

/** Pipes `sales` in chunks, reopening the state every `restartEvery` chunks in the given modes. */
async function runWithRestarts(
  sales: Sale[],
  modes: OperatorMode[],
  restartEvery: number,
): Promise<{ outputs: unknown[]; windows: unknown[]; late: number }> {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/state.kv`;
  const outputs: unknown[] = [];
  let late = 0;
  let d: TestDriver | null = null;
  let run = 0;
  for (let chunk = 0; chunk * 40 < sales.length; chunk++) {
    if (chunk % restartEvery === 0) {
      d?.close();
      d = await TestDriver.create({
        kvPath,
        operators: modes[run++ % modes.length],
        build: hopping,
      });
    }
    await d!.input<Sale>("sales").pipeMany(
      sales.slice(chunk * 40, chunk * 40 + 40).map((value) => ({ key: value.shop, value })),
    );
    outputs.push(...rows(d!, true));
    late += d!.output("bss.late").readValues().length;
  }
  const windows = d!.statsStore("hop-stats").all();
  d!.close();
  await Deno.remove(dir, { recursive: true });
  return { outputs, windows, late };
}

Deno.test("stats give the same outputs and state in WebAssembly and TypeScript, across restarts that switch between them and load binary snapshots", async () => {
  const sales = randomSales(12_000, 7);
  const straight = await runWithRestarts(sales, ["wasm"], Infinity);
  const reference = await runWithRestarts(sales, ["ts"], Infinity);
  const restarted = await runWithRestarts(sales, ["wasm", "ts", "wasm"], 25);
  assertEquals(straight.outputs.length > 20_000, true);
  assertEquals(straight.late > 50, true);
  assertEquals(reference, straight);
  assertEquals(restarted, straight);
});

Deno.test("with the record cache on, every window's last result is the one forwarded without it, also for windows that close in the commit that last updated them", async () => {
  const sales = randomSales(6_000, 3);
  const lastPerWindow = async (cacheMaxBytes: number, operators: OperatorMode) => {
    const d = await TestDriver.create({ operators, cacheMaxBytes, build: hopping });
    const last = new Map<string, unknown>();
    // Commits of 500 records: windows often open, update and close within one.
    for (let at = 0; at < sales.length; at += 500) {
      await d.input<Sale>("sales").pipeMany(
        sales.slice(at, at + 500).map((value) => ({ key: value.shop, value })),
      );
      for (const [k, v] of rows(d, true)) last.set(k as string, v);
    }
    d.close();
    return last;
  };
  for (const operators of MODES) {
    const everyUpdate = await lastPerWindow(0, operators);
    const coalesced = await lastPerWindow(1 << 24, operators);
    assertEquals(everyUpdate.size > 1000, true);
    // The windows whose last results differ (a few named, not the whole maps).
    const differing = [...new Set([...everyUpdate.keys(), ...coalesced.keys()])]
      .filter((k) => JSON.stringify(everyUpdate.get(k)) !== JSON.stringify(coalesced.get(k)));
    assertEquals(differing.slice(0, 5), [], `${operators}: ${differing.length} windows differ`);
  }
});

Deno.test("a record whose measure is not a finite number goes to the dead-letter topic and is not counted", async () => {
  const d = await TestDriver.create({ build: salesStats() });
  const sales = d.input<Sale>("sales");
  await sales.pipe("a", { shop: "a", amount: "12" as unknown as number, timestamp: MIN });
  await sales.pipe("a", sale("a", 3, 2 * MIN));
  assertEquals(rows(d), [["a@0-300000", [1, 3, 3, 3, 3, 3]]]);
  const dead = d.output<{ offset: number; reason: string }>("bss.dlq").readValues();
  assertEquals(dead.map((r) => [r.offset, r.reason]), [
    [
      0,
      `processing the record failed: TypeError: stats 'sales-stats' measured "12", not a finite number`,
    ],
  ]);
  d.close();
});
