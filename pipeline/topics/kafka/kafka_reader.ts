/**
 * Reads Kafka partitions from given offsets, read-committed, without a consumer group: the
 * pipeline decides which task reads which partition and where it stands (its committed
 * offsets), as Kafka Streams' tasks do. Records fetched stay buffered in the reader until read.
 */
import type { LogRecord } from "../../record.ts";
import type { FetchRequest, TopicReader } from "../topic_log.ts";
import { TopicsUnavailableError } from "../topic_log.ts";
import {
  describeKafkaError,
  type FetchedMessage,
  type FetchedPartition,
  type KafkaCluster,
} from "./kafka_client.ts";
import { fromMessage } from "./record_codec.ts";

/** Bytes one fetch asks of each partition (Kafka's max.partition.fetch.bytes default). */
const PARTITION_FETCH_BYTES = 1024 * 1024;
/** Bytes one fetch response may hold. */
const FETCH_BYTES = 32 * 1024 * 1024;

/** What a fetch learnt of a partition, beside its records. */
export interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  readonly highWatermark: number;
  /** Last stable offset: read-committed readers get records below it only. */
  readonly lastStable: number;
  readonly logStart: number;
}

interface Buffered {
  /** Lowest offset the buffer answers for: it holds every readable record from here to `next`. */
  start: number;
  records: LogRecord[];
  /** Offset the next fetch starts at (past aborted records and control records too). */
  next: number;
  bytes: number;
}

/** Offsets below a partition's log start were asked for. */
class OffsetOutOfRange extends Error {}

export class KafkaReader implements TopicReader {
  readonly #buffers = new Map<string, Buffered>();

  constructor(
    readonly cluster: KafkaCluster,
    /** Told what each fetch learnt (end offsets for lag, log starts). */
    readonly observe: (state: PartitionState) => void,
    /** The current log start of a partition, when an offset fell below it. */
    readonly logStart: (topic: string, partition: number) => Promise<number>,
  ) {}

  fetch(
    requests: readonly FetchRequest[],
    maxWaitMs = 0,
    signal?: AbortSignal,
  ): Promise<void> | void {
    const wanted = requests.filter((r) => {
      const b = this.#buffer(r.topic, r.partition, r.offset);
      return b.records.length < r.max && b.bytes < r.maxBytes;
    });
    if (wanted.length === 0) return;
    // Wait for new records only when none of the requests has any buffered.
    const idle = requests.every((r) =>
      this.#buffer(r.topic, r.partition, r.offset).records.length === 0
    );
    const wait = idle && !signal?.aborted ? maxWaitMs : 0;
    return this.#fetch(wanted, wait);
  }

  read(
    topic: string,
    partition: number,
    offset: number,
    max: number,
    maxBytes = Infinity,
  ): LogRecord[] {
    const b = this.#buffer(topic, partition, offset);
    const out: LogRecord[] = [];
    let bytes = 0;
    for (const r of b.records) {
      out.push(r);
      bytes += 48 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
      if (out.length >= max || bytes >= maxBytes) break;
    }
    return out;
  }

  skipTo(topic: string, partition: number, offset: number): number {
    const b = this.#buffers.get(`${topic}\u0000${partition}`);
    if (!b || b.records.some((r) => r.offset >= offset)) return offset;
    return Math.max(offset, b.next);
  }

  /** Where the next fetch of a partition starts: past every record fetched so far. */
  position(topic: string, partition: number): number {
    return this.#buffers.get(`${topic}\u0000${partition}`)?.next ?? 0;
  }

