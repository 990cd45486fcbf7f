import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { BatchInfo, RunnerObserver } from "./runner/runner.ts";

/** Reads the pipeline's live figures when metrics are scraped. */
export interface MetricsSource {
  alive(): boolean;
  storeSizes(): Map<string, number>;
  /** Lag per input topic-partition: end offset minus committed offset. */
  lag(): { topic: string; partition: number; lag: number }[];
}

const LATENCY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const RATE_WINDOW_MS = 10_000;
const RESERVOIR = 10_000;

/**
 * One prom-client registry for the pipeline. The runner reports batches; operators are never
 * instrumented by hand. Also keeps the small summary behind /api/v1/streams/metrics.
 */
export class PipelineMetrics implements RunnerObserver {
  readonly registry = new Registry();
  readonly #recordsIn: Counter;
  readonly #recordsOut: Counter;
  readonly #deadLetters: Counter;
  readonly #late: Counter;
  readonly #processing: Histogram;
  readonly #latency: Histogram;
  readonly #procession: Histogram;
  readonly totals = {
    in: new Map<string, number>(),
    out: new Map<string, number>(),
    deadLetters: new Map<string, number>(),
    late: new Map<string, number>(),
  };
  readonly #history: { at: number; in: Map<string, number>; out: Map<string, number> }[] = [];
  readonly #latencies: number[] = [];
  #latencyAt = 0;
  #source: MetricsSource | null = null;

  constructor(readonly now: () => number = Date.now) {
    const r = [this.registry];
    this.#recordsIn = new Counter({
      name: "bss_pipeline_records_in_total",
      help: "Input records processed",
      labelNames: ["topic"],
      registers: r,
    });
    this.#recordsOut = new Counter({
      name: "bss_pipeline_records_out_total",
      help: "Records written by the pipeline",
      labelNames: ["topic"],
      registers: r,
    });
    this.#deadLetters = new Counter({
      name: "bss_pipeline_dead_letters_total",
      help: "Records sent to the dead-letter topic",
      labelNames: ["topic"],
      registers: r,
    });
    this.#late = new Counter({
      name: "bss_pipeline_late_records_total",
      help: "Records that arrived after their window closed",
      labelNames: ["plugin", "store"],
      registers: r,
    });
    this.#processing = new Histogram({
      name: "bss_pipeline_batch_processing_seconds",
      help: "Time to process one batch, before its commit",
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.#latency = new Histogram({
      name: "bss_pipeline_ingest_to_output_seconds",
      help: "From a record's append to the commit of what it produced",
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    // The report's metric names, so dashboards built on it keep working.
    this.#procession = new Histogram({
      name: "kafka_streams_procession_time",
      help: "Processing time per record (seconds)",
      buckets: [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2],
      registers: r,
    });
    const source = () => this.#source;
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size of the process, bytes",
      registers: r,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
    new Gauge({
      name: "bss_pipeline_heap_used_bytes",
      help: "JavaScript heap in use, bytes",
      registers: r,
      collect() {
        this.set(Deno.memoryUsage().heapUsed);
      },
    });
    new Gauge({
      name: "bss_pipeline_up",
      help: "1 while the pipeline is running",
      registers: r,
      collect() {
        this.set(source()?.alive() ? 1 : 0);
      },
    });
    new Gauge({
      name: "kafka_streams_thread_alive",
      help: "1 while the stream thread is running",
      registers: r,
      collect() {
        this.set(source()?.alive() ? 1 : 0);
      },
    });
    const storeCollect = function (this: Gauge) {
      this.reset();
      for (const [store, n] of source()?.storeSizes() ?? []) this.set({ store }, n);
    };
    new Gauge({
      name: "bss_pipeline_state_store_entries",
      help: "Entries per state store",
      labelNames: ["store"],
      registers: r,
      collect: storeCollect,
    });
    new Gauge({
      name: "kafka_streams_state_store_size",
      help: "Entries per state store",
      labelNames: ["store"],
      registers: r,
      collect: storeCollect,
    });
    new Gauge({
      name: "bss_pipeline_consumer_lag",
      help: "Records not yet processed per input partition",
      labelNames: ["topic", "partition"],
      registers: r,
      collect() {
        this.reset();
        for (const l of source()?.lag() ?? []) {
          this.set({ topic: l.topic, partition: String(l.partition) }, l.lag);
        }
      },
    });
    new Gauge({
      name: "kafka_streams_process_lag",
      help: "Records not yet processed, all input partitions",
      registers: r,
      collect() {
        this.set((source()?.lag() ?? []).reduce((n, l) => n + l.lag, 0));
      },
    });
  }

  attach(source: MetricsSource): void {
    this.#source = source;
  }

  batch(info: BatchInfo): void {
    let records = 0;
    for (const [topic, n] of info.recordsIn) {
      this.#recordsIn.inc({ topic }, n);
      add(this.totals.in, topic, n);
      records += n;
    }
    for (const [topic, n] of info.recordsOut) {
      this.#recordsOut.inc({ topic }, n);
      add(this.totals.out, topic, n);
    }
    for (const [topic, n] of info.deadLetters) {
      this.#deadLetters.inc({ topic }, n);
      add(this.totals.deadLetters, topic, n);
    }
    for (const [key, n] of info.late) {
      const [plugin, store] = key.split("/");
      this.#late.inc({ plugin, store }, n);
      add(this.totals.late, key, n);
    }
    this.#processing.observe(info.processingMs / 1000);
    if (records > 0) this.#procession.observe(info.processingMs / 1000 / records);
    for (const ms of info.latenciesMs) {
      this.#latency.observe(ms / 1000);
      this.#latencies[this.#latencyAt++ % RESERVOIR] = ms;
    }
    const at = this.now();
    this.#history.push({ at, in: new Map(this.totals.in), out: new Map(this.totals.out) });
    while (this.#history.length > 2 && this.#history[1].at < at - RATE_WINDOW_MS) {
      this.#history.shift();
    }
  }

  /** The JSON summary: per-topic counts and rates, dead letters, late records, lag, latency quantiles. */
  summary() {
    const oldest = this.#history[0];
    const newest = this.#history[this.#history.length - 1];
    const seconds = oldest && newest && newest.at > oldest.at ? (newest.at - oldest.at) / 1000 : 0;
    const rate = (kind: "in" | "out", topic: string) =>
      seconds > 0 ? ((newest[kind].get(topic) ?? 0) - (oldest[kind].get(topic) ?? 0)) / seconds : 0;
    const topics = [...new Set([...this.totals.in.keys(), ...this.totals.out.keys()])].sort();
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const q = (p: number) =>
      sorted.length === 0
        ? null
        : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    const lag = this.#source?.lag() ?? [];
    return {
      topics: topics.map((topic) => ({
        topic,
        recordsIn: this.totals.in.get(topic) ?? 0,
        recordsOut: this.totals.out.get(topic) ?? 0,
        inPerSecond: round(rate("in", topic)),
        outPerSecond: round(rate("out", topic)),
      })),
      deadLetters: sum(this.totals.deadLetters),
      deadLettersByTopic: Object.fromEntries(this.totals.deadLetters),
      lateRecords: sum(this.totals.late),
      lateByStore: Object.fromEntries(this.totals.late),
      lag: { total: lag.reduce((n, l) => n + l.lag, 0), partitions: lag },
      latencyMs: {
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: sorted.length ? sorted[sorted.length - 1] : null,
        samples: sorted.length,
      },
    };
  }
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

function sum(map: Map<string, number>): number {
  let n = 0;
  for (const v of map.values()) n += v;
  return n;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
