/**
 * Benchmark: all five plugins over the embedded log, default commit interval.
 *   deno task bench [--events 1000000] [--customers 100000] [--products 10000] [--rate 10000]
 *                   [--seconds 10] [--warmup 4] [--cache 10485760] [--compare true]
 * 1. Throughput: the events are appended first, then processed from the log: events/s, and
 *    events per CPU-second counting every thread (JS, the KV writer, GC helpers), outputs and KV
 *    bytes per event, resident memory. With --compare (default) it runs three ways in one run:
 *    WebAssembly operators with the record cache (the default), the TypeScript reference
 *    operators with the cache, and WebAssembly operators with no cache, and prints the ratios.
 * 2. Latency: a producer appends at a steady rate while the pipeline runs: p50/p99 from append to
 *    the commit that makes the outputs visible (all records, and those that raised a fraud alert),
 *    counted after a warm-up (the customer table loaded just before writes its first snapshot).
 * 3. Floor: the same events through a pass-through plugin with no state, writing as many
 *    outputs per event as the five plugins do: what parsing, routing, serializing and durably
 *    committing alone allow on this machine, and the five plugins' throughput as a share of it.
 * Prints its figures; it asserts nothing.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import {
  type ConfiguredPlugin,
  type PluginDefinition,
  type ProducedRecord,
  toNewRecord,
} from "../pipeline/plugin.ts";
import { definePlugin, type OperatorMode, z } from "../pipeline/mod.ts";
import { FIVE_PLUGINS, TOPICS, trafficModel } from "./workload.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    events: { type: "string", default: "1000000" },
    customers: { type: "string", default: "100000" },
    products: { type: "string", default: "10000" },
    rate: { type: "string", default: "10000" },
    seconds: { type: "string", default: "10" },
    /** Seconds at the steady rate before latencies are counted. */
    warmup: { type: "string", default: "4" },
    /** Comma-separated plugin names; default all five. */
    plugins: { type: "string", default: "" },
    /** The record cache's size (cacheMaxBytes); 0 forwards every update. */
    cache: { type: "string", default: String(10 * 1024 * 1024) },
    /** Also run the TypeScript operators and no cache, and print the ratios. */
    compare: { type: "string", default: "true" },
  },
});
const EVENTS = Number(values.events);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);

function model(seed: number) {
  return trafficModel(seed, Number(values.customers), Number(values.products));
}

/**
 * Reads every input topic and writes each event to `outputsPerEvent` topics (the fraction as a
 * share of events), with no validation and no state: the runner's floor.
 */
function passThrough(outputsPerEvent: number): PluginDefinition {
  return definePlugin({
    name: "pass_through",
    options: z.strictObject({}),
    build(b) {
      let n = 0;
      for (const topic of Object.values(TOPICS)) {
        const events = b.stream<Record<string, unknown>>(topic);
        for (let i = 0; i < Math.ceil(outputsPerEvent); i++) {
          const share = Math.min(1, outputsPerEvent - i);
          events.filter(() => share === 1 || (n++ % 1000) < share * 1000)
            .mapValues((v) => ({ ...v, eventIds: [v?.eventId] }))
            .to(`bench.pass-through.${i}`);
        }
      }
    },
  });
}

/** How the plugins run: which operators, how big a record cache. */
interface Setup {
  readonly operators: OperatorMode;
  readonly cacheMaxBytes: number;
}

const DEFAULT_SETUP: Setup = { operators: "wasm", cacheMaxBytes: Number(values.cache) };

