import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createAdminApp } from "../pipeline/admin/routes.ts";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import fraud from "../plugins/fraud_detection/mod.ts";
import { payment } from "./fixtures/payments.ts";

async function openPipeline(extra: Record<string, unknown> = {}) {
  const config = parseConfig(
    JSON.stringify({
      state: { path: ":memory:" },
      topics: { "bss.payment.events": { partitions: 2 } },
      plugins: [{ name: "fraud_detection", module: "unused" }],
      ...extra,
    }),
    "test.json",
  );
  const pipeline = await Pipeline.open({ path: "test.json", config }, {
    plugins: [{ definition: fraud, name: "fraud_detection", options: fraud.options.parse({}) }],
  });
  const app = createAdminApp(pipeline, config.admin);
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await app.request(path, {
      method,
      headers: { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch { /* /metrics is text */ }
    return {
      status: res.status,
      json: json as Record<string, unknown>,
      text,
      headers: res.headers,
    };
  };
  return { pipeline, call };
}

const T0 = Date.parse("2026-11-26T10:00:00Z");
const pay = (i: number) => ({ key: "C1", value: payment(`p${i}`, "C1", 10, T0 + i * 1000) });

Deno.test("health, status, start and stop follow the runner", async () => {
  const { pipeline, call } = await openPipeline();
  assertEquals(await call("GET", "/health").then((r) => [r.status, r.json]), [503, {
    status: "DOWN",
    source: "embedded log (Deno KV)",
    reasons: ["runner is STOPPED"],
  }]);
  assertEquals((await call("POST", "/api/v1/streams/start")).json, {
    running: true,
    state: "RUNNING",
  });
  assertEquals(await call("GET", "/health").then((r) => [r.status, r.json]), [200, {
    status: "UP",
    source: "embedded log (Deno KV)",
  }]);
  const status = (await call("GET", "/api/v1/streams/status")).json;
  assertEquals([status.running, status.state, status.plugins], [true, "RUNNING", [{
    name: "fraud_detection",
    enabled: true,
    state: "RUNNING",
  }]]);
  ok(typeof status.uptimeMs === "number");
  assertEquals((await call("POST", "/api/v1/streams/stop")).json, {
    running: false,
    state: "STOPPED",
  });
  await pipeline.close();
});

Deno.test("records posted over HTTP are durable, processed, and readable back with offsets", async () => {
  const { pipeline, call } = await openPipeline();
  await pipeline.start();
  const posted = await call(
    "POST",
    "/api/v1/topics/bss.payment.events/records",
    Array.from({ length: 11 }, (_, i) => pay(i)),
  );
  assertEquals(posted.status, 200);
  assertEquals(posted.json.accepted, 11);
  const offsets = posted.json.offsets as { partition: number; offset: number }[];
  assertEquals(offsets.map((o) => o.offset), Array.from({ length: 11 }, (_, i) => i));
  assertEquals(new Set(offsets.map((o) => o.partition)).size, 1);
  // Wait until the runner has caught up (bounded).
  for (let i = 0; i < 200 && pipeline.lag().some((l) => l.lag > 0); i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await pipeline.stop();
  const alerts = await call("GET", "/api/v1/topics/bss.fraud.alerts/records?offset=0&limit=10");
  const records = alerts.json.records as {
    key: string;
    value: { type: string; paymentId: string };
  }[];
  assertEquals(records.map((r) => [r.key, r.value.type, r.value.paymentId]), [[
    "C1",
    "RAPID_PAYMENTS",
    "p10",
  ]]);
  const topics = (await call("GET", "/api/v1/topics")).json.topics as {
    name: string;
    partitions: number;
    endOffsets: number[];
  }[];
  const payments = topics.find((t) => t.name === "bss.payment.events")!;
  assertEquals([payments.partitions, payments.endOffsets.reduce((a, b) => a + b, 0)], [2, 11]);
  const metrics = (await call("GET", "/api/v1/streams/metrics")).json as {
    topics: { topic: string; recordsIn: number }[];
    lag: { total: number };
  };
  assertEquals(metrics.topics.find((t) => t.topic === "bss.payment.events")?.recordsIn, 11);
  assertEquals(metrics.lag.total, 0);
  const meta = (await call("GET", "/api/v1/streams/metadata")).json as {
    plugins: {
      name: string;
      topology: { stores: unknown[]; sourceTopics: string[]; sinkTopics: string[] };
    }[];
  };
  assertEquals(meta.plugins[0].topology.sourceTopics, ["bss.payment.events"]);
  assertEquals(meta.plugins[0].topology.sinkTopics.sort(), [
    "bss.fraud.alerts",
    "bss.fraud.high-risk",
  ]);
  assertEquals(meta.plugins[0].topology.stores, [{ name: "fraud-state", kind: "fraud" }]);
  await pipeline.close();
});

Deno.test("errors are JSON with the right status: 400, 404, 405, 409, 413", async () => {
  const { pipeline, call } = await openPipeline({ admin: { maxBodyBytes: 200 } });
  const err = (r: { status: number; json: Record<string, unknown> }) => [r.status, r.json.error];
  assertEquals(err(await call("POST", "/api/v1/topics/bss.payment.events/records", "{oops")), [
    400,
    "malformed JSON",
  ]);
  assertEquals(err(await call("POST", "/api/v1/topics/bss.payment.events/records", { nokey: 1 })), [
    400,
    "invalid records",
  ]);
  assertEquals(err(await call("POST", "/api/v1/topics/nope/records", { value: 1 })), [
    404,
    "not found",
  ]);
  assertEquals(err(await call("GET", "/api/v1/topics/nope/records")), [404, "not found"]);
  assertEquals(err(await call("GET", "/api/v1/topics/bss.payment.events/records?partition=x")), [
    400,
    "invalid query",
  ]);
  assertEquals(err(await call("GET", "/api/v1/nothing")), [404, "not found"]);
  const internal = [...pipeline.graph.repartitions.keys()];
  assertEquals(internal.length, 0); // fraud_detection does not re-key; see the next test for 403
  const wrong = await call("DELETE", "/api/v1/streams/status");
  assertEquals([...err(wrong), wrong.headers.get("Allow")], [405, "method not allowed", "GET"]);
  assertEquals(err(await call("GET", "/api/v1/streams/start")), [405, "method not allowed"]);
  const big = { value: { blob: "x".repeat(500) } };
  assertEquals(err(await call("POST", "/api/v1/topics/bss.payment.events/records", big)), [
    413,
    "payload too large",
  ]);
  await pipeline.start();
  assertEquals(err(await call("POST", "/api/v1/streams/cleanup")), [409, "conflict"]);
  await pipeline.close();
});

Deno.test("cleanup while stopped wipes state and offsets but keeps input topics", async () => {
  const { pipeline, call } = await openPipeline();
  await call("POST", "/api/v1/topics/bss.payment.events/records", [pay(1), pay(2)]);
  await pipeline.runner.runUntilIdle();
  assertEquals(pipeline.storeSizes().get("fraud-state"), 1);
  assertEquals((await call("POST", "/api/v1/streams/cleanup")).status, 200);
  assertEquals(pipeline.storeSizes().get("fraud-state"), 0);
  assertEquals(pipeline.lag().reduce((n, l) => n + l.lag, 0), 2); // inputs kept, to be reprocessed
  await pipeline.close();
});

Deno.test("with an admin token, mutating routes need the bearer token", async () => {
  const { pipeline, call } = await openPipeline({ admin: { token: "t0k" } });
  assertEquals((await call("POST", "/api/v1/streams/start")).status, 401);
  assertEquals(
    (await call("POST", "/api/v1/topics/bss.payment.events/records", pay(1))).status,
    401,
  );
  assertEquals(
    (await call("POST", "/api/v1/streams/start", undefined, { Authorization: "Bearer t0k" }))
      .status,
    200,
  );
  assertEquals((await call("GET", "/api/v1/streams/status")).status, 200);
  await pipeline.close();
});

Deno.test("/metrics serves Prometheus text with the pipeline's and the report's metric names", async () => {
  const { pipeline, call } = await openPipeline();
  await call("POST", "/api/v1/topics/bss.payment.events/records", [pay(1)]);
  await pipeline.runner.runUntilIdle();
  const res = await call("GET", "/metrics");
  assertEquals(res.status, 200);
  ok(res.headers.get("Content-Type")!.startsWith("text/plain"));
  for (
    const name of [
      "kafka_streams_process_lag",
      "kafka_streams_thread_alive",
      "kafka_streams_state_store_size",
      "kafka_streams_procession_time",
      "bss_pipeline_records_in_total",
      "bss_pipeline_ingest_to_output_seconds",
      "bss_pipeline_dead_letters_total",
      "bss_pipeline_late_records_total",
      "bss_pipeline_consumer_lag",
    ]
  ) ok(res.text.includes(`# TYPE ${name} `), `missing ${name}`);
  ok(res.text.includes('bss_pipeline_records_in_total{topic="bss.payment.events"} 1'));
  ok(res.text.includes('kafka_streams_state_store_size{store="fraud-state"} 1'));
  await pipeline.close();
});
