import { KvCommitter } from "../kv/committer.ts";
import { partitionForKey } from "../topics/partitioner.ts";
import {
  buildGraph,
  type ConfiguredPlugin,
  errorPolicies,
  type PluginDefinition,
} from "../plugin.ts";
import type { Headers } from "../record.ts";
import { PipelineRunner, type RunnerObserver } from "../runner/runner.ts";
import type { KeyValueStore } from "../state/key_value_store.ts";
import type { WindowEntry, WindowStore } from "../state/window_store.ts";
import type { OnError } from "../task.ts";
import type { FraudScoringStore, PaymentHistory } from "../wasm/fraud_scoring_store.ts";
import type { SessionStatsStore } from "../wasm/session_stats_store.ts";
import type { StatsWindow, StatsWindowStore } from "../wasm/stats_window_store.ts";
import type { OperatorMode } from "../wasm/window_kernel.ts";
import { openTopics, type TopicLog, type TopicReader, type TopicSpec } from "../topics/mod.ts";
import { StreamsBuilder } from "../topology/dsl.ts";
import type { TopologyGraph } from "../topology/graph.ts";

/** Options of `TestDriver.create`. */
export interface TestDriverOptions {
  /** Plugins to run with their options (validated with each plugin's schema) and `onError`. */
  readonly plugins?: readonly {
    plugin: PluginDefinition;
    options?: unknown;
    onError?: OnError;
    operators?: OperatorMode;
  }[];
  /** Which implementation runs hot operators, where a plugin does not say (default "wasm"). */
  readonly operators?: OperatorMode;
  /** Or a topology described inline. */
  readonly build?: (builder: StreamsBuilder) => void;
  /** Partition count per topic; topics not listed get `defaultPartitions`. */
  readonly topics?: Readonly<Record<string, number | TopicSpec>>;
  /** Default 1. */
  readonly defaultPartitions?: number;
  /** Initial wall-clock time of the driver's clock (ms). Default 0. */
  readonly startTime?: number;
  /** KV file to keep state in; default an in-memory KV. */
  readonly kvPath?: string;
  readonly applicationId?: string;
  readonly observer?: RunnerObserver;
  /** Hand re-keyed records to their readers within the batch (default true, as in production). */
  readonly handoff?: boolean;
  /**
   * The record cache's size. Default 0: every aggregation update is forwarded, as Kafka
   * Streams' TopologyTestDriver shows them (it commits after each record).
   */
  readonly cacheMaxBytes?: number;
  /**
   * Accepted event times. Default: from 1970 on with no bound ahead of the clock, since the
   * driver's clock is simulated (production refuses events more than a day ahead).
   */
  readonly eventTime?: { readonly min: number; readonly maxAheadMs: number | null };
}

/** Options of one piped record. */
export interface PipeOptions {
  /** Record timestamp; defaults to the driver clock. Event time is the value's `timestamp` if it has one. */
  readonly timestamp?: number;
  readonly partition?: number;
  readonly headers?: Headers;
}

/** A record read from an output topic, value parsed from JSON. */
export interface OutputRecord<V = unknown> {
  readonly key: string | null;
  readonly value: V;
  readonly timestamp: number;
  readonly partition: number;
  readonly offset: number;
  readonly headers: Headers;
}

/** A controllable wall clock. */
export class TestClock {
  constructor(public time: number) {}
  now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

/**
 * Runs plugins or a topology exactly as production does (embedded log, Deno KV state, the same
 * runner and commits), with input and output topics, several partitions, explicit timestamps,
 * a controllable clock and direct reads of state stores — like Kafka Streams'
 * TopologyTestDriver, but over the real code path.
 */
export class TestDriver {
  readonly #outputPositions = new Map<string, number[]>();

  readonly #reader: TopicReader;