async function openPipeline(
  dir: string,
  only?: PluginDefinition,
  setup: Setup = DEFAULT_SETUP,
): Promise<Pipeline> {
  const config = parseConfig(
    JSON.stringify({
      state: { path: `${dir}/state.kv` },
      logIntervalMs: 0,
      cacheMaxBytes: setup.cacheMaxBytes,
      topics: Object.fromEntries(Object.values(TOPICS).map((t) => [t, { partitions: 3 }])),
      plugins: [],
    }),
    "bench.json",
  );
  const defs = FIVE_PLUGINS.filter((d) =>
    !values.plugins || values.plugins.split(",").includes(d.name)
  );
  if (only) defs.splice(0, defs.length, only);
  const plugins: ConfiguredPlugin[] = defs.map((d) => ({
    definition: d,
    name: d.name,
    options: d.options.parse({}),
    operators: setup.operators,
  }));
  return await Pipeline.open({ path: "bench.json", config }, { plugins });
}

async function append(p: Pipeline, batch: Map<string, ProducedRecord[]>): Promise<number> {
  let n = 0;
  for (const [topic, records] of batch) {
    if (records.length === 0) continue;
    await p.log.append(topic, records.map(toNewRecord));
    n += records.length;
  }
  return n;
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** What one throughput run measured. */
interface Figures {
  readonly eventsPerSecond: number;
  readonly eventsPerCpuSecond: number;
  readonly outputsPerEvent: number;
  readonly kvBytesPerEvent: number;
  readonly rssMb: number;
}

/** Appends the events, then processes them from the log; prints and returns the figures. */
async function throughput(only?: PluginDefinition, setup: Setup = DEFAULT_SETUP): Promise<Figures> {
  const dir = await Deno.makeTempDir();
  const p = await openPipeline(dir, only, setup);
  const m = model(7);
  const start = Date.parse("2026-11-26T00:00:00Z");
  let appended = 0;
  const appendStarted = performance.now();
  for (const chunk of m.customerInfo(start)) appended += await append(p, chunk);
  let t = start;
  while (appended < EVENTS) {
    const n = Math.min(10_000, EVENTS - appended);
    appended += await append(p, m.tick(n, t));
    t += Math.round((n / RATE) * 1000); // event time advances as at the steady rate
  }
  const appendSeconds = (performance.now() - appendStarted) / 1000;
  let processingMs = 0;
  let batches = 0;
  const observe = p.metrics.batch.bind(p.metrics);
  p.metrics.batch = (info) => {
    processingMs += info.processingMs;
    batches++;
    observe(info);
  };
  const started = performance.now();
  const kvBefore = p.runner.committer.bytesWritten;
  const cpuBefore = process.cpuUsage();
  const processed = await p.runner.runUntilIdle(1_000_000);
  const seconds = (performance.now() - started) / 1000;
  // Every thread of the process: JS, the KV (SQLite) writer and V8's GC helpers.
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const s = p.metrics.summary();
  console.log(
    `events appended: ${appended} in ${appendSeconds.toFixed(1)} s (${
      Math.round(appended / appendSeconds)
    }/s)`,
  );
  console.log(`records processed (inputs + repartitions): ${processed}`);
  console.log(
    `time in operators ${(processingMs / 1000).toFixed(1)} s, in reads and commits ${
      (seconds - processingMs / 1000).toFixed(1)
    } s, ${batches} batches`,
  );
  console.log(
    `throughput: ${Math.round(appended / seconds)} events/s (${
      seconds.toFixed(1)
    } s, one JS thread); ${Math.round(appended / cpuSeconds)} events per CPU-second (${
      cpuSeconds.toFixed(1)
    } s of CPU on all threads)`,
  );
  const kvBytes = p.runner.committer.bytesWritten - kvBefore;
  const outputRecords = s.topics.filter((t) => !t.topic.endsWith("-repartition"))
    .reduce((n, x) => n + x.recordsOut, 0);
  console.log(
    `outputs: ${outputRecords} (${
      (outputRecords / appended).toFixed(2)
    } per event), DLQ ${s.deadLetters}, late ${s.lateRecords}; ` +
      `KV written ${
        (kvBytes / appended).toFixed(0)
      } bytes per event, WAL commits ${p.runner.committer.walCommits}`,
  );
  for (const t of s.topics) {
    if (t.recordsIn + t.recordsOut > 0 && !only) {
      console.log(`  ${t.topic}: in ${t.recordsIn}, out ${t.recordsOut}`);
    }
  }
  const rssMb = Deno.memoryUsage().rss / 2 ** 20;
  console.log(`resident memory ${rssMb.toFixed(0)} MB`);
  await p.close();
  await Deno.remove(dir, { recursive: true });
  return {
    eventsPerSecond: appended / seconds,
    eventsPerCpuSecond: appended / cpuSeconds,
    outputsPerEvent: outputRecords / appended,
    kvBytesPerEvent: kvBytes / appended,
    rssMb,
  };
}

// 1. Throughput from the log: the default setup, then the others to compare with.
const setups: [string, Setup][] = [["wasm operators, record cache", DEFAULT_SETUP]];
if (values.compare === "true") {
  setups.push(["ts operators, record cache", { ...DEFAULT_SETUP, operators: "ts" }]);
  setups.push(["wasm operators, no cache", { ...DEFAULT_SETUP, cacheMaxBytes: 0 }]);
}
const figures: [string, Figures][] = [];
for (const [name, setup] of setups) {
  console.log(`-- ${name} (cacheMaxBytes ${setup.cacheMaxBytes})`);
  figures.push([name, await throughput(undefined, setup)]);
}
const plugins = figures[0][1];
if (figures.length > 1) {
  console.log(
    "setup                          events/s  per CPU-s  outputs/event  KV B/event  RSS MB",
  );
  for (const [name, f] of figures) {
    console.log(
      `${name.padEnd(30)} ${String(Math.round(f.eventsPerSecond)).padStart(8)}  ${
        String(Math.round(f.eventsPerCpuSecond)).padStart(9)
      }  ${f.outputsPerEvent.toFixed(2).padStart(13)}  ${
        f.kvBytesPerEvent.toFixed(0).padStart(10)
      }  ${f.rssMb.toFixed(0).padStart(6)}`,
    );
  }
  const [wasm, ts, noCache] = figures.map(([, f]) => f);
  console.log(
    `ratios: wasm / ts operators ${(wasm.eventsPerSecond / ts.eventsPerSecond).toFixed(2)}×; ` +
      `cache on / off ${(wasm.eventsPerSecond / noCache.eventsPerSecond).toFixed(2)}× ` +
      `(outputs ${(wasm.outputsPerEvent / noCache.outputsPerEvent).toFixed(2)}×, KV bytes ${
        (wasm.kvBytesPerEvent / noCache.kvBytesPerEvent).toFixed(2)
      }×)`,
  );
}

// 2. Latency at a steady rate.
{
  const dir = await Deno.makeTempDir();
  const p = await openPipeline(dir);
  const m = model(11);
  for (const chunk of m.customerInfo(Date.now())) await append(p, chunk);
  await p.runner.runUntilIdle();
  const appendedAt = new Map<string, number>(); // paymentId → wall-clock append time
  const orderAppendedAt = new Map<string, number>(); // orderId → wall-clock append time
  const alertLatencies: number[] = [];
  const priceLatencies: number[] = [];
  const latencies: number[] = [];
  // Counted once the warm-up is over: records appended from then on.
  const countFrom = Date.now() + WARMUP * 1000;
  const original = p.metrics.batch.bind(p.metrics);
  p.metrics.batch = (info) => {
    const committedAt = Date.now();
    for (const ms of info.latenciesMs) if (committedAt - ms >= countFrom) latencies.push(ms);
    original(info);
  };
  await p.start();
  const tickMs = 20;
  const perTick = (RATE * tickMs) / 1000;
  const until = performance.now() + (WARMUP + SECONDS) * 1000;
  // Each new output once: read every partition from where the last read stopped, as soon as
  // the log has it.
  const reader = p.log.reader();
  const follow = <T>(topic: string, sentAt: (value: T) => number | undefined, out: number[]) => {
    const read: number[] = Array(p.log.partitions(topic)).fill(0);
    return {
      requests: () =>
        read.map((offset, partition) => ({ topic, partition, offset, max: 1e9, maxBytes: 1e9 })),
      take: (now: number) =>
        read.forEach((from, part) => {
          for (const r of reader.read(topic, part, from, 1e9)) {
            read[part] = r.offset + 1;
            const sent = sentAt(JSON.parse(r.value!) as T);
            if (sent !== undefined) out.push(now - sent);
          }
        }),
    };
  };
  const alerts = follow(
    "bss.fraud.alerts",
    (a: { paymentId: string }) => appendedAt.get(a.paymentId),
    alertLatencies,
  );
  // Price recommendations come through a repartition topic (re-keyed by product).
  const prices = follow(
    "bss.pricing.recommendations",
    (r: { eventIds: string[] }) => orderAppendedAt.get(r.eventIds[0]),
    priceLatencies,
  );
  const following = new AbortController();
  const follower = (async () => {
    while (!following.signal.aborted) {
      await reader.fetch([...alerts.requests(), ...prices.requests()], 200, following.signal);
      const now = Date.now();
      alerts.take(now);
      prices.take(now);
    }
  })();
  let next = performance.now();
  const producingFrom = performance.now();
  const appends: Promise<number>[] = [];
  while (performance.now() < until) {
    // Open loop: each tick's events are appended on schedule, whether or not earlier appends
    // have landed (a producer waiting for each would hide the time its records wait). The
    // records are stamped when they are handed to the log.
    const now = Date.now();
    for (const [topic, records] of m.tick(perTick, now)) {
      const stamps = topic === TOPICS.payments
        ? { map: appendedAt, field: "paymentId" }
        : topic === TOPICS.orders
        ? { map: orderAppendedAt, field: "orderId" }
        : null;
      for (const r of stamps && now >= countFrom ? records : []) {
        const id = (r.value as Record<string, unknown> | undefined)?.[stamps!.field];
        if (typeof id === "string") stamps!.map.set(id, now);
      }
      appends.push(append(p, new Map([[topic, records]])));
    }
    next += tickMs;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  const produced = (await Promise.all(appends)).reduce((a, b) => a + b, 0);
  const achieved = produced / ((performance.now() - producingFrom) / 1000);
  following.abort();
  await follower;
  await p.close();
  latencies.sort((a, b) => a - b);
  alertLatencies.sort((a, b) => a - b);
  console.log(
    `steady ${RATE} events/s for ${SECONDS} s after ${WARMUP} s of warm-up (achieved ${
      Math.round(achieved)
    }/s): ingest→output p50 ${quantile(latencies, 0.5)} ms, p99 ${
      quantile(latencies, 0.99)
    } ms (${latencies.length} records)`,
  );
  priceLatencies.sort((a, b) => a - b);
  if (priceLatencies.length > 0) {
    console.log(
      `ingest→price recommendation (through a repartition) p50 ${
        quantile(priceLatencies, 0.5)
      } ms, p99 ${quantile(priceLatencies, 0.99)} ms (${priceLatencies.length} recommendations)`,
    );
  }
  if (alertLatencies.length > 0) {
    console.log(
      `ingest→alert p50 ${quantile(alertLatencies, 0.5)} ms, p99 ${
        quantile(alertLatencies, 0.99)
      } ms (${alertLatencies.length} alerts)`,
    );
  }
  await Deno.remove(dir, { recursive: true });
}

// 3. The floor: no operators, no state, the same outputs per event.
{
  console.log(
    `floor: pass-through, ${plugins.outputsPerEvent.toFixed(2)} outputs per event, no state`,
  );
  const floor = await throughput(passThrough(plugins.outputsPerEvent));
  console.log(
    `the five plugins run at ${
      (100 * plugins.eventsPerSecond / floor.eventsPerSecond).toFixed(0)
    } % of the floor's throughput`,
  );
}
