import type { Mutation } from "./kv/blob.ts";
import type { KvCommitter } from "./kv/committer.ts";
import { type LogRecord, type NewRecord, serializedValue, type StreamRecord } from "./record.ts";
import { partitionForKey } from "./murmur2.ts";
import { KeyValueStore } from "./state/key_value_store.ts";
import { PersistentMap } from "./state/persistent_map.ts";
import { windowCodec, WindowStore } from "./state/window_store.ts";
import {
  type AnyStore,
  type EventTimeBounds,
  type OnError,
  StreamTask,
  type TaskOutput,
} from "./task.ts";
import type { EmbeddedLog, TopicSpec } from "./topics/embedded_log.ts";
import type { TopologyGraph } from "./topology/graph.ts";
import { buildSubtopologies, type Subtopology } from "./topology/subtopologies.ts";

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
   * them (default true). Off, they are read back from the repartition topic by a later batch.
   */
  readonly handoff?: boolean;
  /** Each plugin's `onError` (default "dlq"). */
  readonly onError?: ReadonlyMap<string, OnError>;
  /** Accepted event times (default: from 1970 on, no bound ahead of the clock). */
  readonly eventTime?: { readonly min: number; readonly maxAheadMs: number | null };
}

export type RunnerState = "CREATED" | "RUNNING" | "STOPPING" | "STOPPED" | "ERROR";

/**
 * Runs the graph over the embedded log: one task per input partition of each sub-topology.
 * Each batch is source → operators → state cache → one commit holding the outputs, the
 * changed state and the input offsets together, so a restart neither loses nor repeats work.
 */
export class PipelineRunner {
  #tasks: StreamTask[] = [];
  #subs: Subtopology[] = [];
  #state: RunnerState = "CREATED";
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #unsubscribe: (() => void) | null = null;
  #error: Error | null = null;
  /** The latest queued commit. */
  #inflight: Promise<void> = Promise.resolve();
  /** Queued commits not yet awaited, oldest first. */
  #pending: Promise<void>[] = [];
  /** A failed commit: nothing may be committed after it until the runner reloads from KV. */
  #failure: Error | null = null;
  /** Inputs of the next batch being loaded from KV while the current commits run. */
  #readAhead: Promise<void> | null = null;
  /** Per repartition topic: its readers and next offsets (commits in flight included). */
  #repartitions = new Map<string, Repartition>();

  constructor(
    readonly log: EmbeddedLog,
    readonly committer: KvCommitter,
    readonly graph: TopologyGraph,
    readonly options: RunnerOptions,
  ) {}