  private constructor(
    readonly kv: Deno.Kv,
    readonly log: TopicLog,
    readonly runner: PipelineRunner,
    readonly graph: TopologyGraph,
    readonly clock: TestClock,
  ) {
    this.#reader = log.reader();
  }

  static async create(options: TestDriverOptions): Promise<TestDriver> {
    const clock = new TestClock(options.startTime ?? 0);
    const kv = await Deno.openKv(options.kvPath ?? ":memory:");
    const committer = new KvCommitter(kv);
    const applicationId = options.applicationId ?? "test";
    // Outputs are read synchronously: keep every record a test writes in memory.
    const log = await openTopics({
      type: "embedded",
      memory: { records: 1_000_000, bytes: Infinity },
      outputMemoryRecords: 1_000_000,
    }, { applicationId, committer, clock: clock.now });
    const plugins: ConfiguredPlugin[] = (options.plugins ?? []).map((p) => ({
      definition: p.plugin,
      name: p.plugin.name,
      options: p.plugin.options.parse(p.options ?? {}),
      onError: p.onError,
      operators: p.operators ?? options.operators,
    }));
    const graph = buildGraph(plugins, applicationId);
    if (options.build) options.build(new StreamsBuilder(graph, "test", options.operators));
    const topics: Record<string, TopicSpec> = {};
    for (const [name, spec] of Object.entries(options.topics ?? {})) {
      topics[name] = typeof spec === "number" ? { partitions: spec } : spec;
    }
    const runner = new PipelineRunner(log, committer, graph, {
      applicationId,
      commitIntervalMs: 100,
      maxBatchRecords: 1000,
      deadLetterTopic: "bss.dlq",
      lateTopic: "bss.late",
      defaultPartitions: options.defaultPartitions ?? 1,
      topics,
      clock: clock.now,
      observer: options.observer,
      handoff: options.handoff,
      cacheMaxBytes: options.cacheMaxBytes ?? 0,
      onError: errorPolicies(plugins),
      eventTime: options.eventTime,
    });
    await runner.init();
    const driver = new TestDriver(kv, log, runner, graph, clock);
    for (const topic of log.topicNames()) {
      driver.#outputPositions.set(topic, driver.endOffsets(topic));
    }
    return driver;
  }

  /** An input topic: each pipe appends durably and processes until the pipeline is idle. */
  input<V = unknown>(topic: string): TestInputTopic<V> {
    return new TestInputTopic<V>(this, topic);
  }

  /** An output topic, read from where the previous read stopped. */
  output<V = unknown>(topic: string): TestOutputTopic<V> {
    return new TestOutputTopic<V>(this, topic);
  }

  /** Appends raw records, then processes until idle. */
  async pipeRaw(
    topic: string,
    records: readonly { key: string | null; value: string | null; options?: PipeOptions }[],
  ): Promise<void> {
    await this.log.append(
      topic,
      records.map((r) => ({
        key: r.key,
        value: r.value,
        timestamp: r.options?.timestamp,
        headers: r.options?.headers,
        partition: r.options?.partition,
      })),
    );
    await this.runner.runUntilIdle();
  }

  /** Reads and consumes the records written to `topic` since the last read. */
  readOutput<V>(topic: string): OutputRecord<V>[] {
    const positions = this.#outputPositions.get(topic) ?? Array(this.log.partitions(topic)).fill(0);
    const out: (OutputRecord<V> & { seq: number })[] = [];
    positions.forEach((from, p) => {
      for (const r of this.#reader.read(topic, p, from, Number.MAX_SAFE_INTEGER)) {
        out.push({
          key: r.key,
          value: (r.value === null ? null : JSON.parse(r.value)) as V,
          timestamp: r.timestamp,
          partition: r.partition,
          offset: r.offset,
          headers: r.headers,
          seq: r.seq ?? 0,
        });
      }
    });
    this.#outputPositions.set(topic, this.endOffsets(topic));
    // In the order the records were written, across partitions.
    return out.sort((a, b) => a.seq - b.seq).map(({ seq: _, ...r }) => r);
  }

