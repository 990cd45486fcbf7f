import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createAdminApp } from "../pipeline/admin/routes.ts";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";
import { WasmFraudKernel } from "../pipeline/wasm/fraud_kernel.ts";
import { StatsWindowStore } from "../pipeline/wasm/stats_window_store.ts";
import fraud from "../plugins/fraud_detection/mod.ts";
import { payment } from "./fixtures/payments.ts";
import enrichment from "../plugins/order_enrichment/mod.ts";
import pricing from "../plugins/dynamic_pricing/mod.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const order = (i: number) => ({
  key: `o${i}`,
  value: {
    orderId: `o${i}`,
    customerId: "c1",
    productId: "P1",
    quantity: 1,
    unitPrice: 100,
    totalAmount: 100,
    currency: "USD",
    status: "CREATED",
    timestamp: T0 + i * 1000,
  },
});

/** Makes the window operator of `store` trap, as WebAssembly does on a fault, while set. */
function trapIn(store: string): { stop(): void } {
  const aggregate = StatsWindowStore.prototype.aggregate;
  StatsWindowStore.prototype.aggregate = function (this: StatsWindowStore, n, withUpdates) {
    if (this.name === store) throw new WebAssembly.RuntimeError("unreachable");
    return aggregate.call(this, n, withUpdates);
  };
  return { stop: () => StatsWindowStore.prototype.aggregate = aggregate };
}

const FAILURE =
  "operator window_aggregation (store 'product-demand-15m') of plugin dynamic_pricing failed: RuntimeError: unreachable";

Deno.test("a trap in a plugin's WebAssembly operator stops that plugin, naming operator and plugin; the others go on, and a restart loses and repeats nothing", async () => {
  const dir = await Deno.makeTempDir();
  const options = {
    plugins: [{ plugin: enrichment }, { plugin: pricing }],
    topics: { "bss.order.events": 1, "bss.customer.info": 1 },
    kvPath: `${dir}/state.kv`,
  };
  try {
    const d = await TestDriver.create(options);
    await d.input("bss.order.events").pipeMany([order(1), order(2)]);
    const trap = trapIn("product-demand-15m");
    try {
      await d.input("bss.order.events").pipeMany([order(3), order(4)]);
    } finally {
      trap.stop();
    }
    assertEquals(d.runner.error, null);
    assertEquals([...d.runner.failedPlugins], [["dynamic_pricing", FAILURE]]);
    const enriched = () =>
      d.output<{ orderId: string }>("bss.orders.enriched").readValues().map((e) => e.orderId)
        .sort();
    assertEquals(enriched(), ["o1", "o2", "o3", "o4"]);
    const prices = (driver: TestDriver) =>
      driver.output<{ orders: number; eventIds: string[] }>("bss.pricing.recommendations")
        .readValues().map((r) => [r.orders, r.eventIds[0]]);
    assertEquals(prices(d), [[1, "o1"], [2, "o2"]]);
    d.close();

    // Restarted: the stopped plugin catches up from its last commit, counting each order once.
    const again = await TestDriver.create(options);
    await again.runner.runUntilIdle();
    assertEquals([...again.runner.failedPlugins], []);
    assertEquals(prices(again), [[3, "o3"], [4, "o4"]]);
    assertEquals(again.endOffsets("bss.pricing.recommendations"), [4]);
    assertEquals(again.endOffsets("bss.orders.enriched"), [4]);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a plugin stopped by an operator failure is ERROR in /api/v1/streams/status and makes /health 503; stop and start run it again", async () => {
  const config = parseConfig(
    JSON.stringify({
      state: { path: ":memory:" },
      topics: { "bss.order.events": { partitions: 1 } },
      plugins: [
        { name: "order_enrichment", module: "unused" },
        { name: "dynamic_pricing", module: "unused" },
      ],
    }),
    "test.json",
  );
  const pipeline = await Pipeline.open({ path: "test.json", config }, {
    plugins: [
      { definition: enrichment, name: "order_enrichment", options: enrichment.options.parse({}) },
      { definition: pricing, name: "dynamic_pricing", options: pricing.options.parse({}) },
    ],
  });
  const app = createAdminApp(pipeline, config.admin);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const trap = trapIn("product-demand-15m");
  try {
    await pipeline.start();
    const posted = await call("POST", "/api/v1/topics/bss.order.events/records", order(1));
    assertEquals(posted.status, 200);
    for (let i = 0; i < 100 && pipeline.runner.failedPlugins.size === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const status = await call("GET", "/api/v1/streams/status");
    assertEquals(status.json.state, "RUNNING");
    assertEquals(status.json.plugins, [
      { name: "order_enrichment", enabled: true, state: "RUNNING" },
      { name: "dynamic_pricing", enabled: true, state: "ERROR", error: FAILURE },
    ]);
    const health = await call("GET", "/health");
    assertEquals(health.status, 503);
    assertEquals(health.json.reasons, [`plugin dynamic_pricing is ERROR: ${FAILURE}`]);

    trap.stop();
    await call("POST", "/api/v1/streams/stop");
    await call("POST", "/api/v1/streams/start");
    for (let i = 0; i < 100 && !pipeline.runner.idle; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals((await call("GET", "/health")).status, 200);
    const prices = await call("GET", "/api/v1/topics/bss.pricing.recommendations/records");
    ok(JSON.stringify(prices.json).includes('"eventIds":["o1"]'), JSON.stringify(prices.json));
  } finally {
    trap.stop();
    await pipeline.close();
  }
});

const cardPayment = (i: number) => ({
  key: "c1",
  value: payment(`p${i}`, "c1", 20, T0 + i * 10_000),
});

Deno.test("a trap in the fraud-scoring operator stops fraud detection only; after a restart each payment counts once", async () => {
  const dir = await Deno.makeTempDir();
  const options = {
    plugins: [{ plugin: fraud }, { plugin: enrichment }],
    topics: { "bss.payment.events": 1, "bss.order.events": 1, "bss.customer.info": 1 },
    kvPath: `${dir}/state.kv`,
  };
  const score = WasmFraudKernel.prototype.score;
  try {
    const d = await TestDriver.create(options);
    await d.input("bss.payment.events").pipeMany([0, 1, 2, 3, 4].map(cardPayment));
    WasmFraudKernel.prototype.score = () => {
      throw new WebAssembly.RuntimeError("unreachable");
    };
    try {
      await d.input("bss.payment.events").pipeMany([5, 6, 7, 8, 9, 10].map(cardPayment));
      await d.input("bss.order.events").pipeMany([order(1)]);
    } finally {
      WasmFraudKernel.prototype.score = score;
    }
    assertEquals([...d.runner.failedPlugins], [[
      "fraud_detection",
      "operator fraud_scoring (store 'fraud-state') of plugin fraud_detection failed: RuntimeError: unreachable",
    ]]);
    assertEquals(d.output("bss.dlq").readValues(), []);
    assertEquals(d.output("bss.orders.enriched").readValues().length, 1);
    d.close();

    const again = await TestDriver.create(options);
    await again.runner.runUntilIdle();
    const alerts = again.output<{ type: string; eventIds: string[] }>("bss.fraud.alerts")
      .readValues();
    assertEquals(alerts.map((a) => [a.type, a.eventIds.length]), [["RAPID_PAYMENTS", 11]]);
    assertEquals(again.fraudStore("fraud-state").get("c1")!.count, 11);
    again.close();
  } finally {
    WasmFraudKernel.prototype.score = score;
    await Deno.remove(dir, { recursive: true });
  }
});
