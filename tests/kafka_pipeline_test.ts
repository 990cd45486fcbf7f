// Before kafkajs, as in the pipeline (kafka_client.ts): its faster produce path.
import "../pipeline/topics/kafka/kafkajs_fast_paths.ts";
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { toNewRecord } from "../pipeline/plugin.ts";
import type { Pipeline } from "../pipeline/app.ts";
import { TrafficModel } from "../plugins/traffic_simulator/traffic_model.ts";
import { bssTopics, openPipeline, untilProcessed } from "./fixtures/kafka_setups.ts";
import { adminUrl, pluginEntry, poll, startMain } from "./fixtures/main_process.ts";
import { sharedBroker } from "./kafka/broker.ts";
import { readTopics } from "./kafka/read_topic.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");

/** Deterministic BSS events for the prefixed topics: customer info first, every record timed. */
function events(prefix: string, n: number) {
  const { inputs } = bssTopics(prefix);
  const model = new TrafficModel({
    seed: 3,
    customers: 150,
    products: 40,
    fraudBurstChance: 0.05,
    unusualAmountShare: 0.02,
    demandSpikeChance: 0.02,
    malformedShare: 0.01,
    topics: inputs,
  });
  const chunks: [string, ReturnType<typeof toNewRecord>[]][] = [];
  for (const chunk of model.customerInfo(T0)) {
    for (const [topic, records] of chunk) {
      chunks.push([topic, records.map((r) => ({ ...toNewRecord(r), timestamp: T0 - 1 }))]);
    }
  }
  for (let i = 0, t = T0; i < n; i += 100, t += 5_000) {
    for (const [topic, records] of model.tick(100, t)) {
      if (topic === inputs.customers) continue; // the table is complete before any event
      chunks.push([topic, records.map((r) => ({ ...toNewRecord(r), timestamp: t }))]);
    }
  }
  return chunks;
}

async function append(p: Pipeline, chunks: ReturnType<typeof events>): Promise<number> {
  let n = 0;
  for (const [topic, records] of chunks) {
    await p.log.append(topic, records);
    n += records.length;
  }
  return n;
}

/** Every output of `chunks` on the embedded log, every update forwarded (no record cache). */
async function embeddedOutputs(dir: string, prefix: string, chunks: ReturnType<typeof events>) {
  const { outputs } = bssTopics(prefix);
  const embedded = await openPipeline({
    applicationId: "embedded",
    prefix,
    statePath: `${dir}/embedded.kv`,
    partitions: 1,
    // Coalescing depends on where commits fall, which differ: every update is compared.
    extra: { cacheMaxBytes: 0 },
  });
  await append(embedded, chunks);
  await embedded.runner.runUntilIdle();
  const reader = embedded.log.reader();
  const expected = [];
  for (const topic of outputs) {
    await reader.fetch([{ topic, partition: 0, offset: 0, max: 1e9, maxBytes: Infinity }]);
    expected.push(...reader.read(topic, 0, 0, 1e9));
  }
  await embedded.close();
  return expected;
}

/** Output records as compared: by topic, partition and origin, values parsed. */
function normalize(
  records: readonly {
    topic: string;
    partition: number;
    key: string | null;
    value: string | null;
    timestamp: number;
    headers: Readonly<Record<string, string>>;
  }[],
) {
  return records.map((r) => ({
    topic: r.topic,
    partition: r.partition,
    key: r.key,
    value: r.value === null ? null : JSON.parse(r.value),
    timestamp: r.timestamp,
    headers: r.headers,
  })).sort((a, b) =>
    a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition ||
      (a.headers["bss.origin"] < b.headers["bss.origin"] ? -1 : 1)
  );
}

