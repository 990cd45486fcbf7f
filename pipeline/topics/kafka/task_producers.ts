/**
 * One transactional producer per task (`transactional.id = <applicationId>-<task>`), so each
 * task's outputs, changelog records and consumed offsets commit in one Kafka transaction, and a
 * new producer with the same id fences any zombie and aborts what it left open. kafkajs has no
 * KIP-447 fencing by consumer group metadata, hence a producer per task rather than per thread.
 * A producer's transactions run one after another.
 */
import type { Kafka, Producer, RecordMetadata, TopicMessages } from "kafkajs";

/** A task's part of a batch, as Kafka messages. */
export interface TaskTransaction {
  readonly taskId: string;
  readonly messages: readonly TopicMessages[];
  /** Next offset per consumed topic and partition, with the task's stream time as metadata. */
  readonly offsets: readonly {
    topic: string;
    partitions: { partition: number; offset: string; metadata: string }[];
  }[];
}

export class TaskProducers {
  readonly #producers = new Map<string, Producer>();

  constructor(
    readonly kafka: Kafka,
    readonly applicationId: string,
    readonly transactionTimeoutMs = 60_000,
  ) {}

  /**
   * Producers for the tasks, each initialized anew: InitProducerId completes or aborts whatever
   * an earlier producer with the same id left, so committed offsets and changelogs read after
   * this are stable.
   */
  async init(taskIds: readonly string[]): Promise<void> {
    await this.close();
    await Promise.all(taskIds.map(async (id) => {
      const producer = this.kafka.producer({
        transactionalId: `${this.applicationId}-${id}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: this.transactionTimeoutMs,
        allowAutoTopicCreation: false,
        // The coordinator answers CONCURRENT_TRANSACTIONS while it writes the markers of the
        // previous transaction, for a few milliseconds: retry soon and often.
        retry: { retries: 12, initialRetryTime: 5, maxRetryTime: 250 },
      });
      this.#producers.set(id, producer);
      await producer.connect();
      // kafkajs initializes the transactional producer id only with the first transaction:
      // begin and abort one now, so the fencing and the clean-up of what a previous producer
      // left open happen before offsets and changelogs are read.
      const tx = await producer.transaction();
      await tx.abort();
    }));
  }

  /**
   * Runs one transaction: the messages, then the offsets (to the application's group), then
   * the commit; aborted on any failure (which is rethrown).
   */
  async commit(t: TaskTransaction): Promise<RecordMetadata[]> {
    const producer = this.#producers.get(t.taskId);
    if (!producer) throw new Error(`no producer for task ${t.taskId}: init first`);
    const tx = await producer.transaction();
    try {
      const sent: RecordMetadata[] = [];
      for (const round of requestRounds(t.messages)) {
        sent.push(...await tx.sendBatch({ topicMessages: round, acks: -1 }));
      }
      if (t.offsets.length > 0) {
        await tx.sendOffsets({ consumerGroupId: this.applicationId, topics: [...t.offsets] });
      }
      await tx.commit();
      return sent;
    } catch (e) {
      await tx.abort().catch(() => {});
      throw e;
    }
  }

  async close(): Promise<void> {
    const producers = [...this.#producers.values()];
    this.#producers.clear();
    await Promise.all(producers.map((p) => p.disconnect().catch(() => {})));
  }
}

/**
 * A partition's messages of one request become one record batch, which the broker refuses past
 * its max.message.bytes (1 MiB by default): messages go in rounds of requests holding at most
 * ROUND_BYTES per partition. The first record of a partition in a round always goes.
 */
const ROUND_BYTES = 512 * 1024;

export function requestRounds(messages: readonly TopicMessages[]): TopicMessages[][] {
  const rounds: Map<string, TopicMessages>[] = [];
  const used = new Map<string, number[]>();
  for (const { topic, messages: list } of messages) {
    for (const m of list) {
      const key = `${topic}\u0000${m.partition}`;
      const size = 64 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
      const sizes = used.get(key) ?? [];
      let round = sizes.findIndex((bytes) => bytes + size <= ROUND_BYTES);
      if (round < 0) round = sizes.length;
      sizes[round] = (sizes[round] ?? 0) + size;
      used.set(key, sizes);
      rounds[round] ??= new Map();
      let entry = rounds[round].get(topic);
      if (!entry) rounds[round].set(topic, entry = { topic, messages: [] });
      entry.messages.push(m);
    }
  }
  return rounds.map((r) => [...r.values()]);
}
