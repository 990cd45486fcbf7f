/** Reads Kafka topics as any other client would: a kafkajs consumer of its own group. */
// Before kafkajs, as in the pipeline (kafka_client.ts): its faster produce path.
import "../../pipeline/topics/kafka/kafkajs_fast_paths.ts";
import { Kafka, logLevel } from "kafkajs";
import type { LogRecord } from "../../pipeline/record.ts";

/** A record as a test compares it: as the pipeline reads one, without what only it keeps. */
export type ReadRecord = Omit<LogRecord, "seq" | "appendedAt" | "parsed">;

/**
 * Every record of `topics` up to their current end, read committed (default) or not. Ends when
 * each partition's position reaches the end offset it had when reading began, or when nothing
 * more came for `idleMs` (kafkajs hands over no batch that only held aborted records).
 */
export async function readTopics(
  bootstrap: string,
  topics: readonly string[],
  options: { readUncommitted?: boolean; idleMs?: number } = {},
): Promise<ReadRecord[]> {
  const kafka = new Kafka({
    clientId: "test-reader",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<string, number>();
  for (const topic of topics) {
    for (const o of await admin.fetchTopicOffsets(topic)) {
      if (Number(o.high) > Number(o.low)) ends.set(`${topic}/${o.partition}`, Number(o.high));
    }
  }
  await admin.disconnect();
  const records: ReadRecord[] = [];
  if (ends.size === 0) return records;
  const consumer = kafka.consumer({
    groupId: `test-reader-${crypto.randomUUID()}`,
    readUncommitted: options.readUncommitted ?? false,
    // Empty fetches come back soon, so that idleness (below) is seen in a few of them.
    maxWaitTimeInMs: 500,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics], fromBeginning: true });
  const done = Promise.withResolvers<void>();
  const deadline = setTimeout(() => done.reject(new Error(`reading ${topics} timed out`)), 60_000);
  // A partition whose end is never reached (an aborted transaction at its tail) ends the read
  // once fetches keep coming back with nothing: idle means empty fetches, not a slow broker or a
  // slow group join, during which no fetch completes at all.
  let lastProgress = Date.now();
  let emptyFetches = 0;
  consumer.on(consumer.events.FETCH, () => emptyFetches++);
  const idle = setInterval(() => {
    if (emptyFetches >= 3 && Date.now() - lastProgress > (options.idleMs ?? 3_000)) done.resolve();
  }, 100);
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      lastProgress = Date.now();
      emptyFetches = 0;
      for (const m of batch.messages) {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {})) {
          if (v !== undefined) headers[k] = String(Array.isArray(v) ? v[v.length - 1] : v);
        }
        records.push({
          topic: batch.topic,
          partition: batch.partition,
          offset: Number(m.offset),
          key: m.key?.toString() ?? null,
          value: m.value?.toString() ?? null,
          timestamp: Number(m.timestamp),
          headers,
        });
      }
      const key = `${batch.topic}/${batch.partition}`;
      // Read committed, the end may be a transaction marker: past the last offset is enough.
      if (Number(batch.lastOffset()) + 1 >= (ends.get(key) ?? 0)) ends.delete(key);
      if (ends.size === 0) done.resolve();
      await Promise.resolve();
    },
  });
  try {
    await done.promise;
  } finally {
    clearTimeout(deadline);
    clearInterval(idle);
    await consumer.disconnect();
  }
  return records.sort((a, b) =>
    a.topic < b.topic
      ? -1
      : a.topic > b.topic
      ? 1
      : a.partition - b.partition || a.offset - b.offset
  );
}
