import { fetchStableOffsets } from "./stable_offsets.ts";
import type { Admin, Kafka, Message, Producer, TopicMessages } from "kafkajs";
import type { Mutation } from "../../kv/blob.ts";
import type { KvCommitter } from "../../kv/committer.ts";
import type { NewRecord } from "../../record.ts";
import type { PersistedState } from "../../state/persistent_map.ts";
import { Partitioner } from "../partitioner.ts";
import {
  type BatchCommit,
  changelogTopic,
  type RecordPosition,
  type TaskPositions,
  type TaskRef,
  type TopicLog,
  TopicMismatchError,
  type TopicRequest,
  TopicsUnavailableError,
  UnknownTopicError,
} from "../topic_log.ts";
import {
  createCluster,
  createKafka,
  describeKafkaError,
  type KafkaCluster,
  type KafkaSourceConfig,
} from "./kafka_client.ts";
import { KafkaReader, type PartitionState } from "./kafka_reader.ts";
import { toMessage } from "./record_codec.ts";
import { TaskProducers, type TaskTransaction } from "./task_producers.ts";

/** Options of `KafkaTopics.open`. */
export interface KafkaTopicsOptions {
  readonly applicationId: string;
  /** Local state (a cache of the changelogs) and its checkpoints live here. */
  readonly committer: KvCommitter;
  readonly clock: () => number;
  /** "exactly_once_v2": one transaction per task and batch; "at_least_once": none. */
  readonly processingGuarantee: "exactly_once_v2" | "at_least_once";
}

export interface TopicMeta {
  readonly partitions: number;
  readonly ends: number[];
  readonly starts: number[];
}

/**
 * A topic's offsets after a ListOffsets answer. The answer can be older than a commit that
 * advanced the ends meanwhile (the background refresh races the commits), so ends only grow:
 * otherwise lag would read 0 over records not read yet. Starts are the broker's.
 */
export function refreshedOffsets(
  known: TopicMeta | undefined,
  answer: readonly { partition: number; high: string; low: string }[],
): TopicMeta {
  const partitions = answer.length;
  const ends = Array(partitions).fill(0);
  const starts = Array(partitions).fill(0);
  const knownEnds = known?.partitions === partitions ? known.ends : [];
  for (const o of answer) {
    ends[o.partition] = Math.max(Number(o.high), knownEnds[o.partition] ?? 0);
    starts[o.partition] = Number(o.low);
  }
  return { partitions, ends, starts };
}

/** How often end offsets are refreshed for lag, and consumed repartition records purged. */
const REFRESH_MS = 2_000;
const PURGE_MS = 30_000;

/**
 * Kafka as the pipeline's topics. Tasks read their partitions directly (read-committed, from
 * the offsets committed to the consumer group `applicationId`); with exactly-once each task's
 * outputs, changelog records and consumed offsets commit in one transaction of the task's own
 * producer. Local Deno KV state is a cache of the changelogs, checkpointed with the changelog
 * offset it reflects (see the README for the protocol).
 */
export class KafkaTopics implements TopicLog {
  readonly description: string;
  readonly handsOffInternally = false;
  readonly keepsChangelogs = true;
  /**
   * A transaction costs a few round trips whatever its size, so batches are large; the local
   * state written after it still usually fits one atomic KV write.
   */
  readonly commitBudget = { outputBytes: 16 * 1024 * 1024, stateBytes: 550 * 1024, shared: false };
  readonly #kafka: Kafka;
  readonly #cluster: KafkaCluster;
  readonly #tasks: TaskProducers;
  #admin: Admin | null = null;
  #producer: Producer | null = null;
  #connected = false;
  readonly #meta = new Map<string, TopicMeta>();
  readonly #partitioners = new Map<string, Partitioner>();
  readonly #changelogs = new Set<string>();
  readonly #repartitions = new Set<string>();
  /** Changelog offset each store partition's local state reflects, by `store\0partition`. */
  readonly #checkpoints = new Map<string, number>();
  /** Checkpoints to write with the next local state commit. */
  readonly #dirtyCheckpoints = new Set<string>();
  /** Consumed repartition offsets not yet purged, by `topic\0partition`. */
  readonly #consumed = new Map<string, number>();
  #lastPurge = 0;
  #queue: Promise<void> = Promise.resolve();
  #problem: string | null = null;
  #refresh: ReturnType<typeof setInterval> | undefined;

