// Before kafkajs, as in the pipeline (kafka_client.ts): its faster produce path.
import "../pipeline/topics/kafka/kafkajs_fast_paths.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import { definePlugin, z } from "../pipeline/mod.ts";
import eos from "./fixtures/eos_plugin.ts";
import { adminUrl, startMain } from "./fixtures/main_process.ts";
import { brokerLogTail, sharedBroker, startBroker, type TestBroker } from "./kafka/broker.ts";
import { type ReadRecord, readTopics } from "./kafka/read_topic.ts";

const KEYS = 20;

/** Produces input records `{ n }` (n = 0, 1, …) keyed k0..k19 while `running()` holds. */
async function produceWhile(
  producer: Producer,
  topic: string,
  running: () => boolean,
  perTick = 25,
): Promise<number> {
  let n = 0;
  while (running()) {
    const messages = Array.from({ length: perTick }, () => {
      const i = n++;
      return { key: `k${i % KEYS}`, value: JSON.stringify({ n: i }) };
    });
    await producer.send({ topic, acks: -1, messages });
    await new Promise((r) => setTimeout(r, 10));
  }
  return n;
}

/**
 * Checks the outputs against the input 0..total-1, as a read-committed consumer sees them:
 * every input echoed exactly once; per key, the k-th sum update is the sum of the key's first
 * k inputs (no update lost, none repeated); the count behind the repartition goes 1..total.
 */
function verify(records: readonly ReadRecord[], prefix: string, total: number): void {
  const of = (t: string) => records.filter((r) => r.topic === `${prefix}${t}`);
  const echo = of("echo");
  const echoed = echo.map((r) => JSON.parse(r.value!).n as number).sort((a, b) => a - b);
  // A failure names a few duplicated inputs with where each copy was written and from where.
  const copies = (n: number) =>
    echo.filter((r) => JSON.parse(r.value!).n === n)
      .map((r) => `${r.partition}@${r.offset} from ${r.headers["bss.origin"]}`).join(", ");
  const duplicated = [...new Set(echoed.filter((n, i) => echoed[i - 1] === n))].slice(0, 3);
  assertEquals(
    echoed.length,
    total,
    `echo count; duplicated inputs: ${duplicated.map((n) => `${n}: ${copies(n)}`).join("; ")}`,
  );
  assertEquals(echoed, Array.from({ length: total }, (_, i) => i), "every input echoed once");
  const byKey = new Map<string, { count: number; sum: number }[]>();
  for (const r of of("sums")) {
    byKey.set(r.key!, [...(byKey.get(r.key!) ?? []), JSON.parse(r.value!)]);
  }
  for (let k = 0; k < KEYS; k++) {
    const inputs = Array.from({ length: total }, (_, i) => i).filter((i) => i % KEYS === k);
    let sum = 0;
    const expected = inputs.map((n, i) => ({ count: i + 1, sum: sum += n }));
    assertEquals(byKey.get(`k${k}`) ?? [], expected, `sums of k${k}`);
  }
  const counts = of("total").map((r) => Number(r.value)).sort((a, b) => a - b);
  const distinct = new Set(counts).size;
  assertEquals(
    counts,
    Array.from({ length: total }, (_, i) => i + 1),
    `total counts: ${counts.length} updates, ${distinct} distinct, last ${
      counts.at(-1)
    } of ${total}`,
  );
}