  /** Each partition's end offset: how many records the topic holds. */
  endOffsets(topic: string): number[] {
    return Array.from(
      { length: this.log.partitions(topic) },
      (_, p) => this.log.endOffset(topic, p),
    );
  }

  /** A key-value store, looked up in the partition that owns each key. */
  keyValueStore<V = unknown>(
    name: string,
  ): { get(key: string): V | undefined; all(): [string, V][] } {
    const stores = this.#stores<KeyValueStore<V>>(name);
    return {
      get: (key) => stores[partitionForKey(key, stores.length)]?.get(key),
      all: () => stores.flatMap((s) => [...s.all()]).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
    };
  }

  /** A window store, looked up in the partition that owns each key. */
  windowStore<V = unknown>(
    name: string,
  ): { fetch(key: string): WindowEntry<V>[]; all(): WindowEntry<V>[] } {
    const stores = this.#stores<WindowStore<V>>(name);
    return {
      fetch: (key) => stores[partitionForKey(key, stores.length)]?.fetch(key) ?? [],
      all: () => stores.flatMap((s) => s.all()),
    };
  }

  /** A store of windowed or session statistics (`stats`): its windows, by key and start. */
  statsStore(name: string): { fetch(key: string): StatsWindow[]; all(): StatsWindow[] } {
    const stores = this.#stores<StatsWindowStore | SessionStatsStore>(name);
    const all = () => stores.flatMap((s) => s.all());
    return { fetch: (key) => all().filter((w) => w.key === key), all };
  }

  /** A store of payment histories (`fraudScoringStore`), looked up where each key lives. */
  fraudStore(
    name: string,
  ): { get(customerId: string): PaymentHistory | undefined; all(): [string, PaymentHistory][] } {
    const stores = this.#stores<FraudScoringStore>(name);
    return {
      get: (key) => stores[partitionForKey(key, stores.length)]?.get(key),
      all: () =>
        stores.flatMap((s) => [...s.entries()]).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
    };
  }

  #stores<S>(name: string): S[] {
    const tasks = this.runner.tasks.filter((t) => t.stores.has(name)).sort((a, b) =>
      a.partition - b.partition
    );
    if (tasks.length === 0) throw new Error(`No store named '${name}'`);
    return tasks.map((t) => t.stores.get(name) as S);
  }

  close(): void {
    this.runner.release();
    this.kv.close();
  }
}

/** An input topic of the test driver. */
export class TestInputTopic<V> {
  constructor(readonly driver: TestDriver, readonly topic: string) {}

  /** Pipes one record (value serialized as JSON; null is a tombstone). */
  pipe(key: string | null, value: V | null, options?: PipeOptions): Promise<void> {
    return this.pipeMany([{ key, value, options }]);
  }

  /** Pipes several records in one append, then processes them. */
  pipeMany(
    records: readonly { key: string | null; value: V | null; options?: PipeOptions }[],
  ): Promise<void> {
    return this.driver.pipeRaw(
      this.topic,
      records.map((r) => ({
        key: r.key,
        value: r.value === null ? null : JSON.stringify(r.value),
        options: r.options,
      })),
    );
  }

  /** Pipes a value as raw text (for malformed input). */
  pipeText(key: string | null, text: string, options?: PipeOptions): Promise<void> {
    return this.driver.pipeRaw(this.topic, [{ key, value: text, options }]);
  }
}

/** An output topic of the test driver. */
export class TestOutputTopic<V> {
  constructor(readonly driver: TestDriver, readonly topic: string) {}

  readRecords(): OutputRecord<V>[] {
    return this.driver.readOutput<V>(this.topic);
  }

  readValues(): V[] {
    return this.readRecords().map((r) => r.value);
  }

  readKeyValues(): [string | null, V][] {
    return this.readRecords().map((r) => [r.key, r.value]);
  }
}
