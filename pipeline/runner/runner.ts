import type { KvCommitter } from "../kv/committer.ts";
import type { Mutation } from "../kv/blob.ts";
import { type OnError, OperatorFailure, type StreamTask } from "../task.ts";
import {
  type BatchCommit,
  type FetchRequest,
  type StoreChanges,
  type TaskCommit,
  type TopicLog,
  type TopicReader,
  type TopicSpec,
  TopicsUnavailableError,
} from "../topics/topic_log.ts";
import type { TopologyGraph } from "../topology/graph.ts";
import { buildSubtopologies, type Subtopology } from "../topology/subtopologies.ts";
import { Batch } from "./batch.ts";
import { type Repartition, repartitions } from "./handoff.ts";
import { taskInputs } from "./input_merge.ts";
import { loadTasks, statePrefix, taskRef } from "./task_loader.ts";
import { prepareTopics } from "./topic_setup.ts";

/** What the runner reports as it works; the metrics module implements it. */
export interface RunnerObserver {
  batch?(info: BatchInfo): void;
}

/** One committed batch, for metrics. */
export interface BatchInfo {
  readonly recordsIn: ReadonlyMap<string, number>;
  readonly recordsOut: ReadonlyMap<string, number>;
  readonly deadLetters: ReadonlyMap<string, number>;
  readonly late: ReadonlyMap<string, number>;
  /** Wall-clock ms spent processing (not committing). */
  readonly processingMs: number;
  /** Wall-clock ms from each input record's append (in this process) to this commit. */
  readonly latenciesMs: readonly number[];
}

export interface RunnerOptions {
  readonly applicationId: string;
  /** Upper bound on how long a batch keeps processing before it commits. */
  readonly commitIntervalMs: number;
  /** Most records one batch reads from one task's input partition. */
  readonly maxBatchRecords: number;
  /** About the most bytes of input one batch reads per task and topic (default 4 MiB). */
  readonly maxBatchBytes?: number;
  readonly deadLetterTopic: string;
  readonly lateTopic: string;
  /** Partition count of topics not listed in `topics`. */
  readonly defaultPartitions: number;
  readonly topics: Readonly<Record<string, TopicSpec>>;
  readonly clock: () => number;
  readonly observer?: RunnerObserver;
  /**
   * Hand re-keyed records straight to the task that reads them, within the batch that made
   * them, where the topic log allows it (default true). Off, they are read back from the
   * repartition topic by a later batch.
   */
  readonly handoff?: boolean;
  /** Each plugin's `onError` (default "dlq"). */
  readonly onError?: ReadonlyMap<string, OnError>;
  /** Accepted event times (default: from 1970 on, no bound ahead of the clock). */
  readonly eventTime?: { readonly min: number; readonly maxAheadMs: number | null };
  /**
   * Bytes of aggregation results the record caches of all tasks hold until the commit (Kafka
   * Streams' cache.max.bytes.buffering; default 0: every result forwarded at once).
   */
  readonly cacheMaxBytes?: number;
}

export type RunnerState =
  | "CREATED"
  | "STARTING"
  | "RUNNING"
  | "RECOVERING"
  | "STOPPING"
  | "STOPPED"
  | "ERROR";

/**
 * Runs the graph over a topic log: one task per input partition of each sub-topology. Each
 * batch is source → operators → state cache → one commit holding the outputs, the changed
 * state and the input offsets together, so a restart neither loses nor repeats work.
 */