  get #maxBatchBytes(): number {
    return this.options.maxBatchBytes ?? 4 * 1024 * 1024;
  }

  get state(): RunnerState {
    return this.#state;
  }

  get error(): Error | null {
    return this.#error;
  }

  get subtopologies(): readonly Subtopology[] {
    return this.#subs;
  }

  get tasks(): readonly StreamTask[] {
    return this.#tasks;
  }

  /** Creates the topics the graph needs and checks that joined topics are co-partitioned. */
  prepareTopics(): void {
    const o = this.options;
    const spec = (topic: string): TopicSpec =>
      o.topics[topic] ?? { partitions: o.defaultPartitions };
    const ensure = (topic: string, s: TopicSpec) => this.log.ensureTopic(topic, s);
    for (const topic of Object.keys(o.topics)) ensure(topic, o.topics[topic]);
    for (const topic of this.graph.inputTopics()) ensure(topic, spec(topic));
    for (const rp of this.graph.repartitions.values()) {
      const like = rp.partitionsLike.filter((t) => this.log.hasTopic(t)).map((t) =>
        this.log.partitions(t)
      );
      ensure(rp.topic, { partitions: Math.max(1, ...like) });
    }
    const read = new Set([...this.graph.inputTopics(), ...this.graph.repartitions.keys()]);
    for (const topic of [...this.graph.sinks.keys(), o.deadLetterTopic, o.lateTopic]) {
      if (!this.log.hasTopic(topic)) ensure(topic, spec(topic));
      if (!read.has(topic)) this.log.markOutputOnly(topic);
    }
    this.#subs = buildSubtopologies(this.graph);
    for (const sub of this.#subs) {
      const counts = sub.topics.map((t) => `${t} (${this.log.partitions(t)})`);
      if (new Set(sub.topics.map((t) => this.log.partitions(t))).size > 1) {
        throw new Error(
          `Cannot run plugin(s) ${
            sub.plugins.join(", ")
          } as topics read together must have the same partition count: ${
            counts.join(", ")
          }. Set equal "partitions" for them in the config's "topics".`,
        );
      }
    }
  }

  /** Loads every task's stores and committed offsets from KV. */
  async #createTasks(): Promise<void> {
    const kv = this.committer.kv;
    const app = this.options.applicationId;
    const internal = new Set(this.graph.repartitions.keys());
    const eventTime: EventTimeBounds = {
      min: this.options.eventTime?.min ?? 0,
      maxAheadMs: this.options.eventTime?.maxAheadMs ?? null,
      now: this.options.clock,
    };
    const tasks: StreamTask[] = [];
    for (const sub of this.#subs) {
      const partitions = this.log.partitions(sub.topics[0]);
      for (let p = 0; p < partitions; p++) {
        const stores = new Map<string, AnyStore>();
        for (const name of sub.stores) {
          const spec = this.graph.stores.get(name)!;
          const prefix = ["st", app, name, p];
          stores.set(
            name,
            spec.kind === "kv"
              ? new KeyValueStore(name, await PersistentMap.load(kv, prefix))
              : new WindowStore(name, await PersistentMap.load(kv, prefix, { codec: windowCodec })),
          );
        }
        const offsets = new Map<string, number>();
        for (const topic of sub.topics) {
          const committed = await kv.get<number>(["off", app, topic, p]);
          offsets.set(topic, committed.value ?? this.log.startOffset(topic, p));
        }
        const task = new StreamTask(
          sub,
          p,
          stores,
          offsets,
          { deadLetter: this.options.deadLetterTopic, late: this.options.lateTopic },
          internal,
          this.options.onError,
          eventTime,
        );
        const time = await kv.get<number>(["time", app, sub.topics.join(","), p]);
        if (time.value !== null) task.streamTime = time.value;
        tasks.push(task);
      }
    }
    this.#tasks = tasks;
    this.#repartitions = new Map();
    for (const topic of internal) {
      const readers = tasks.filter((t) => t.sub.topics.includes(topic));
      this.#repartitions.set(topic, {
        readers: readers.sort((a, b) => a.partition - b.partition),
        next: readers.map((t) => this.log.endOffset(topic, t.partition)),
        roundRobin: 0,
        direct: false,
        cost: 500,
      });
    }
  }

  /** Prepares topics and loads tasks; call before `runOnce` or `start`. */
  async init(): Promise<void> {
    await this.#inflight;
    this.#failure = null;
    await this.committer.serialize(() => this.committer.recover());
    this.prepareTopics();
    await this.#createTasks();
    if (this.#state === "CREATED" || this.#state === "ERROR") this.#state = "STOPPED";
  }

  /**
   * Processes one batch from every task that has input and queues its commit. Commits run in
   * order while the next batch is processed (KV writes happen off the JS thread); at most one
   * more waits. Returns the number of input records processed: 0 only once every earlier commit
   * has landed and no task has input.
   */
  async runOnce(): Promise<number> {
    if (this.#failure) throw this.#failure;
    await this.#readAhead;
    await this.#prefetchInputs();
    const processed = this.#processOrFail();
    // Load the next batch's inputs from KV while this batch's commit runs. A failure is left
    // for the next runOnce's own prefetch to meet and report.
    this.#readAhead = processed > 0 ? this.#prefetchInputs().catch(() => {}) : null;
    // Up to COMMITS_IN_FLIGHT commits run while the caller processes more; with nothing to do,
    // wait for every commit, since they may publish records this runner reads (repartitions).
    while (this.#pending.length > COMMITS_IN_FLIGHT) await this.#pending.shift();
    if (this.#failure) throw this.#failure;
    if (processed > 0) return processed;
    await this.#inflight;
    this.#pending = [];
    if (this.#failure) throw this.#failure;
    await this.#prefetchInputs();
    return this.#processOrFail();
  }

  /**
   * A batch whose processing threw (a plugin with `onError: "stop"`) is never committed, and
   * nothing after it is: in-memory state is ahead of KV until the runner reloads.
   */
  #processOrFail(): number {
    try {
      return this.#processBatch();
    } catch (e) {
      this.#failure = e as Error;
      this.#error = e as Error;
      this.#state = "ERROR";
      throw e;
    }
  }

  /** Loads from KV the input records of tasks reading older than the log keeps in memory. */
  async #prefetchInputs(): Promise<void> {
    for (const task of this.#tasks) {
      for (const [topic, offset] of task.offsets) {
        // All of a batch's records, not just the first page: tasks reading several topics merge
        // them by time, and a short read would change that order.
        const max = this.options.maxBatchRecords;
        const bytes = this.#maxBatchBytes;
        if (this.log.needsPrefetch(topic, task.partition, offset, max, bytes)) {
          await this.log.prefetch(topic, task.partition, offset, max, bytes);
        }
      }
    }
  }

  /** Processes one batch synchronously and queues its commit; returns the records processed. */
  #processBatch(): number {
    const o = this.options;
    const started = performance.now();
    const deadline = started + o.commitIntervalMs;
    // A repartition topic is handed over directly when its readers have read everything
    // appended to it so far, so records stay in order.
    for (const [topic, r] of this.#repartitions) {
      r.direct = o.handoff !== false &&
        r.readers.every((t, p) => t.offsets.get(topic) === r.next[p]);
    }
    const batch = new Batch(this.#repartitions);
    const advanced = new Set<StreamTask>();
    const appendedAt: number[] = [];
    let processed = 0;
    for (const task of this.#tasks) {
      task.output = batch;
      let full = false;
      for (const { log, record } of this.#inputs(task)) {
        advanced.add(task);
        task.process(log, record);
        task.offsets.set(log.topic, log.offset + 1);
        batch.countIn(log.topic);
        if (log.appendedAt !== undefined) appendedAt.push(log.appendedAt);
        processed++;
        // Keep the commit within one atomic KV write, and the batch within the commit interval.
        // Records read but not processed are read again by the next batch.
        if (
          batch.bytes + batch.handoffBytes > BATCH_BYTES ||
          ((processed & 63) === 0 &&
            (performance.now() > deadline ||
              batch.bytes + batch.handoffBytes + this.#dirtyBytes() > BATCH_BYTES))
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
    // Re-keyed records go to their readers now, including those re-keyed again on the way.
    for (let i = 0; i < batch.handoffs.length; i++) {
      const log = batch.handoffs[i];
      const r = this.#repartitions.get(log.topic)!;
      const task = r.readers[log.partition];
      advanced.add(task);
      task.output = batch;
      batch.handoffBytes -= r.cost;
      const before = batch.bytes + batch.handoffBytes;
      task.process(log, task.decode(log));
      // What such a record makes its reader write (outputs, and estimates for records it
      // hands on), for the budget of the batches that hand it off.
      const written = batch.bytes + batch.handoffBytes - before + HANDOFF_STATE_BYTES;
      r.cost = 0.9 * r.cost + 0.1 * written;
      task.offsets.set(log.topic, log.offset + 1);
      batch.countIn(log.topic);
      processed++;
    }
    if (processed === 0) return 0;
    const processingMs = performance.now() - started;
    // Everything the commit holds is captured now, before the next batch changes it.
    const mutations = this.#stateAndOffsets(advanced);
    const consumed = [...advanced].flatMap((t) =>
      [...t.offsets].filter(([topic]) => this.graph.repartitions.has(topic))
        .map(([topic, offset]) => ({ topic, partition: t.partition, offset }))
    );
    this.#inflight = this.#commit(batch, mutations, consumed).then(() => {
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

  /** Estimated bytes the next commit writes for state (changes and snapshot steps). */
  #dirtyBytes(): number {
    let bytes = 0;
    for (const task of this.#tasks) {
      for (const store of task.stores.values()) bytes += store.map.dirtyBytes;
    }
    return bytes;
  }

  /** Offsets, stream times and changed state of a batch, as KV mutations. */
  #stateAndOffsets(advanced: ReadonlySet<StreamTask>): Mutation[] {
    const app = this.options.applicationId;
    const mutations: Mutation[] = [];
    for (const task of advanced) {
      for (const [topic, offset] of task.offsets) {
        mutations.push({ key: ["off", app, topic, task.partition], value: offset });
      }
      if (Number.isFinite(task.streamTime)) {
        mutations.push({
          key: ["time", app, task.sub.topics.join(","), task.partition],
          value: task.streamTime,
        });
      }
    }
    for (const task of this.#tasks) {
      for (const store of task.stores.values()) mutations.push(...store.map.takeMutations());
    }
    return mutations;
  }

  /**
   * The next records of a task, decoded a few at a time ahead of processing (see DECODE_AHEAD).
   * Across topics they are merged by picking the topic whose next record is earliest (ties:
   * tables first, as topics are ordered); each topic stays in offset order.
   */
  *#inputs(task: StreamTask): Generator<{ log: LogRecord; record: StreamRecord | string }> {
    const max = this.options.maxBatchRecords;
    const bytes = this.#maxBatchBytes;
    const topics = task.sub.topics.map((topic) => {
      const from = Math.max(task.offsets.get(topic)!, this.log.startOffset(topic, task.partition));
      return new InputCursor(task, this.log.read(topic, task.partition, from, max, bytes));
    });
    if (topics.length === 1) {
      const t = topics[0];
      while (t.at < t.records.length) {
        const record = t.head();
        yield { log: t.records[t.at++], record };
      }
      return;
    }
    for (;;) {
      let pick = -1;
      let pickTime = Infinity;
      for (let i = 0; i < topics.length; i++) {
        const t = topics[i];
        if (t.at >= t.records.length) continue;
        const head = t.head();
        const time = typeof head === "string" ? t.records[t.at].timestamp : head.timestamp;
        if (pick === -1 || time < pickTime) {
          pick = i;
          pickTime = time;
        }
      }
      if (pick === -1) return;
      const t = topics[pick];
      const record = t.head();
      yield { log: t.records[t.at++], record };
    }
  }

  /**
   * Writes a batch's outputs with its state and offsets in one logical commit, in batch order.
   * After a failure nothing later is written: in-memory state is ahead of KV, so the runner
   * stops and reloads from KV on its next start.
   */
  #commit(
    batch: Batch,
    mutations: Mutation[],
    consumed: { topic: string; partition: number; offset: number }[],
  ): Promise<void> {
    return this.committer.serialize(async () => {
      if (this.#failure) return;
      try {
        const staged = this.log.stage(batch.appends, batch.handedOff);
        await this.committer.write([...staged.mutations, ...mutations]);
        staged.publish();
        // Repartition records every reader has committed past are no longer needed.
        for (const c of consumed) this.log.truncateBefore(c.topic, c.partition, c.offset);
      } catch (e) {
        this.#failure = e as Error;
        this.#error = e as Error;
        this.#state = "ERROR";
      }
    });
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

  /** Starts the processing loop in the background. */
  async start(): Promise<void> {
    if (this.#state === "RUNNING") return;
    if (this.#state === "ERROR" || this.#tasks.length === 0) await this.init();
    this.#state = "RUNNING";
    this.#error = null;
    this.#unsubscribe = this.log.onAppend(() => this.#wake?.());
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (this.#state === "RUNNING") {
      let n = 0;
      try {
        n = await this.runOnce();
      } catch (e) {
        console.error(`pipeline stopped: ${(e as Error).message}`);
        this.#state = "ERROR";
        this.#error = e as Error;
        break;
      }
      if (n === 0 && this.#state === "RUNNING") {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          this.#wake = () => {
            clearTimeout(timer);
            this.#wake = null;
            resolve();
          };
        });
      }
    }
  }

  /** Stops after the batch in progress has committed. */
  async stop(): Promise<void> {
    if (this.#state !== "RUNNING") return;
    this.#state = "STOPPING";
    this.#wake?.();
    await this.#loop;
    await this.#inflight;
    await this.#readAhead;
    this.#unsubscribe?.();
    if (this.#state === "STOPPING") this.#state = "STOPPED";
  }

  /**
   * Deletes every store and committed offset of this application, and the records of its
   * internal repartition topics (as Kafka Streams' reset does), never other topics' records.
   */
  async cleanup(): Promise<void> {
    if (this.#state === "RUNNING" || this.#state === "STOPPING") {
      throw new Error("Cannot clean up while the pipeline is running: stop it first");
    }
    const kv = this.committer.kv;
    const app = this.options.applicationId;
    await this.committer.serialize(async () => {
      for (const prefix of [["st", app], ["off", app], ["time", app]]) {
        const keys: Mutation[] = [];
        for await (const e of kv.list({ prefix })) keys.push({ key: e.key, value: null });
        await this.committer.write(keys);
      }
      // Unconsumed repartition records would be counted again on top of the reprocessed input.
      for (const topic of this.graph.repartitions.keys()) {
        for (let p = 0; p < this.log.partitions(topic); p++) {
          this.log.truncateBefore(topic, p, this.log.endOffset(topic, p));
        }
      }
      const staged = this.log.stage(new Map());
      await this.committer.write(staged.mutations);
    });
    this.#tasks = [];
    await this.#createTasks();
  }
}

/**
 * Commits that may be queued while the next batch is processed: they absorb slow commits (such
 * as SQLite checkpoints) without stalling processing.
 */
const COMMITS_IN_FLIGHT = 3;

/**
 * Estimated bytes (outputs and changed state) after which a batch commits, so that the commit
 * usually fits one atomic KV write (800 KiB) and only outliers need the write-ahead log.
 */
const BATCH_BYTES = 550 * 1024;

/** Estimated state bytes a handed-off record changes in its reader's stores. */
const HANDOFF_STATE_BYTES = 150;

/**
 * Records decoded at a time, ahead of processing. JSON.parse run back to back keeps the
 * parser's tables (interned keys, object shapes) in the CPU cache: in the benchmark a parse
 * between two records' operators took ~2.9 µs, in runs of 64 ~2.3 µs. Records decoded but left
 * for the next batch are decoded again then, so the chunk stays small (256: ~2.0 µs, but 16 %
 * of the parses wasted).
 */
const DECODE_AHEAD = 64;

/** A task's read of one topic: the records, the next one to process, and those decoded. */
class InputCursor {
  at = 0;
  #decoded: (StreamRecord | string)[] = [];
  #decodedFrom = 0;

  constructor(readonly task: StreamTask, readonly records: readonly LogRecord[]) {}

  /** The decoded record at `at` (which must be < records.length). */
  head(): StreamRecord | string {
    const i = this.at - this.#decodedFrom;
    if (i < this.#decoded.length) return this.#decoded[i];
    const end = Math.min(this.records.length, this.at + DECODE_AHEAD);
    const decoded: (StreamRecord | string)[] = [];
    for (let j = this.at; j < end; j++) decoded.push(this.task.decode(this.records[j]));
    this.#decoded = decoded;
    this.#decodedFrom = this.at;
    return decoded[0];
  }
}

/** Approximate bytes a record adds to a commit. */
function recordBytes(key: string | null, value: string | null): number {
  return 48 + (key?.length ?? 0) + (value?.length ?? 0);
}

/** A repartition topic as the runner routes it. */
interface Repartition {
  /** The task reading each partition. */
  readonly readers: StreamTask[];
  /** Offset the next record of each partition gets, counting batches not yet committed. */
  readonly next: number[];
  roundRobin: number;
  /** Handed to its readers within the batch, in this batch. */
  direct: boolean;
  /** Running estimate of the bytes a handed-off record makes its reader write. */
  cost: number;
}

/** Everything one batch produces: output records per topic and counts for metrics. */
class Batch implements TaskOutput {
  readonly appends = new Map<string, NewRecord[]>();
  /** Re-keyed records for readers in this batch, in the order they were sent. */
  readonly handoffs: LogRecord[] = [];
  /** Topics whose records this batch appends are all read within it. */
  readonly handedOff = new Set<string>();
  /** Estimated bytes the handed-off records not yet processed will make their readers write. */
  handoffBytes = 0;

  constructor(readonly repartitions: ReadonlyMap<string, Repartition>) {}

  /** Approximate bytes of the output records. */
  bytes = 0;
  readonly recordsIn = new Map<string, number>();
  readonly recordsOut = new Map<string, number>();
  readonly deadLetters = new Map<string, number>();
  readonly lateCounts = new Map<string, number>();

  countIn(topic: string): void {
    this.recordsIn.set(topic, (this.recordsIn.get(topic) ?? 0) + 1);
  }

  send(topic: string, record: NewRecord): void {
    let list = this.appends.get(topic);
    if (!list) this.appends.set(topic, list = []);
    this.recordsOut.set(topic, (this.recordsOut.get(topic) ?? 0) + 1);
    const r = this.repartitions.get(topic);
    if (!r) {
      list.push(record);
      this.bytes += recordBytes(record.key, serializedValue(record));
      return;
    }
    // Partition and offset are assigned here, as the log will, so a reader can take the record
    // before it is committed.
    const n = r.readers.length;
    const partition = record.key === null ? r.roundRobin++ % n : partitionForKey(record.key, n);
    const offset = r.next[partition]++;
    if (!r.direct) {
      // Stored for a later batch: serialized now, so the batch knows its size.
      const value = serializedValue(record);
      list.push({ ...record, value, partition });
      this.bytes += recordBytes(record.key, value);
      return;
    }
    list.push({ ...record, partition });
    this.handedOff.add(topic);
    this.handoffBytes += r.cost;
    this.handoffs.push({
      topic,
      partition,
      offset,
      key: record.key,
      value: record.value,
      timestamp: record.timestamp!,
      headers: record.headers ?? {},
      parsed: record.parsed,
    });
  }

  deadLettered(sourceTopic: string): void {
    this.deadLetters.set(sourceTopic, (this.deadLetters.get(sourceTopic) ?? 0) + 1);
  }

  late(plugin: string, store: string): void {
    const k = `${plugin}/${store}`;
    this.lateCounts.set(k, (this.lateCounts.get(k) ?? 0) + 1);
  }
}
