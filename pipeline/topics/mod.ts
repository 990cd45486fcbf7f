/**
 * Opens the application's topics as the config says: the embedded log (default), or Kafka.
 * The only place that names an implementation of `TopicLog`.
 */
import type { KvCommitter } from "../kv/committer.ts";
import { EmbeddedTopics } from "./embedded/embedded_topics.ts";
import type { KafkaSourceConfig } from "./kafka/kafka_client.ts";
import type { TopicLog } from "./topic_log.ts";

/** Where topics live, from the config's `source`. */
export type SourceConfig =
  | {
    readonly type: "embedded";
    readonly memory?: { readonly records: number; readonly bytes: number };
    /** Only for the test driver: every read topic's records kept in memory. */
    readonly outputMemoryRecords?: number;
  }
  | KafkaSourceConfig;

/** Options of `openTopics`. */
export interface OpenTopicsOptions {
  readonly applicationId: string;
  readonly committer: KvCommitter;
  readonly clock: () => number;
  /** With Kafka (default "exactly_once_v2"). */
  readonly processingGuarantee?: "exactly_once_v2" | "at_least_once";
}

export async function openTopics(source: SourceConfig, o: OpenTopicsOptions): Promise<TopicLog> {
  if (source.type === "kafka") {
    // Loaded only when used: the embedded log needs no Kafka client (nor its permissions).
    const { KafkaTopics } = await import("./kafka/kafka_topics.ts");
    return KafkaTopics.open(source, {
      ...o,
      processingGuarantee: o.processingGuarantee ?? "exactly_once_v2",
    });
  }
  return EmbeddedTopics.open(o.committer, o.applicationId, o.clock, {
    memoryRecords: source.memory?.records,
    memoryBytes: source.memory?.bytes,
    outputMemoryRecords: source.outputMemoryRecords,
  });
}

export * from "./topic_log.ts";