export class PipelineRunner {
  #tasks: StreamTask[] = [];
  #subs: Subtopology[] = [];
  #state: RunnerState = "CREATED";
  #loop: Promise<void> | null = null;
  /** Ends the current wait (a backoff, or waiting for input) early. */
  #wake: (() => void) | null = null;
  /** Settles once the runner runs (or has given up starting). */
  #ready: Promise<void> | null = null;
  #idle = false;
  #error: Error | null = null;
  /** Why the runner is waiting for its topics, while STARTING or RECOVERING. */
  #problem: string | null = null;
  #reader: TopicReader;
  /** The latest queued commit. */
  #inflight: Promise<void> = Promise.resolve();
  /** Queued commits not yet awaited, oldest first. */
  #pending: Promise<void>[] = [];
  /** A failed commit: nothing may be committed after it until the runner reloads. */
  #failure: Error | null = null;
  /** Inputs of the next batch being loaded while the current commits run. */
  #readAhead: Promise<void> | null = null;
  /** Per repartition topic: its readers and next offsets (commits in flight included). */
  #repartitions = new Map<string, Repartition>();
  /** Operators that failed, by store: the sub-topologies holding these stores do not run. */
  #failedStores = new Map<string, OperatorFailure>();
  /**
   * Per task, running estimates of the output and state bytes one of its cached results (or
   * deferred records) becomes at the commit: tasks of different plugins differ a lot.
   */
  readonly #cachedCosts = new WeakMap<StreamTask, { output: number; state: number }>();

  constructor(
    readonly log: TopicLog,
    readonly committer: KvCommitter,
    readonly graph: TopologyGraph,
    readonly options: RunnerOptions,
  ) {
    this.#reader = log.reader();
  }

