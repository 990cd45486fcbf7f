import { dirname } from "node:path";
import type { LoadedConfig, PipelineConfig } from "./config.ts";
import { type InstanceLock, lockStateFile, thisInstance } from "./instance/instance_lock.ts";
import { leaseSharedState } from "./instance/kv_lease.ts";
import { KvCommitter } from "./kv/committer.ts";
import { PipelineMetrics } from "./metrics.ts";
import {
  buildGraph,
  type ConfiguredPlugin,
  errorPolicies,
  type ProducerContext,
  toNewRecord,
} from "./plugin.ts";
import { loadPlugins } from "./plugin_loader.ts";
import { PipelineRunner } from "./runner.ts";
import { EmbeddedLog } from "./topics/embedded_log.ts";
import type { TopologyGraph } from "./topology/graph.ts";

/** Options of `Pipeline.open` beyond the config. */
export interface PipelineOptions {
  readonly clock?: () => number;
  /** Plugins already loaded (tests); default: imported from the config's entries. */
  readonly plugins?: readonly ConfiguredPlugin[];
}

/**
 * The assembled pipeline: state KV, embedded log, plugins' graph, runner, metrics and the
 * plugins' producers. `main.ts` and the end-to-end tests both use it.
 */
export class Pipeline {
  #startedAt: number | null = null;
  #producers: AbortController | null = null;
  #producerTasks: Promise<void>[] = [];
  #producerErrors: string[] = [];

  private constructor(
    readonly config: PipelineConfig,
    readonly kv: Deno.Kv,
    readonly log: EmbeddedLog,
    readonly runner: PipelineRunner,
    readonly graph: TopologyGraph,
    readonly plugins: readonly ConfiguredPlugin[],
    readonly metrics: PipelineMetrics,
    readonly clock: () => number,
    readonly lock: InstanceLock,
  ) {}

  static async open(loaded: LoadedConfig, options: PipelineOptions = {}): Promise<Pipeline> {
    const config = loaded.config;
    const clock = options.clock ?? Date.now;
    const plugins = options.plugins ?? await loadPlugins(loaded);
    const graph = buildGraph(plugins);
    const instanceId = crypto.randomUUID();
    const location = "url" in config.state ? config.state.url : config.state.path;
    let lock: InstanceLock | null = null;
    if ("path" in config.state && location !== ":memory:") {
      await Deno.mkdir(dirname(location), { recursive: true });
      // Before the KV opens, so a refused second instance has touched nothing.
      lock = await lockStateFile(location, instanceId);
    }
    let kv: Deno.Kv | null = null;
    try {
      kv = await Deno.openKv(location);
      lock ??= "url" in config.state
        ? await leaseSharedState(kv, instanceId, location)
        : { holder: thisInstance(instanceId), release: () => Promise.resolve() };
      const committer = new KvCommitter(kv);
      const log = await EmbeddedLog.open(committer, clock, {
        memoryRecords: config.source.memory.records,
        memoryBytes: config.source.memory.bytes,
      });
      const metrics = new PipelineMetrics(clock);
      const runner = new PipelineRunner(log, committer, graph, {
        applicationId: config.applicationId,
        commitIntervalMs: config.commitIntervalMs,
        maxBatchRecords: config.maxBatchRecords,
        maxBatchBytes: config.maxBatchBytes,
        deadLetterTopic: config.deadLetterTopic,
        lateTopic: config.lateTopic,
        defaultPartitions: config.defaultPartitions,
        topics: config.topics,
        clock,
        observer: metrics,
        onError: errorPolicies(plugins),
        eventTime: config.eventTime,
      });
      await runner.init();
      const pipeline = new Pipeline(config, kv, log, runner, graph, plugins, metrics, clock, lock);
      metrics.attach({
        alive: () => runner.state === "RUNNING",
        storeSizes: () => pipeline.storeSizes(),
        lag: () => pipeline.lag(),
      });
      return pipeline;
    } catch (e) {
      await lock?.release();
      kv?.close();
      throw e;
    }
  }

  get running(): boolean {
    return this.runner.state === "RUNNING";
  }

  get uptimeMs(): number {
    return this.#startedAt === null ? 0 : this.clock() - this.#startedAt;
  }

  /** Reasons the pipeline is unhealthy (empty when healthy). */
  healthProblems(): string[] {
    const reasons: string[] = [];
    if (this.runner.state === "ERROR") reasons.push(`runner failed: ${this.runner.error?.message}`);
    else if (this.runner.state !== "RUNNING") reasons.push(`runner is ${this.runner.state}`);
    return [...reasons, ...this.#producerErrors];
  }

  async start(): Promise<void> {
    await this.runner.start();
    this.#startedAt ??= this.clock();
    if (this.#producers) return;
    this.#producerErrors = [];
    this.#producers = new AbortController();
    const signal = this.#producers.signal;
    for (const p of this.plugins) {
      if (!p.definition.produce) continue;
      const ctx: ProducerContext = {
        signal,
        now: this.clock,
        produce: async (topic, records) => {
          if (!this.log.hasTopic(topic)) {
            this.log.ensureTopic(
              topic,
              this.config.topics[topic] ?? { partitions: this.config.defaultPartitions },
            );
          }
          await this.log.append(
            topic,
            records.map(toNewRecord),
          );
        },
      };
      this.#producerTasks.push(
        p.definition.produce(ctx, p.options).catch((e) => {
          if (signal.aborted) return;
          this.#producerErrors.push(`producer of plugin ${p.name} failed: ${(e as Error).message}`);
          console.error(this.#producerErrors.at(-1));
        }),
      );
    }
  }

  /** Stops producers, then the runner after its in-flight batch commits. */
  async stop(): Promise<void> {
    this.#producers?.abort();
    await Promise.all(this.#producerTasks);
    this.#producers = null;
    this.#producerTasks = [];
    await this.runner.stop();
    this.#startedAt = null;
  }

  /** Wipes state and committed offsets (never input topics); only while stopped. */
  cleanup(): Promise<void> {
    return this.runner.cleanup();
  }

  get instanceId(): string {
    return this.lock.holder.instanceId;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.lock.release();
    this.kv.close();
  }

  storeSizes(): Map<string, number> {
    const sizes = new Map<string, number>();
    for (const task of this.runner.tasks) {
      for (const [name, store] of task.stores) sizes.set(name, (sizes.get(name) ?? 0) + store.size);
    }
    return sizes;
  }

  lag(): { topic: string; partition: number; lag: number }[] {
    const out: { topic: string; partition: number; lag: number }[] = [];
    for (const task of this.runner.tasks) {
      for (const [topic, offset] of task.offsets) {
        out.push({
          topic,
          partition: task.partition,
          lag: Math.max(0, this.log.endOffset(topic, task.partition) - offset),
        });
      }
    }
    return out.sort((a, b) =>
      a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition
    );
  }
}