  /** The partition's buffer, moved to start at `offset`: records before it are dropped. */
  #buffer(topic: string, partition: number, offset: number): Buffered {
    const key = `${topic}\u0000${partition}`;
    let b = this.#buffers.get(key);
    if (!b) {
      this.#buffers.set(key, b = { start: offset, records: [], next: offset, bytes: 0 });
      return b;
    }
    if (offset < b.start || offset > b.next) {
      // Not where the buffer stands (a seek, a reload): start over there.
      b.start = b.next = offset;
      b.records = [];
      b.bytes = 0;
      return b;
    }
    b.start = offset;
    let drop = 0;
    while (drop < b.records.length && b.records[drop].offset < offset) {
      const r = b.records[drop++];
      b.bytes -= 48 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
    }
    if (drop > 0) b.records = b.records.slice(drop);
    return b;
  }

  async #fetch(requests: readonly FetchRequest[], maxWaitMs: number): Promise<void> {
    const topics = [...new Set(requests.map((r) => r.topic))];
    try {
      await this.cluster.addMultipleTargetTopics(topics);
      await this.#fetchFromLeaders(requests, maxWaitMs);
    } catch (e) {
      if (e instanceof OffsetOutOfRange) {
        // Retention or a purge moved a log start past an offset asked for: read from there.
        for (const r of requests) {
          const start = await this.logStart(r.topic, r.partition).catch(() => null);
          const b = this.#buffers.get(`${r.topic}\u0000${r.partition}`);
          if (start !== null && b && b.next < start) b.next = start;
        }
        return;
      }
      if (e instanceof TopicsUnavailableError) throw e;
      throw new TopicsUnavailableError(`cannot fetch from Kafka: ${describeKafkaError(e)}`);
    }
  }

  async #fetchFromLeaders(requests: readonly FetchRequest[], maxWaitMs: number): Promise<void> {
    // Partitions by the broker leading them.
    const byNode = new Map<string, FetchRequest[]>();
    for (const topic of new Set(requests.map((r) => r.topic))) {
      const own = requests.filter((r) => r.topic === topic);
      let leaders: Record<string, number[]>;
      try {
        leaders = this.cluster.findLeaderForPartitions(topic, own.map((r) => r.partition));
      } catch {
        await this.cluster.refreshMetadata();
        leaders = this.cluster.findLeaderForPartitions(topic, own.map((r) => r.partition));
      }
      for (const [node, partitions] of Object.entries(leaders)) {
        const list = byNode.get(node) ?? [];
        list.push(...own.filter((r) => partitions.includes(r.partition)));
        byNode.set(node, list);
      }
    }
    await Promise.all([...byNode].map(async ([nodeId, list]) => {
      const broker = await this.cluster.findBroker({ nodeId });
      const topics = [...new Set(list.map((r) => r.topic))].map((topic) => ({
        topic,
        partitions: list.filter((r) => r.topic === topic).map((r) => ({
          partition: r.partition,
          fetchOffset: String(this.#buffers.get(`${topic}\u0000${r.partition}`)!.next),
          maxBytes: PARTITION_FETCH_BYTES,
        })),
      }));
      let response;
      try {
        response = await broker.fetch({
          isolationLevel: 1,
          maxWaitTime: maxWaitMs,
          minBytes: 1,
          maxBytes: FETCH_BYTES,
          topics,
        });
      } catch (e) {
        if ((e as { type?: string }).type === "OFFSET_OUT_OF_RANGE") throw new OffsetOutOfRange();
        // A moved leader, a restarted broker: new metadata for the next attempt.
        await this.cluster.refreshMetadata().catch(() => {});
        throw e;
      }
      for (const { topicName, partitions } of response.responses) {
        for (const p of partitions) this.#take(topicName, p);
      }
    }));
  }

  /** Adds a fetched partition's committed records to its buffer. */
  #take(topic: string, data: FetchedPartition): void {
    const b = this.#buffers.get(`${topic}\u0000${data.partition}`);
    if (!b) return;
    const { records, next } = committedRecords(data, b.next);
    for (const m of records) {
      const r = fromMessage(topic, data.partition, m);
      b.records.push(r);
      b.bytes += 48 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
    }
    b.next = next;
    this.observe({
      topic,
      partition: data.partition,
      highWatermark: Number(data.highWatermark),
      lastStable: Number(data.lastStableOffset),
      logStart: Number(data.lastStartOffset),
    });
  }
}

/** A fetched message with what kafkajs decodes of its record batch. */
type BatchMessage = FetchedMessage & {
  batchContext?: { producerId: string; inTransaction: boolean; isControlBatch: boolean };
};

/**
 * The records a read-committed consumer may see of a fetched partition, and the offset to
 * fetch next. Records of aborted transactions are dropped: a transaction the broker lists as
 * aborted (its first offset and producer) is open from that offset until its producer's abort
 * marker, and several producers' transactions may interleave. Control records are never
 * returned, records before `from` neither (a fetch may start inside a compressed batch); the
 * next offset passes everything returned, markers and aborted records included, and stays at
 * `from` when nothing came (records of open transactions come later).
 */
export function committedRecords(
  data: Pick<FetchedPartition, "messages" | "abortedTransactions">,
  from: number,
): { records: FetchedMessage[]; next: number } {
  const aborted = [...data.abortedTransactions]
    .map((t) => ({ producerId: t.producerId, firstOffset: Number(t.firstOffset) }))
    .sort((a, b) => a.firstOffset - b.firstOffset);
  let nextAborted = 0;
  const open = new Set<string>();
  const records: FetchedMessage[] = [];
  let next = from;
  for (const m of data.messages as BatchMessage[]) {
    const offset = Number(m.offset);
    if (offset < from) continue;
    next = offset + 1;
    while (nextAborted < aborted.length && aborted[nextAborted].firstOffset <= offset) {
      open.add(aborted[nextAborted++].producerId);
    }
    const producerId = m.batchContext?.producerId ?? "";
    if (m.isControlRecord || m.batchContext?.isControlBatch) {
      // Either marker ends the producer's transaction; only aborts were listed.
      open.delete(producerId);
      continue;
    }
    if (m.batchContext?.inTransaction && open.has(producerId)) continue;
    records.push(m);
  }
  return { records, next };
}