  get #maxBatchBytes(): number {
    return this.options.maxBatchBytes ?? 4 * 1024 * 1024;
  }

  get state(): RunnerState {
    return this.#state;
  }

  get error(): Error | null {
    return this.#error;
  }

  /**
   * Plugins stopped by an operator failure, with why: the failing operator's plugin, and any
   * plugin sharing its tasks. The others keep running; a start after a stop tries them again.
   */
  get failedPlugins(): ReadonlyMap<string, string> {
    const out = new Map<string, string>();
    for (const sub of buildSubtopologies(this.graph)) {
      const failure = sub.stores.map((s) => this.#failedStores.get(s)).find((f) => f);
      if (!failure) continue;
      for (const plugin of sub.plugins) {
        if (plugin === failure.plugin) out.set(plugin, failure.message);
        else if (!out.has(plugin)) {
          out.set(
            plugin,
            `stopped with plugin ${failure.plugin}, whose operator failed, as they share tasks`,
          );
        }
      }
    }
    return out;
  }

  /**
   * True while the runner waits for input with every commit landed: what it has read is
   * committed (lag then counts only what it has not read).
   */
  get idle(): boolean {
    return this.#idle;
  }

  /** Why the runner waits for its topics (STARTING, RECOVERING), or null. */
  get problem(): string | null {
    return this.#problem;
  }

  get subtopologies(): readonly Subtopology[] {
    return this.#subs;
  }

  get tasks(): readonly StreamTask[] {
    return this.#tasks;
  }

  /** Drops the tasks, freeing their stores' memory outside the JS heap; `init` loads them again. */
  release(): void {
    for (const task of this.#tasks) task.release();
    this.#tasks = [];
  }

  /** Prepares topics and loads tasks as of the last commit; call before `runOnce` or `start`. */
  async init(): Promise<void> {
    await this.#inflight;
    await this.#readAhead;
    this.#failure = null;
    this.#pending = [];
    await this.committer.serialize(() => this.committer.recover());
    const o = this.options;
    this.#subs = (await prepareTopics(this.log, this.graph, o))
      .filter((sub) => !sub.stores.some((s) => this.#failedStores.has(s)));
    this.release();
    this.#tasks = await loadTasks(this.#subs, this.graph, this.log, this.committer.kv, {
      applicationId: o.applicationId,
      deadLetterTopic: o.deadLetterTopic,
      lateTopic: o.lateTopic,
      onError: o.onError,
      cacheMaxBytes: o.cacheMaxBytes ?? 0,
      eventTime: {
        min: o.eventTime?.min ?? 0,
        maxAheadMs: o.eventTime?.maxAheadMs ?? null,
        now: o.clock,
      },
    });
    this.#repartitions = repartitions(this.graph.repartitions.keys(), this.#tasks, this.log);
    this.#reader = this.log.reader();
    if (this.#state === "CREATED" || this.#state === "ERROR") this.#state = "STOPPED";
  }

  /**
   * Processes one batch from every task that has input and queues its commit. Commits run in
   * order while the next batch is processed; at most COMMITS_IN_FLIGHT more wait. Returns the
   * number of input records processed: 0 only once every earlier commit has landed and no task
   * has input.
   */
  async runOnce(): Promise<number> {
    for (;;) {
      try {
        return await this.#runOnce();
      } catch (e) {
        if (!(e instanceof OperatorFailure)) throw e;
        await this.#isolate(e);
      }
    }
  }

  /**
   * Stops the tasks holding a failed operator's store and reloads the others from the last
   * commit: the failed batch was not committed, and every task's memory is ahead of it.
   */
  async #isolate(failure: OperatorFailure): Promise<void> {
    console.error(`${failure.message}; its tasks stop, the other plugins go on`);
    this.#failedStores.set(failure.store, failure);
    await this.init();
  }

  async #runOnce(): Promise<number> {
    if (this.#failure) throw this.#failure;
    // Awaited only when there is something to wait for: a woken runner should reach its commit
    // before producers woken at the same time queue theirs.
    if (this.#readAhead) await this.#readAhead;
    const fetching = this.#fetchInputs();
    if (fetching) await fetching;
    const processed = this.#processOrFail();
    // Load the next batch's inputs while this batch's commit runs. A failure is left for the
    // next runOnce's own fetch to meet and report.
    this.#readAhead = processed > 0 ? this.#fetchInputs()?.catch(() => {}) ?? null : null;
    // With nothing to do, wait for every commit, since they may publish records this runner
    // reads (repartitions).
    while (this.#pending.length > COMMITS_IN_FLIGHT) await this.#pending.shift();
    if (this.#failure) throw this.#failure;
    if (processed > 0) return processed;
    await this.#inflight;
    this.#pending = [];
    if (this.#failure) throw this.#failure;
    await this.#fetchInputs();
    return this.#processOrFail();
  }

  /** What every task reads next, as fetch requests. */
  #fetchRequests(): FetchRequest[] {
    const requests: FetchRequest[] = [];
    for (const task of this.#tasks) {
      for (const [topic, offset] of task.offsets) {
        // All of a batch's records, not just the first page: tasks reading several topics
        // merge them by time, and a short read would change that order.
        requests.push({
          topic,
          partition: task.partition,
          offset,
          max: this.options.maxBatchRecords,
          maxBytes: this.#maxBatchBytes,
        });
      }
    }
    return requests;
  }

  #fetchInputs(maxWaitMs = 0): Promise<void> | void {
    return this.#reader.fetch(this.#fetchRequests(), maxWaitMs);
  }

  /**
   * A batch whose processing threw (a plugin with `onError: "stop"`) is never committed, and
   * nothing after it is: in-memory state is ahead of the last commit until the runner reloads.
   */
  #processOrFail(): number {
    try {
      return this.#processBatch();
    } catch (e) {
      // Earlier batches stay good to commit; the runner reloads without the failed store.
      if (e instanceof OperatorFailure) throw e;
      this.#failure = e as Error;
      this.#error = e as Error;
      this.#state = "ERROR";
      throw e;
    }
  }

  /** Processes one batch synchronously and queues its commit; returns the records processed. */
  #processBatch(): number {
    const o = this.options;
    const started = performance.now();
    const deadline = started + o.commitIntervalMs;
    const handoff = o.handoff !== false && this.log.handsOffInternally;
    for (const r of this.#repartitions.values()) r.beginBatch(handoff);
    const batch = new Batch(this.#repartitions);
    const budget = this.log.commitBudget;
    const advanced = new Set<StreamTask>();
    const appendedAt: number[] = [];
    let processed = 0;
    for (const task of this.#tasks) {
      task.output = batch.outputFor(task);
      let full = false;
      for (
        const { log, record } of taskInputs(
          task,
          this.#reader,
          o.maxBatchRecords,
          this.#maxBatchBytes,
        )
      ) {
        advanced.add(task);
        task.process(log, record);
        task.offsets.set(log.topic, log.offset + 1);
        batch.countIn(log.topic);
        if (log.appendedAt !== undefined) appendedAt.push(log.appendedAt);
        processed++;
        // Keep the commit within one atomic KV write, and the batch within the commit interval.
        // Records read but not processed are read again by the next batch.
        if (
          batch.bytes + batch.handoffBytes > budget.outputBytes ||
          ((processed & 63) === 0 &&
            (performance.now() > deadline || this.#overBudget(batch, budget)))
        ) {
          full = true;
          break;
        }
      }
      if (full) {
        // Tasks left out of this batch are first in line in the next one.
        this.#tasks.push(...this.#tasks.splice(0, this.#tasks.indexOf(task) + 1));
        break;
      }
    }
    // Re-keyed records go to their readers now, including those re-keyed again on the way;
    // then the record caches forward what they hold, which may re-key more.
    for (let i = 0; i < batch.handoffs.length || this.#flushCaches(batch); i++) {
      if (i >= batch.handoffs.length) {
        i--;
        continue;
      }
      const log = batch.handoffs[i];
      const r = this.#repartitions.get(log.topic)!;
      const task = r.readers[log.partition];
      advanced.add(task);
      task.output = batch.outputFor(task);
      batch.handoffBytes -= r.cost;
      const before = batch.bytes + batch.handoffBytes;
      const cachedBefore = task.cachedResults;
      task.process(log, task.decode(log));
      // What such a record makes its reader write (outputs, estimates for records it hands on
      // and for what it leaves to the commit), for the budget of the batches that hand it off.
      const cost = this.#costOf(task);
      const deferred = (task.cachedResults - cachedBefore) * (cost.output + cost.state);
      r.observe(batch.bytes + batch.handoffBytes - before + HANDOFF_STATE_BYTES + deferred);
      task.offsets.set(log.topic, log.offset + 1);
      batch.countIn(log.topic);
      processed++;
    }
    if (processed === 0) return 0;
    const processingMs = performance.now() - started;
    // Everything the commit holds is captured now, before the next batch changes it.
    const commit = this.#batchCommit(batch, advanced);
    this.#inflight = this.#commit(commit).then(() => {
      if (this.#failure) return;
      const committedAt = o.clock();
      o.observer?.batch?.({
        recordsIn: batch.recordsIn,
        recordsOut: batch.recordsOut,
        deadLetters: batch.deadLetters,
        late: batch.lateCounts,
        processingMs,
        latenciesMs: appendedAt.map((t) => Math.max(0, committedAt - t)),
      });
    });
    this.#pending.push(this.#inflight);
    return processed;
  }

  /**
   * Forwards every task's cached results into the batch; false when none held any. What they
   * became, in bytes per result, refines the estimate the next batches are cut by.
   */
  #flushCaches(batch: Batch): boolean {
    let flushed = false;
    for (const task of this.#tasks) {
      if (!task.hasCached) continue;
      flushed = true;
      const results = task.cachedResults;
      const before = batch.bytes + batch.handoffBytes;
      const dirtyBefore = taskDirtyBytes(task);
      task.output = batch.outputFor(task);
      task.flushCaches();
      const cost = this.#costOf(task);
      cost.output = 0.8 * cost.output + 0.2 * (batch.bytes + batch.handoffBytes - before) / results;
      // Deferred records change their stores only now (the operators' batches).
      cost.state = 0.8 * cost.state +
        0.2 * Math.max(0, taskDirtyBytes(task) - dirtyBefore) / results;
      this.#cachedCosts.set(task, cost);
    }
    return flushed;
  }

  /** The running estimate of what one of a task's cached results becomes at the commit. */
  #costOf(task: StreamTask): { output: number; state: number } {
    return this.#cachedCosts.get(task) ?? { output: CACHED_OUTPUT_BYTES, state: 0 };
  }

  /**
   * Whether the commit would outgrow its budget: the batch's outputs, with what the record
   * caches and deferred records will write at the commit, and the state changed (and, when
   * outputs and state share one KV commit, both together).
   */
  #overBudget(batch: Batch, budget: TopicLog["commitBudget"]): boolean {
    let output = batch.bytes + batch.handoffBytes;
    let state = 0;
    for (const task of this.#tasks) {
      state += taskDirtyBytes(task);
      const results = task.cachedResults;
      if (results === 0) continue;
      const cost = this.#costOf(task);
      output += results * cost.output;
      state += results * cost.state;
    }
    return output > budget.outputBytes ||
      state + (budget.shared ? output : 0) > budget.stateBytes;
  }

  /** A batch's outputs, offsets, stream times and changed state, as one commit. */
  #batchCommit(batch: Batch, advanced: ReadonlySet<StreamTask>): BatchCommit {
    const state: Mutation[] = [];
    const changes = new Map<StreamTask, StoreChanges[]>();
    for (const task of this.#tasks) {
      const list: StoreChanges[] = [];
      for (const [name, store] of task.stores) {
        const c = store.map.takeCommit(this.log.keepsChangelogs);
        for (const m of c.mutations) state.push(m);
        if (c.changes.length > 0) {
          list.push({ store: name, partition: task.partition, entries: c.changes });
        }
      }
      changes.set(task, list);
    }
    for (const task of advanced) {
      for (const [topic, offset] of task.offsets) {
        task.offsets.set(topic, this.#reader.skipTo(topic, task.partition, offset));
      }
    }
    const tasks: TaskCommit[] = [];
    for (const task of this.#tasks) {
      const own = changes.get(task)!;
      if (!advanced.has(task) && own.length === 0) continue;
      tasks.push({
        task: taskRef(task),
        outputs: batch.tasks.get(task)?.appends ?? new Map(),
        offsets: new Map(task.offsets),
        streamTime: task.streamTime,
        changes: own,
      });
    }
    const consumed = [...advanced].flatMap((t) =>
      [...t.offsets].filter(([topic]) => this.graph.repartitions.has(topic))
        .map(([topic, offset]) => ({ topic, partition: t.partition, offset }))
    );
    return { tasks, state, handedOff: batch.handedOff, consumed, appends: batch.appends };
  }

  /**
   * Commits a batch, in batch order. After a failure nothing later is committed: in-memory state
   * is ahead of the last commit, so the runner reloads from it (at once, when the topics are
   * unavailable for a while; on the next start, otherwise).
   */
  async #commit(commit: BatchCommit): Promise<void> {
    try {
      await this.log.commit(commit, () => this.#failure !== null);
    } catch (e) {
      this.#failure ??= e as Error;
      if (e instanceof TopicsUnavailableError) return;
      this.#error = e as Error;
      this.#state = "ERROR";
    }
  }

  /** Processes until every task is caught up, including records produced along the way. */
  async runUntilIdle(maxBatches = 100_000): Promise<number> {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const n = await this.runOnce();
      if (n === 0) return total;
      total += n;
    }
    throw new Error(`runUntilIdle: still busy after ${maxBatches} batches`);
  }

  /**
   * Starts processing in the background once the topics are ready, and resolves then. While
   * they cannot be reached it stays STARTING (with the reason in `problem`) and retries with
   * backoff; an error that retrying cannot fix (a topic with the wrong partition count) rejects.
   */
  start(): Promise<void> {
    if (["STARTING", "RUNNING", "RECOVERING"].includes(this.#state)) {
      return this.#ready ?? Promise.resolve();
    }
    // Operators that failed get another chance: their tasks reload from the last commit.
    const needsInit = this.#state === "ERROR" || this.#tasks.length === 0 ||
      this.#failedStores.size > 0;
    this.#failedStores.clear();
    this.#state = "STARTING";
    this.#error = null;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#ready = promise;
    this.#loop = (async () => {
      try {
        if (needsInit && !(await this.#initWithRetries("STARTING"))) return resolve();
      } catch (e) {
        return reject(e);
      }
      if (this.#state !== "STARTING") return resolve();
      this.#state = "RUNNING";
      resolve();
      await this.#run();
    })();
    return promise;
  }

  /** `init`, retried with backoff while the topics are unavailable; false once stopping. */
  async #initWithRetries(state: "STARTING" | "RECOVERING"): Promise<boolean> {
    for (let attempt = 0;; attempt++) {
      try {
        await this.init();
        this.#problem = null;
        return this.#state === state;
      } catch (e) {
        if (!(e instanceof TopicsUnavailableError)) {
          this.#state = "ERROR";
          this.#error = e as Error;
          this.#problem = null;
          throw e;
        }
        const wait = Math.min(5_000, 250 * 2 ** attempt);
        this.#problem = `${e.message}; retrying in ${Math.round(wait / 100) / 10} s`;
        console.error(`pipeline ${state.toLowerCase()}: ${this.#problem}`);
        await this.#pause(wait);
        if (this.#state !== state) return false;
      }
    }
  }

  /** Waits `ms`, or until `#wake` (stop) ends the wait. */
  #pause(ms: number): Promise<void> {
    const wait = new AbortController();
    this.#wake = () => wait.abort();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, ms);
      wait.signal.addEventListener("abort", done);
    });
  }

  async #run(): Promise<void> {
    while (this.#state === "RUNNING") {
      let n = 0;
      try {
        n = await this.runOnce();
        // Nothing to do: wait for input (a long poll on Kafka, the next append on the embedded
        // log), or until stop ends the wait.
        if (n === 0 && this.#state === "RUNNING") {
          const wait = new AbortController();
          this.#wake = () => wait.abort();
          this.#idle = true;
          try {
            // A fetch with nothing to fetch returns at once; should no task take what it holds,
            // wait a moment rather than loop in microtasks, which would starve timers and I/O.
            await (this.#reader.fetch(this.#fetchRequests(), 1000, wait.signal) ??
              new Promise((r) => setTimeout(r, 1)));
          } finally {
            this.#idle = false;
          }
        }
      } catch (e) {
        if (e instanceof TopicsUnavailableError) {
          if (!(await this.#recover(e))) break;
          continue;
        }
        console.error(`pipeline stopped: ${(e as Error).message}`);
        this.#state = "ERROR";
        this.#error = e as Error;
        break;
      }
    }
  }

  /** Reloads from the last commit once the topics can be used again; false when stopping. */
  async #recover(e: Error): Promise<boolean> {
    this.#state = "RECOVERING";
    this.#problem = e.message;
    console.error(`pipeline recovering: ${e.message}`);
    try {
      if (!(await this.#initWithRetries("RECOVERING"))) return false;
    } catch (fatal) {
      console.error(`pipeline stopped: ${(fatal as Error).message}`);
      return false;
    }
    this.#state = "RUNNING";
    return true;
  }

  /** Stops after the batch in progress has committed. */
  async stop(): Promise<void> {
    if (this.#state !== "RUNNING" && this.#state !== "STARTING" && this.#state !== "RECOVERING") {
      return;
    }
    this.#state = "STOPPING";
    this.#wake?.();
    await this.#loop;
    await this.#inflight;
    await this.#readAhead;
    if (this.#state === "STOPPING") this.#state = "STOPPED";
  }

  /**
   * Deletes every store and committed offset of this application, and the records of its
   * internal topics (as Kafka Streams' reset does), never other topics' records.
   */
  async cleanup(): Promise<void> {
    if (this.#state === "RUNNING" || this.#state === "STOPPING" || this.#state === "STARTING") {
      throw new Error("Cannot clean up while the pipeline is running: stop it first");
    }
    const kv = this.committer.kv;
    await this.committer.serialize(async () => {
      const keys: Mutation[] = [];
      for await (const e of kv.list({ prefix: statePrefix(this.options.applicationId) })) {
        keys.push({ key: e.key, value: null });
      }
      await this.committer.write(keys);
    });
    await this.log.reset([...this.graph.repartitions.keys()]);
    this.release();
    await this.init();
  }
}

/**
 * Commits that may be queued while the next batch is processed: they absorb slow commits (such
 * as SQLite checkpoints) without stalling processing.
 */
const COMMITS_IN_FLIGHT = 3;

/** Estimated bytes the next commit writes for a task's state. */
function taskDirtyBytes(task: StreamTask): number {
  let bytes = 0;
  for (const store of task.stores.values()) bytes += store.map.dirtyBytes;
  return bytes;
}

/** First estimate of the output bytes one cached result becomes when it is forwarded. */
const CACHED_OUTPUT_BYTES = 400;

/** Estimated state bytes a handed-off record changes in its reader's stores. */
const HANDOFF_STATE_BYTES = 150;
