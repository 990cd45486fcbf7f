/**
 * Kafka benchmark: the five plugins consuming events from a local Apache Kafka broker, against a
 * bare kafkajs `eachBatch` consumer that only parses and counts the same events, in one run.
 *   deno task bench:kafka [--events 1000000] [--brokers host:port] [--guarantee exactly_once_v2]
 * Without --brokers it starts a broker of its own (tests/kafka/broker.sh; Java and Maven).
 * Prints its figures and their ratio; it asserts nothing.
 */
// Before kafkajs, as in the pipeline (kafka_client.ts): its faster produce path.
import "../pipeline/topics/kafka/kafkajs_fast_paths.ts";
import { parseArgs } from "node:util";
import { Kafka, logLevel } from "kafkajs";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import type { ConfiguredPlugin } from "../pipeline/plugin.ts";
import { startBroker, type TestBroker } from "../tests/kafka/broker.ts";
import { FIVE_PLUGINS, TOPICS, trafficModel } from "./workload.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    events: { type: "string", default: "1000000" },
    customers: { type: "string", default: "100000" },
    products: { type: "string", default: "10000" },
    brokers: { type: "string", default: "" },
    guarantee: { type: "string", default: "exactly_once_v2" },
  },
});
const EVENTS = Number(values.events);
const INPUTS = Object.values(TOPICS);

let broker: TestBroker | null = null;
const bootstrap = values.brokers || (broker = await startBroker()).bootstrap;
console.log(`broker ${bootstrap}${broker ? ` (started here, data in ${broker.dir})` : ""}`);
const kafka = new Kafka({ clientId: "bench", brokers: [bootstrap], logLevel: logLevel.ERROR });

// 1. The events, produced once to 3-partition topics.
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({
  topics: INPUTS.map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })),
});
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
const model = trafficModel(7, Number(values.customers), Number(values.products));
const start = Date.parse("2026-11-26T00:00:00Z");
let produced = 0;
const produceStarted = performance.now();
const send = async (
  batch: Map<string, { key: string | null; value?: unknown; raw?: string }[]>,
) => {
  const topicMessages = [...batch].filter(([, r]) => r.length > 0).map(([topic, records]) => ({
    topic,
    messages: records.map((r) => ({
      key: r.key,
      value: r.raw ?? (r.value === undefined ? null : JSON.stringify(r.value)),
    })),
  }));
  for (const t of topicMessages) produced += t.messages.length;
  if (topicMessages.length > 0) await producer.sendBatch({ topicMessages, acks: -1 });
};
for (const chunk of model.customerInfo(start)) await send(chunk);
for (let t = start; produced < EVENTS; t += 1000) {
  await send(model.tick(Math.min(10_000, EVENTS - produced), t));
}
await producer.disconnect();
console.log(
  `produced ${produced} events in ${((performance.now() - produceStarted) / 1000).toFixed(1)} s`,
);

// 2. A bare kafkajs consumer: fetch, parse, count.
const bare = kafka.consumer({
  groupId: `bare-${crypto.randomUUID()}`,
  maxBytesPerPartition: 1 << 20,
});
await bare.connect();
await bare.subscribe({ topics: INPUTS, fromBeginning: true });
let counted = 0;
let parsed = 0;
let bareStarted = 0;
const bareDone = Promise.withResolvers<number>();
await bare.run({
  eachBatch: async ({ batch }) => {
    bareStarted ||= performance.now();
    for (const m of batch.messages) {
      try {
        if (JSON.parse(m.value!.toString()) !== null) parsed++;
      } catch { /* malformed on purpose */ }
      counted++;
    }
    if (counted >= produced) bareDone.resolve(performance.now());
    await Promise.resolve();
  },
});
const bareEnded = await bareDone.promise;
await bare.disconnect();
const bareRate = produced / ((bareEnded - bareStarted) / 1000);
console.log(`bare kafkajs consumer: ${Math.round(bareRate)} events/s (${parsed} parsed)`);

// 3. The five plugins, exactly once by default.
const dir = await Deno.makeTempDir();
const config = parseConfig(
  JSON.stringify({
    state: { path: `${dir}/state.kv` },
    logIntervalMs: 0,
    source: { type: "kafka", brokers: [bootstrap] },
    processingGuarantee: values.guarantee,
    topics: Object.fromEntries(INPUTS.map((t) => [t, { partitions: 3 }])),
    plugins: [],
  }),
  "bench.json",
);
const plugins: ConfiguredPlugin[] = FIVE_PLUGINS.map((d) => ({
  definition: d,
  name: d.name,
  options: d.options.parse({}),
}));
const pipeline = await Pipeline.open({ path: "bench.json", config }, { plugins });
const started = performance.now();
await pipeline.start();
// Done once every event is processed and every re-keyed record too (nothing left to read).
for (;;) {
  await new Promise((r) => setTimeout(r, 100));
  const inputs = pipeline.metrics.summary().topics.filter((t) => INPUTS.includes(t.topic))
    .reduce((n, t) => n + t.recordsIn, 0);
  if (inputs >= produced && pipeline.runner.idle && pipeline.lag().every((l) => l.lag === 0)) break;
}
const seconds = (performance.now() - started) / 1000;
const summary = pipeline.metrics.summary();
await pipeline.close();
await Deno.remove(dir, { recursive: true });
const rate = produced / seconds;
console.log(
  `five plugins (${values.guarantee}): ${Math.round(rate)} events/s (${seconds.toFixed(1)} s), ` +
    `${summary.topics.reduce((n, t) => n + t.recordsOut, 0)} outputs, DLQ ${summary.deadLetters}`,
);
console.log(`ratio to the bare consumer: ${(rate / bareRate).toFixed(2)}`);
await admin.disconnect();
await broker?.stop();
