import { dirname } from "node:path";
import { ConfigError, type LoadedConfig, type PipelineConfig } from "./config.ts";
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
  TopologyError,
} from "./plugin.ts";
import { loadPlugins } from "./plugin_loader.ts";
import { PipelineRunner } from "./runner/runner.ts";
import { openTopics, type TopicLog, TopicsUnavailableError } from "./topics/mod.ts";
import { DuplicateStoreError, type TopologyGraph } from "./topology/graph.ts";

/**
 * The plugins' graph; a plugin whose topology cannot be built is a config error naming the file
 * and the plugin entries (two plugins claiming one store name can only be fixed there).
 */
function buildGraphOrExplain(
  loaded: LoadedConfig,
  plugins: readonly ConfiguredPlugin[],
): TopologyGraph {
  try {
    return buildGraph(plugins, loaded.config.applicationId);
  } catch (e) {
    if (!(e instanceof TopologyError)) throw e;
    const entry = (name: string) => {
      const i = loaded.config.plugins.findIndex((p) => p.name === name);
      return i < 0 ? `plugin ${name}` : `plugins[${i}] (${name})`;
    };
    const cause = e.cause;
    if (cause instanceof DuplicateStoreError && cause.first !== cause.second) {
      throw new ConfigError(
        `${loaded.path}: ${entry(cause.first)} and ${
          entry(cause.second)
        } both declare the state store '${cause.store}', and store names must be unique. Enable only one of them ("enabled": false).`,
      );
    }
    throw new ConfigError(
      `${loaded.path}: ${entry(e.plugin)}: cannot build its topology: ${
        (cause as Error)?.message ?? String(cause)
      }. Check its options, or fix the plugin.`,
    );
  }
}

/** A lifecycle call that conflicts with the runner's state (cleanup while running). */
export class LifecycleConflictError extends Error {
  override name = "LifecycleConflictError";
  constructor(readonly state: string) {
    super(
      `cleanup is only allowed while stopped, and the pipeline is ${state}: POST /api/v1/streams/stop first`,
    );
  }
}

/** The pipeline is closing or closed. */
export class ShuttingDownError extends Error {
  override name = "ShuttingDownError";
  constructor() {
    super("the pipeline is shutting down");
  }
}

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
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(
    readonly config: PipelineConfig,
    readonly kv: Deno.Kv,
    readonly log: TopicLog,
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
    const graph = buildGraphOrExplain(loaded, plugins);
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
      const log = await openTopics(config.source, {
        applicationId: config.applicationId,
        committer,
        clock,
        processingGuarantee: config.processingGuarantee,
      });
      const metrics = new PipelineMetrics(clock);
      const runner = new PipelineRunner(log, committer, graph, {
        applicationId: config.applicationId,
        commitIntervalMs: config.commitIntervalMs,
        cacheMaxBytes: config.cacheMaxBytes,
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
      // Topics that cannot be reached yet are retried by start (with /health saying why).
      await runner.init().catch((e) => {
        if (!(e instanceof TopicsUnavailableError)) throw e;
      });
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
    if (this.#closed) return ["the pipeline is shutting down"];
    const reasons: string[] = [];
    const state = this.runner.state;
    if (state === "ERROR") reasons.push(`runner failed: ${this.runner.error?.message}`);
    else if (state !== "RUNNING") {
      const why = this.runner.problem;
      reasons.push(`runner is ${state}${why ? `: ${why}` : ""}`);
    }
    for (const [plugin, why] of this.runner.failedPlugins) {
      reasons.push(`plugin ${plugin} is ERROR: ${why}`);
    }
    return [...reasons, ...this.#producerErrors];
  }

  /**
   * Start, stop, cleanup and close run one at a time, in call order: a start asked for while a
   * cleanup runs waits for it, so no task of the old state can commit after the wipe.
   */
  #lifecycle(fn: () => Promise<void>, whenClosed = false): Promise<void> {
    if (this.#closed && !whenClosed) return Promise.reject(new ShuttingDownError());
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Starts the runner, then the plugins' producers once it runs. Resolves when it runs; while its
   * topics cannot be reached it retries (see `healthProblems`), and a fatal error rejects.
   */
  start(): Promise<void> {
    let ready: Promise<void> = Promise.resolve();
    return this.#lifecycle(() => {
      ready = this.runner.start();
      return Promise.resolve();
    }).then(() => ready).then(() =>
      this.#lifecycle(() => {
        if (this.runner.state === "RUNNING") {
          this.#startedAt ??= this.clock();
          this.#startProducers();
        }
        return Promise.resolve();
      })
    );
  }

  /** Stops producers, then the runner after its in-flight batch commits. */
  stop(): Promise<void> {
    return this.#lifecycle(() => this.#stop());
  }

  /**
   * Wipes state and committed offsets (never input topics); only while stopped, else
   * LifecycleConflictError. It is checked when asked for, and again when its turn comes.
   */
  cleanup(): Promise<void> {
    const check = () => {
      const state = this.runner.state;
      if (state === "RUNNING" || state === "STOPPING") throw new LifecycleConflictError(state);
    };
    try {
      check();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#lifecycle(async () => {
      check();
      await this.runner.cleanup();
    });
  }

  /**
   * Refuses further start, stop and cleanup calls (ShuttingDownError) and reports the pipeline
   * unhealthy, before `close`: the admin API answers 503 from then on.
   */
  beginShutdown(): void {
    this.#closed = true;
  }

  /** True once `beginShutdown` or `close` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops, releases the state and closes the KV; lifecycle calls after it fail. */
  close(): Promise<void> {
    this.beginShutdown();
    return this.#lifecycle(async () => {
      await this.#stop();
      this.runner.release();
      await this.log.close();
      await this.lock.release();
      this.kv.close();
    }, true);
  }

  async #stop(): Promise<void> {
    this.#producers?.abort();
    await Promise.all(this.#producerTasks);
    this.#producers = null;
    this.#producerTasks = [];
    await this.runner.stop();
    this.#startedAt = null;
  }

  #startProducers(): void {
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
            await this.log.ensureTopics([{
              name: topic,
              role: "input",
              ...(this.config.topics[topic] ?? { partitions: this.config.defaultPartitions }),
              exact: false,
            }]);
          }
          await this.log.append(topic, records.map(toNewRecord));
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

  get instanceId(): string {
    return this.lock.holder.instanceId;
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