  private constructor(readonly source: KafkaSourceConfig, readonly o: KafkaTopicsOptions) {
    this.description = `Kafka at ${source.brokers.join(",")}`;
    this.#kafka = createKafka(source);
    this.#cluster = createCluster(this.#kafka);
    this.#tasks = new TaskProducers(this.#kafka, o.applicationId);
  }

  /** Creates the client; nothing connects until the topics are first used. */
  static open(source: KafkaSourceConfig, o: KafkaTopicsOptions): Promise<KafkaTopics> {
    return Promise.resolve(new KafkaTopics(source, o));
  }

  get #exactlyOnce(): boolean {
    return this.o.processingGuarantee === "exactly_once_v2";
  }

  /** Runs `fn` against the brokers; what fails becomes TopicsUnavailableError with the reason. */
  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      if (!this.#connected) {
        this.#admin ??= this.#kafka.admin();
        this.#producer ??= this.#kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
        });
        await this.#admin.connect();
        await this.#producer.connect();
        await this.#cluster.connect();
        this.#connected = true;
      }
      const result = await fn();
      this.#problem = null;
      return result;
    } catch (e) {
      if (
        e instanceof TopicMismatchError || e instanceof TopicsUnavailableError ||
        e instanceof UnknownTopicError
      ) throw e;
      this.#problem = `cannot ${what} on ${this.description}: ${describeKafkaError(e)}`;
      if (isConnectionLoss(e)) this.#connected = false;
      throw new TopicsUnavailableError(this.#problem);
    }
  }

  ensureTopics(requests: readonly TopicRequest[]): Promise<void> {
    if (requests.length === 0) return Promise.resolve();
    return this.#call("create or check topics", async () => {
      const admin = this.#admin!;
      const existing = new Set(await admin.listTopics());
      const known = requests.filter((r) => existing.has(r.name)).map((r) => r.name);
      const counts = new Map<string, number>();
      if (known.length > 0) {
        const { topics } = await admin.fetchTopicMetadata({ topics: known });
        for (const t of topics) counts.set(t.name, t.partitions.length);
      }
      const create = [];
      for (const r of requests) {
        const found = counts.get(r.name);
        if (found !== undefined && found !== r.partitions && r.exact) {
          throw new TopicMismatchError(r.name, found, r.partitions, mismatchFix(r, found));
        }
        if (r.role === "changelog") this.#changelogs.add(r.name);
        if (r.role === "repartition") this.#repartitions.add(r.name);
        if (found !== undefined) continue;
        create.push({
          topic: r.name,
          numPartitions: r.partitions,
          replicationFactor: this.source.replicationFactor,
          configEntries: topicConfig(r),
        });
      }
      if (create.length > 0) await admin.createTopics({ topics: create, waitForLeaders: true });
      for (const r of requests) {
        await this.#refreshOffsets(r.name);
      }
      this.#refresh ??= setInterval(() => this.#refreshAll(), REFRESH_MS);
    });
  }

  async #refreshOffsets(topic: string): Promise<void> {
    let offsets;
    for (let attempt = 0;; attempt++) {
      try {
        offsets = await this.#admin!.fetchTopicOffsets(topic);
        break;
      } catch (e) {
        // Right after a topic is created its leaders take a moment to be known everywhere.
        const type = (e as { type?: string }).type ?? "";
        if (attempt >= 20 || !/NOT_LEADER|UNKNOWN_TOPIC|LEADER_NOT_AVAILABLE/.test(type)) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const meta = refreshedOffsets(this.#meta.get(topic), offsets);
    this.#meta.set(topic, meta);
    const partitions = meta.partitions;
    if (this.#partitioners.get(topic)?.partitions !== partitions) {
      this.#partitioners.set(topic, new Partitioner(partitions));
    }
  }

  /** Keeps end offsets fresh for lag and GET /api/v1/topics, in the background. */
  async #refreshAll(): Promise<void> {
    if (!this.#connected) return;
    for (const topic of this.#meta.keys()) {
      try {
        await this.#refreshOffsets(topic);
      } catch {
        return; // The next commit or fetch reports the problem.
      }
    }
  }

  #topic(name: string): TopicMeta {
    const t = this.#meta.get(name);
    if (!t) throw new UnknownTopicError(name);
    return t;
  }

  hasTopic(name: string): boolean {
    return this.#meta.has(name);
  }

  topicNames(): string[] {
    return [...this.#meta.keys()].sort();
  }

  partitions(topic: string): number {
    return this.#topic(topic).partitions;
  }

  startOffset(topic: string, partition: number): number {
    return this.#topic(topic).starts[partition] ?? 0;
  }

  endOffset(topic: string, partition: number): number {
    return this.#topic(topic).ends[partition] ?? 0;
  }

  reader(): KafkaReader {
    return new KafkaReader(
      this.#cluster,
      (s) => this.#observe(s),
      (topic, partition) =>
        this.#call("read log start offsets", async () => {
          await this.#refreshOffsets(topic);
          return this.startOffset(topic, partition);
        }),
    );
  }

  #observe(s: PartitionState): void {
    const meta = this.#meta.get(s.topic);
    if (!meta) return;
    meta.ends[s.partition] = Math.max(meta.ends[s.partition] ?? 0, s.highWatermark);
    meta.starts[s.partition] = s.logStart;
  }

  append(topic: string, records: readonly NewRecord[]): Promise<RecordPosition[]> {
    const now = this.o.clock();
    return this.#call("produce", async () => {
      if (!this.#partitioners.has(topic)) {
        const exists = (await this.#admin!.listTopics()).includes(topic);
        if (!exists) throw new UnknownTopicError(topic);
        await this.#refreshOffsets(topic);
      }
      const partitioner = this.#partitioners.get(topic)!;
      const partitions = records.map((r) => r.partition ?? partitioner.partitionFor(r.key));
      const sent = await this.#producer!.send({
        topic,
        acks: -1,
        messages: records.map((r, i) => toMessage(r, partitions[i], now)),
      });
      const next = new Map(sent.map((m) => [m.partition, Number(m.baseOffset)]));
      const positions = partitions.map((partition) => {
        const offset = next.get(partition)!;
        next.set(partition, offset + 1);
        return { partition, offset };
      });
      const meta = this.#meta.get(topic)!;
      for (const [p, end] of next) meta.ends[p] = Math.max(meta.ends[p], end);
      return positions;
    });
  }

  positions(tasks: readonly TaskRef[]): Promise<Map<string, TaskPositions>> {
    return this.#call("read committed offsets", async () => {
      // Initializing the tasks' producers first completes or aborts what an earlier run left
      // in flight, so the offsets and changelogs read next are stable.
      if (this.#exactlyOnce) await this.#tasks.init(tasks.map((t) => t.id));
      const wanted = new Map<string, Set<number>>();
      for (const t of tasks) {
        for (const topic of t.topics) {
          wanted.set(topic, (wanted.get(topic) ?? new Set()).add(t.partition));
        }
      }
      // Stable offsets: a transaction still completing is waited for, not read around; after
      // 10 s the wait is reported (/health) and retried with the runner's backoff.
      const byTopic = await fetchStableOffsets(
        this.#cluster,
        this.o.applicationId,
        [...wanted].map(([topic, partitions]) => ({ topic, partitions: [...partitions] })),
        10_000,
      );
      const kv = this.o.committer.kv;
      const out = new Map<string, TaskPositions>();
      for (const task of tasks) {
        const offsets = new Map<string, number>();
        let streamTime: number | null = null;
        for (const topic of task.topics) {
          const p = byTopic.get(topic)?.find((p) => p.partition === task.partition);
          if (!p || p.offset < 0) continue;
          offsets.set(topic, p.offset);
          const t = parseStreamTime(p.metadata);
          if (t !== null) streamTime = Math.max(streamTime ?? -Infinity, t);
        }
        if (!this.#exactlyOnce) streamTime = (await kv.get<number>(this.#timeKey(task))).value;
        out.set(task.id, { offsets, streamTime });
      }
      return out;
    });
  }

  /**
   * Brings a store partition's local state up to its changelog: from the checkpoint the local
   * state carries, or, when the changelog does not vouch for it (no checkpoint, or one outside
   * the changelog's offsets), rebuilt from the changelog's start.
   */
  restore(store: string, partition: number, map: PersistedState): Promise<void> {
    const topic = changelogTopic(this.o.applicationId, store);
    return this.#call("restore state", async () => {
      await this.#refreshOffsets(topic);
      const start = this.startOffset(topic, partition);
      const end = this.endOffset(topic, partition);
      const checkpoint =
        (await this.o.committer.kv.get<number>(this.#checkpointKey(store, partition)))
          .value;
      const vouched = checkpoint !== null && checkpoint >= start && checkpoint <= end;
      if (!vouched && (checkpoint !== null || map.size > 0)) map.clear();
      let at = vouched ? checkpoint : start;
      const reader = this.reader();
      const deadline = Date.now() + 60_000;
      while (at < end) {
        if (Date.now() > deadline) {
          throw new TopicsUnavailableError(
            `cannot restore store '${store}' partition ${partition}: its changelog ${topic} did not reach offset ${end} within 60 s`,
          );
        }
        const request = { topic, partition, offset: at, max: 50_000, maxBytes: 16 * 2 ** 20 };
        await reader.fetch([request], 500);
        const records = reader.read(topic, partition, at, request.max, request.maxBytes);
        for (const r of records) {
          if (r.key !== null) map.applyChange(r.key, r.value);
        }
        at = Math.max(at, reader.position(topic, partition));
      }
      const key = checkpointId(store, partition);
      this.#checkpoints.set(key, end);
      if (checkpoint !== end) this.#dirtyCheckpoints.add(key);
    });
  }

  commit(batch: BatchCommit, abandoned: () => boolean = () => false): Promise<void> {
    const run = this.#queue.then(async () => {
      if (abandoned()) return;
      const now = this.o.clock();
      await this.#call("commit", async () => {
        if (this.#exactlyOnce) {
          const transactions = batch.tasks.map((t) => this.#transaction(t, now));
          const results = await Promise.all(transactions.map((t) => this.#tasks.commit(t)));
          this.#advanceCheckpoints(batch, results.flat());
          this.#advanceEnds(transactions.flatMap((t) => t.messages), results.flat(), 1);
        } else {
          await this.#commitAtLeastOnce(batch, now);
        }
      });
      // The local cache of the changelogs, with the changelog offsets it now reflects.
      const checkpoints: Mutation[] = [];
      for (const key of this.#dirtyCheckpoints) {
        const [store, p] = key.split("\u0000");
        checkpoints.push({
          key: this.#checkpointKey(store, Number(p)),
          value: this.#checkpoints.get(key)!,
        });
      }
      this.#dirtyCheckpoints.clear();
      const times: Mutation[] = this.#exactlyOnce ? [] : batch.tasks
        .filter((t) => Number.isFinite(t.streamTime))
        .map((t) => ({ key: this.#timeKey(t.task), value: t.streamTime }));
      const committer = this.o.committer;
      await committer.serialize(() => committer.write([...batch.state, ...checkpoints, ...times]));
      this.#purgeConsumed(batch);
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** A task's part of a batch as one transaction's messages and offsets. */
  #transaction(t: BatchCommit["tasks"][number], now: number): TaskTransaction {
    const messages: TopicMessages[] = [];
    for (const [topic, records] of t.outputs) {
      if (records.length === 0) continue;
      const partitioner = this.#partitioners.get(topic);
      if (!partitioner) throw new UnknownTopicError(topic);
      messages.push({
        topic,
        messages: records.map((r) =>
          toMessage(r, r.partition ?? partitioner.partitionFor(r.key), now)
        ),
      });
    }
    for (const c of t.changes) {
      messages.push({
        topic: changelogTopic(this.o.applicationId, c.store),
        messages: c.entries.map(([key, value]): Message => ({
          key,
          value,
          partition: c.partition,
          timestamp: String(now),
        })),
      });
    }
    const metadata = JSON.stringify({
      streamTime: Number.isFinite(t.streamTime) ? t.streamTime : null,
    });
    return {
      taskId: t.task.id,
      messages,
      offsets: [...t.offsets].map(([topic, offset]) => ({
        topic,
        partitions: [{ partition: t.task.partition, offset: String(offset), metadata }],
      })),
    };
  }

  /** The changelog offsets a commit reached: where each written store partition now stands. */
  #advanceCheckpoints(
    batch: BatchCommit,
    sent: readonly { topicName: string; partition: number; baseOffset?: string }[],
  ): void {
    for (const t of batch.tasks) {
      for (const c of t.changes) {
        const topic = changelogTopic(this.o.applicationId, c.store);
        const meta = sent.find((m) => m.topicName === topic && m.partition === c.partition);
        if (meta?.baseOffset === undefined) continue;
        const key = checkpointId(c.store, c.partition);
        this.#checkpoints.set(key, Number(meta.baseOffset) + c.entries.length);
        this.#dirtyCheckpoints.add(key);
      }
    }
  }

  /**
   * End offsets of what a commit wrote, known at once (lag and readers then need no refresh):
   * past the records sent to each partition, and its transaction marker.
   */
  #advanceEnds(
    sent: readonly TopicMessages[],
    results: readonly { topicName: string; partition: number; baseOffset?: string }[],
    markers: number,
  ): void {
    const counts = new Map<string, number>();
    for (const t of sent) {
      for (const m of t.messages) {
        const key = `${t.topic}\u0000${m.partition}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    const bases = new Map<string, number>();
    for (const r of results) {
      if (r.baseOffset === undefined) continue;
      const key = `${r.topicName}\u0000${r.partition}`;
      bases.set(key, Math.min(bases.get(key) ?? Infinity, Number(r.baseOffset)));
    }
    for (const [key, base] of bases) {
      const [topic, p] = key.split("\u0000");
      const meta = this.#meta.get(topic);
      if (!meta) continue;
      const end = base + (counts.get(key) ?? 0) + markers;
      meta.ends[Number(p)] = Math.max(meta.ends[Number(p)] ?? 0, end);
    }
  }

  /** At least once: outputs and changelogs acknowledged first, then the offsets committed. */
  async #commitAtLeastOnce(batch: BatchCommit, now: number): Promise<void> {
    const messages = batch.tasks.flatMap((t) => this.#transaction(t, now).messages);
    const sent = messages.length > 0
      ? await this.#producer!.sendBatch({ topicMessages: messages, acks: -1 })
      : [];
    this.#advanceCheckpoints(batch, sent);
    this.#advanceEnds(messages, sent, 0);
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const t of batch.tasks) {
      for (const [topic, offset] of t.offsets) {
        const list = byTopic.get(topic) ?? [];
        list.push({ partition: t.task.partition, offset: String(offset) });
        byTopic.set(topic, list);
      }
    }
    for (const [topic, partitions] of byTopic) {
      await this.#admin!.setOffsets({ groupId: this.o.applicationId, topic, partitions });
    }
  }

  /** Deletes repartition records every reader has committed past, now and then. */
  #purgeConsumed(batch: BatchCommit): void {
    for (const c of batch.consumed) this.#consumed.set(`${c.topic}\u0000${c.partition}`, c.offset);
    if (this.o.clock() - this.#lastPurge < PURGE_MS || this.#consumed.size === 0) return;
    this.#lastPurge = this.o.clock();
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const [key, offset] of this.#consumed) {
      const [topic, p] = key.split("\u0000");
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), {
        partition: Number(p),
        offset: String(offset),
      }]);
    }
    this.#consumed.clear();
    for (const [topic, partitions] of byTopic) {
      this.#admin?.deleteTopicRecords({ topic, partitions }).catch(() => {});
    }
  }

  reset(internalTopics: readonly string[]): Promise<void> {
    return this.#call("reset the application", async () => {
      const admin = this.#admin!;
      await admin.deleteGroups([this.o.applicationId]).catch(() => {});
      for (
        const topic of new Set([...internalTopics, ...this.#changelogs, ...this.#repartitions])
      ) {
        if (!this.#meta.has(topic)) continue;
        await this.#refreshOffsets(topic);
        const meta = this.#meta.get(topic)!;
        await admin.deleteTopicRecords({
          topic,
          partitions: meta.ends.map((end, partition) => ({ partition, offset: String(end) })),
        });
      }
      const kv = this.o.committer.kv;
      const deletes: Mutation[] = [];
      for (const prefix of [["ckpt", this.o.applicationId], ["time", this.o.applicationId]]) {
        for await (const e of kv.list({ prefix })) deletes.push({ key: e.key, value: null });
      }
      const committer = this.o.committer;
      await committer.serialize(() => committer.write(deletes));
      this.#checkpoints.clear();
      this.#dirtyCheckpoints.clear();
    });
  }

  problem(): string | null {
    return this.#problem;
  }

  async close(): Promise<void> {
    clearInterval(this.#refresh);
    await this.#queue;
    await this.#tasks.close();
    await this.#producer?.disconnect().catch(() => {});
    await this.#admin?.disconnect().catch(() => {});
    await this.#cluster.disconnect().catch(() => {});
  }

  #checkpointKey(store: string, partition: number): Deno.KvKey {
    return ["ckpt", this.o.applicationId, store, partition];
  }

  #timeKey(task: TaskRef): Deno.KvKey {
    return ["time", this.o.applicationId, task.topics.join(","), task.partition];
  }
}

function checkpointId(store: string, partition: number): string {
  return `${store}\u0000${partition}`;
}

function parseStreamTime(metadata: string | null | undefined): number | null {
  if (!metadata) return null;
  try {
    const t = (JSON.parse(metadata) as { streamTime?: unknown }).streamTime;
    return typeof t === "number" ? t : null;
  } catch {
    return null;
  }
}

/** Topic configs the pipeline sets on the topics it creates. */
function topicConfig(r: TopicRequest): { name: string; value: string }[] {
  if (r.role === "changelog") return [{ name: "cleanup.policy", value: "compact" }];
  // Repartition records are deleted once consumed (the pipeline purges them), not by age.
  if (r.role === "repartition") {
    return [{ name: "cleanup.policy", value: "delete" }, { name: "retention.ms", value: "-1" }];
  }
  return r.retention?.ms ? [{ name: "retention.ms", value: String(r.retention.ms) }] : [];
}

function mismatchFix(r: TopicRequest, found: number): string {
  return r.role === "repartition" || r.role === "changelog"
    ? `It is internal to the pipeline: stop the pipeline, delete the topic (kafka-topics.sh --delete --topic ${r.name}), and it is recreated with ${r.partitions} partitions at the next start.`
    : `Set "partitions": ${found} for it in the config's "topics", or recreate the topic with ${r.partitions} partitions.`;
}

/** Errors after which the connections are made again. */
function isConnectionLoss(e: unknown): boolean {
  const name = (e as { name?: string }).name ?? "";
  return /Connection|NumberOfRetriesExceeded|RequestTimeout|BrokerNotFound/.test(name);
}