async function createInput(bootstrap: string, topic: string): Promise<Kafka> {
  const kafka = new Kafka({
    clientId: "eos-test",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  await admin.disconnect();
  return kafka;
}

async function writeConfig(dir: string, app: string, prefix: string, bootstrap: string) {
  const path = `${dir}/pipeline.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      applicationId: app,
      state: { path: "state/state.kv" },
      logIntervalMs: 0,
      deadLetterTopic: `${prefix}dlq`,
      lateTopic: `${prefix}late`,
      defaultPartitions: 3,
      // Every update emitted, so the verifier can check each one.
      cacheMaxBytes: 0,
      source: { type: "kafka", brokers: [bootstrap] },
      plugins: [{
        name: "eos_check",
        module: fileURLToPath(new URL("./fixtures/eos_plugin.ts", import.meta.url)),
        options: { input: `${prefix}input`, prefix },
      }],
    }),
  );
  return path;
}

/** Until the admin API of a running main.ts reports nothing left to read. */
async function untilCaughtUp(base: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = await fetch(`${base}/api/v1/streams/metrics`).then((r) => r.json()).catch(() => null);
    const status = await fetch(`${base}/api/v1/streams/status`).then((r) => r.json()).catch(() =>
      null
    );
    if (status?.idle && m && m.lag.partitions.length > 0 && m.lag.total === 0) {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the pipeline did not catch up");
}

Deno.test("killed with kill -9 at random points and restarted, the pipeline ends with exactly the outputs of an uninterrupted run, as a read-committed consumer sees them", async () => {
  const broker = await sharedBroker();
  const dir = await Deno.makeTempDir();
  const prefix = `eos${crypto.randomUUID().slice(0, 8)}.`;
  const app = `eos-${prefix}`;
  const kafka = await createInput(broker.bootstrap, `${prefix}input`);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const config = await writeConfig(dir, app, prefix, broker.bootstrap);
  let producing = true;
  const produced = produceWhile(producer, `${prefix}input`, () => producing);
  try {
    let kills = 0;
    for (; kills < 4; kills++) {
      const main = startMain(config);
      await adminUrl(main);
      // Somewhere while it starts, restores, processes or commits.
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 1500));
      main.child.kill("SIGKILL");
      assertEquals((await main.child.status).signal, "SIGKILL");
      await main.stop();
    }
    producing = false;
    const total = await produced;
    const last = startMain(config);
    try {
      const base = await adminUrl(last);
      await untilCaughtUp(base);
      assertEquals(await fetch(`${base}/health`).then((r) => r.json()), {
        status: "UP",
        source: `Kafka at ${broker.bootstrap}`,
      });
    } finally {
      last.child.kill("SIGTERM");
      await last.child.status;
      await last.stop();
    }
    ok(total > 1000, `${total} inputs`);
    const records = await readTopics(
      broker.bootstrap,
      ["echo", "sums", "total"].map((t) => prefix + t),
    );
    verify(records, prefix, total);
    // What aborted transactions wrote is there for read-uncommitted consumers only.
    const uncommitted = await readTopics(broker.bootstrap, [`${prefix}echo`], {
      readUncommitted: true,
    });
    ok(uncommitted.length >= total, `${uncommitted.length} echoed, uncommitted`);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await brokerLogTail(broker)}`);
  } finally {
    producing = false;
    await produced;
    await producer.disconnect();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with the broker killed mid-run, /health says why, the pipeline resumes by itself when it is back, and the outputs are exact", async () => {
  let broker: TestBroker | null = null;
  const dir = await Deno.makeTempDir();
  const prefix = `down${crypto.randomUUID().slice(0, 8)}.`;
  try {
    broker = await startBroker();
    const kafka = await createInput(broker.bootstrap, `${prefix}input`);
    let producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    let n = 0;
    const send = async (count: number) => {
      const messages = Array.from({ length: count }, () => {
        const i = n++;
        return { key: `k${i % KEYS}`, value: JSON.stringify({ n: i }) };
      });
      await producer.send({ topic: `${prefix}input`, acks: -1, messages });
    };
    for (let i = 0; i < 20; i++) await send(100);
    const config = parseConfig(
      await Deno.readTextFile(await writeConfig(dir, `down-${prefix}`, prefix, broker.bootstrap)),
      "test.json",
    );
    config.state = { path: `${dir}/state.kv` };
    const pipeline = await Pipeline.open({ path: "test.json", config }, {
      plugins: [{
        definition: eos,
        name: "eos_check",
        options: { input: `${prefix}input`, prefix },
      }],
    });
    await pipeline.start();
    await new Promise((r) => setTimeout(r, 300));
    await producer.disconnect();
    // A crash, not a clean shutdown: a single broker shutting down cleanly while a transaction
    // commits can skip that transaction's markers ("partitions are likely deleted already") and
    // leave its offsets pending for good, which no client can clear (a hanging transaction).
    // The controller, a process of its own, stays up and fences the broker before it returns.
    await broker.kill();
    // Unhealthy, naming Kafka, and still alive.
    let reasons: string[] = [];
    for (let i = 0; i < 200 && reasons.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      reasons = pipeline.healthProblems();
    }
    ok(reasons.some((r) => r.includes(`Kafka at ${broker!.bootstrap}`)), JSON.stringify(reasons));
    await new Promise((r) => setTimeout(r, 1000));
    await broker.start();
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < 10; i++) await send(100);
    await producer.disconnect();
    const deadline = Date.now() + 90_000;
    while (
      Date.now() < deadline &&
      !(pipeline.runner.idle && pipeline.lag().length > 0 &&
        pipeline.lag().every((l) => l.lag === 0))
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(pipeline.healthProblems(), []);
    await pipeline.close();
    const records = await readTopics(
      broker.bootstrap,
      ["echo", "sums", "total"].map((t) => prefix + t),
    );
    verify(records, prefix, n);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${broker ? await brokerLogTail(broker) : ""}`);
  } finally {
    await broker?.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

/** Writes each input to `ok`, then its `blob` field to `big`, whose broker limit it exceeds. */
const tooBig = definePlugin({
  name: "too_big",
  options: z.strictObject({ prefix: z.string() }),
  build(b, o) {
    const input = b.stream<{ blob: string }>(`${o.prefix}input`);
    input.mapValues(() => "fine").to(`${o.prefix}ok`);
    input.to(`${o.prefix}big`);
  },
});

Deno.test("a transaction that fails in the middle leaves no visible output", async () => {
  const broker = await sharedBroker();
  const dir = await Deno.makeTempDir();
  const prefix = `fail${crypto.randomUUID().slice(0, 8)}.`;
  const kafka = new Kafka({
    clientId: "fail-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: `${prefix}input`, numPartitions: 1 },
        { topic: `${prefix}ok`, numPartitions: 1 },
        // The broker refuses record batches over 2 KB here.
        {
          topic: `${prefix}big`,
          numPartitions: 1,
          configEntries: [{ name: "max.message.bytes", value: "2048" }],
        },
      ],
    });
    const config = parseConfig(
      JSON.stringify({
        applicationId: `fail-${prefix}`,
        state: { path: `${dir}/state.kv` },
        logIntervalMs: 0,
        defaultPartitions: 1,
        deadLetterTopic: `${prefix}dlq`,
        lateTopic: `${prefix}late`,
        source: { type: "kafka", brokers: [broker.bootstrap] },
        plugins: [],
      }),
      "test.json",
    );
    const pipeline = await Pipeline.open({ path: "test.json", config }, {
      plugins: [{ definition: tooBig, name: "too_big", options: { prefix } }],
    });
    await pipeline.log.append(`${prefix}input`, [
      { key: "k", value: JSON.stringify({ blob: "x".repeat(10_000) }) },
    ]);
    await pipeline.start();
    let reasons: string[] = [];
    for (let i = 0; i < 200 && !reasons.some((r) => r.includes("MESSAGE_TOO_LARGE")); i++) {
      await new Promise((r) => setTimeout(r, 50));
      reasons = pipeline.healthProblems();
    }
    await pipeline.close();
    ok(reasons.some((r) => r.includes("MESSAGE_TOO_LARGE")), JSON.stringify(reasons));
    // The record sent to `ok` before the failing one was written, then aborted.
    assertEquals(await readTopics(broker.bootstrap, [`${prefix}ok`]), []);
    const uncommitted = await readTopics(broker.bootstrap, [`${prefix}ok`], {
      readUncommitted: true,
    });
    ok(uncommitted.length >= 1 && uncommitted.every((r) => r.value === '"fine"'));
    const offsets = await admin.fetchOffsets({
      groupId: `fail-${prefix}`,
      topics: [`${prefix}input`],
    });
    assertEquals(offsets[0].partitions.map((p) => p.offset), ["-1"]);
  } finally {
    await admin.disconnect();
    await Deno.remove(dir, { recursive: true });
  }
});
