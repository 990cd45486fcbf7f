import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  adminUrl,
  pluginEntry as plugin,
  poll,
  startMain,
  waitForLine,
} from "./fixtures/main_process.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");

Deno.test("end to end: main.ts with a temporary config serves the API, processes HTTP input, exposes metrics and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  const configPath = `${dir}/pipeline.json`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      state: { path: "state/state.kv" },
      admin: { host: "127.0.0.1", port: 0 },
      logIntervalMs: 0,
      plugins: [
        plugin("customer_activity"),
        plugin("order_enrichment"),
        plugin("fraud_detection"),
        plugin("recommendations"),
        plugin("dynamic_pricing"),
        { ...plugin("traffic_simulator"), enabled: false },
      ],
    }),
  );
  const main = startMain(configPath);
  try {
    const base = await adminUrl(main);
    const post = (topic: string, body: unknown) =>
      fetch(`${base}/api/v1/topics/${topic}/records`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.json());
    const read = async (topic: string) =>
      (await fetch(`${base}/api/v1/topics/${topic}/records?limit=1000`).then((r) => r.json()))
        .records;

    const posted = await post("bss.customer.info", {
      key: "C-GOLD",
      value: { customerId: "C-GOLD", tier: "GOLD", region: "EU-WEST" },
      timestamp: T0 - 1,
    });
    assertEquals(posted.accepted, 1);
    await post(
      "bss.payment.events",
      Array.from({ length: 15 }, (_, i) => ({
        key: "C-GOLD",
        value: {
          paymentId: `p${i}`,
          customerId: "C-GOLD",
          amount: 30,
          currency: "USD",
          method: "CARD",
          status: "SUCCESS",
          timestamp: T0 + i * 8_000,
        },
      })),
    );
    await post("bss.order.events", {
      key: "o1",
      value: {
        orderId: "o1",
        customerId: "C-GOLD",
        productId: "P1",
        quantity: 1,
        unitPrice: 1500,
        totalAmount: 1500,
        currency: "USD",
        status: "CREATED",
        timestamp: T0,
      },
    });
    await post("bss.order.events", { key: "bad", value: "not an order" });

    /** The topic's records once it has at least `count` (polled over HTTP, bounded). */
    const readAtLeast = (topic: string, count: number) =>
      poll(async () => {
        const r = await read(topic);
        return r.length >= count ? r : undefined;
      });

    const alerts = await readAtLeast("bss.fraud.alerts", 1);
    assertEquals(
      alerts.map((
        a: { value: { type: string; severity: string } },
      ) => [a.value.type, a.value.severity]),
      [["RAPID_PAYMENTS", "HIGH"]],
    );
    const high = await readAtLeast("bss.orders.highvalue", 1);
    assertEquals(
      high.map((
        h: { value: { orderId: string; customer: { tier: string } } },
      ) => [h.value.orderId, h.value.customer.tier]),
      [["o1", "GOLD"]],
    );
    const dlq = await readAtLeast("bss.dlq", 2); // rejected by both plugins that read orders
    ok(
      dlq.every((d: { value: { sourceTopic: string; raw: string } }) =>
        d.value.sourceTopic === "bss.order.events" && d.value.raw === '"not an order"'
      ),
    );

    const health = await fetch(`${base}/health`);
    assertEquals([health.status, await health.json()], [200, {
      status: "UP",
      source: "embedded log (Deno KV)",
    }]);
    const metrics = await fetch(`${base}/metrics`).then((r) => r.text());
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.]+(e[-+]?[0-9]+)?|NaN|[+-]Inf)$/;
    for (const line of metrics.split("\n")) {
      if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
      ok(sample.test(line), `not Prometheus text: ${line}`);
    }
    ok(/^bss_pipeline_records_in_total\{topic="bss.payment.events"\} 15$/m.test(metrics));

    main.child.kill("SIGTERM");
    await waitForLine(main, /stopped cleanly/, 10_000);
    const status = await main.child.status;
    assertEquals(status.code, 0);
  } finally {
    await main.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