Deno.test("events produced to Kafka come out of all five topologies exactly as on the embedded log", async () => {
  const broker = await sharedBroker();
  const dir = await Deno.makeTempDir();
  const prefix = `cmp${crypto.randomUUID().slice(0, 8)}.`;
  const { inputs, outputs } = bssTopics(prefix);
  const chunks = events(prefix, 1500);
  try {
    const expected = await embeddedOutputs(dir, prefix, chunks);
    const total = chunks.reduce((n, [, records]) => n + records.length, 0);

    const kafka = await openPipeline({
      applicationId: `compare-${prefix}`,
      prefix,
      statePath: `${dir}/kafka.kv`,
      kafka: broker.bootstrap,
      partitions: 1,
      // Coalescing depends on where commits fall, which differ: every update is compared.
      extra: { cacheMaxBytes: 0 },
    });
    await append(kafka, chunks);
    await kafka.start();
    await untilProcessed(kafka, Object.values(inputs), total);
    await kafka.close();
    const actual = await readTopics(
      broker.bootstrap,
      outputs.filter((t) => t.endsWith("late") === false),
    );
    const late = expected.filter((r) => r.topic.endsWith("bss.late"));
    ok(expected.length > 2000, `${expected.length} outputs`);
    ok(expected.some((r) => r.topic.endsWith("bss.fraud.alerts")), "a fraud alert");
    ok(expected.some((r) => r.topic.endsWith("bss.dlq")), "a dead letter");
    assertEquals(late, []);
    assertEquals(normalize(actual), normalize(expected));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with its local state lost, a pipeline on Kafka rebuilds every store from its changelog and goes on exactly as an uninterrupted run", async () => {
  const broker = await sharedBroker();
  const dir = await Deno.makeTempDir();
  const prefix = `lost${crypto.randomUUID().slice(0, 8)}.`;
  const { inputs, outputs } = bssTopics(prefix);
  const chunks = events(prefix, 1500);
  const half = chunks.length >> 1;
  const count = (c: typeof chunks) => c.reduce((n, [, records]) => n + records.length, 0);
  try {
    const expected = await embeddedOutputs(dir, prefix, chunks);

    const app = `lost-${prefix}`;
    const open = (statePath: string) =>
      openPipeline({
        applicationId: app,
        prefix,
        statePath,
        kafka: broker.bootstrap,
        partitions: 1,
        extra: { cacheMaxBytes: 0 },
      });
    const first = await open(`${dir}/first.kv`);
    await append(first, chunks.slice(0, half));
    await first.start();
    await untilProcessed(first, Object.values(inputs), count(chunks.slice(0, half)));
    await first.close();
    // A new machine: no local state at all. Window, fraud-scoring and key-value stores all come
    // back from their changelog topics.
    const second = await open(`${dir}/second.kv`);
    await append(second, chunks.slice(half));
    await second.start();
    await untilProcessed(second, Object.values(inputs), count(chunks.slice(half)));
    await second.close();
    const actual = await readTopics(
      broker.bootstrap,
      outputs.filter((t) => t.endsWith("late") === false),
    );
    ok(expected.some((r) => r.topic.endsWith("bss.fraud.alerts")), "a fraud alert");
    assertEquals(normalize(actual), normalize(expected));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("internal topics: repartition topics sized like their inputs, compacted changelogs per store; a wrong count stops start-up naming it", async () => {
  const broker = await sharedBroker();
  const dir = await Deno.makeTempDir();
  const prefix = `int${crypto.randomUUID().slice(0, 8)}.`;
  const app = `internal-${prefix}`;
  const kafka = new Kafka({
    clientId: "test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const p = await openPipeline({
      applicationId: app,
      prefix,
      statePath: `${dir}/state.kv`,
      kafka: broker.bootstrap,
      partitions: 3,
    });
    await p.start();
    await p.close();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${app}-`)).sort();
    assertEquals(topics, [
      `${app}-customer-activity-5m-changelog`,
      `${app}-customer-info-changelog`,
      `${app}-customer-info-join-repartition`,
      `${app}-customer-sessions-changelog`,
      `${app}-fraud-state-changelog`,
      `${app}-interest-profiles-changelog`,
      `${app}-product-demand-15m-changelog`,
      `${app}-product-demand-15m-repartition`,
      `${app}-product-views-1h-changelog`,
      `${app}-product-views-1h-repartition`,
      `${app}-region-trend-1h-changelog`,
      `${app}-region-trend-1h-repartition`,
      `${app}-trending-top-changelog`,
      `${app}-trending-top-repartition`,
    ]);
    const { topics: meta } = await admin.fetchTopicMetadata({ topics });
    assertEquals(meta.map((t) => t.partitions.length), topics.map(() => 3));
    const configs = await admin.describeConfigs({
      includeSynonyms: false,
      resources: topics.map((name) => ({ type: 2, name, configNames: ["cleanup.policy"] })),
    });
    const policy = Object.fromEntries(
      configs.resources.map((r) => [r.resourceName, r.configEntries[0].configValue]),
    );
    for (const t of topics) {
      assertEquals(policy[t], t.endsWith("-changelog") ? "compact" : "delete", t);
    }

    // A changelog recreated with the wrong partition count: start-up stops and says so.
    const changelog = `${app}-fraud-state-changelog`;
    await admin.deleteTopics({ topics: [changelog] });
    for (let i = 0; i < 100 && (await admin.listTopics()).includes(changelog); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.createTopics({ topics: [{ topic: changelog, numPartitions: 2 }] });
    const reopen = openPipeline({
      applicationId: app,
      prefix,
      statePath: `${dir}/state.kv`,
      kafka: broker.bootstrap,
      partitions: 3,
    });
    await rejects(reopen, (e: Error) => {
      assertEquals(e.name, "TopicMismatchError");
      ok(
        e.message.startsWith(
          `Cannot use topic '${changelog}': it has 2 partitions and the pipeline needs 3`,
        ),
        e.message,
      );
      return true;
    });
  } finally {
    await admin.disconnect();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with no broker reachable at start, the pipeline serves /health 503 naming Kafka and the reason, keeps retrying, and stops cleanly", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await Deno.makeTempDir();
  const config = `${dir}/pipeline.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      state: { path: "state/state.kv" },
      logIntervalMs: 0,
      plugins: [pluginEntry("fraud_detection")],
    }),
  );
  const main = startMain(config, { KAFKA_BROKERS: `127.0.0.1:${port}` });
  try {
    const base = await adminUrl(main);
    const health = await poll(async () => {
      const res = await fetch(`${base}/health`);
      const body = await res.json();
      return res.status === 503 && body.reasons?.some((r: string) => r.includes("retrying"))
        ? body
        : undefined;
    });
    assertEquals(health.source, `Kafka at 127.0.0.1:${port}`);
    ok(
      health.reasons.some((r: string) =>
        r.startsWith(
          `runner is STARTING: cannot create or check topics on Kafka at 127.0.0.1:${port}:`,
        )
      ),
      JSON.stringify(health),
    );
    main.child.kill("SIGTERM");
    assertEquals((await main.child.status).code, 0);
  } finally {
    await main.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
