/**
 * The kafkajs client as the pipeline configures it: brokers, TLS and SASL from the config,
 * short client-side retries (the runner retries with its own backoff and reports why on
 * /health), and kafkajs' log lines folded into one line each.
 */
// First: it changes kafkajs internals before kafkajs loads.
import "./kafkajs_fast_paths.ts";
import { Kafka, type KafkaConfig, logLevel, type SASLOptions } from "kafkajs";
import process from "node:process";
import type { CoordinatorLookup } from "./stable_offsets.ts";

/** The config's `source` for Kafka. */
export interface KafkaSourceConfig {
  readonly type: "kafka";
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: boolean | { readonly caFile?: string; readonly rejectUnauthorized: boolean };
  readonly sasl?: {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
    readonly username: string;
    readonly password: string;
  };
  /** Replication factor of the topics the pipeline creates. */
  readonly replicationFactor: number;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

/** A kafkajs client for the config. */
export function createKafka(source: KafkaSourceConfig): Kafka {
  const config: KafkaConfig = {
    clientId: source.clientId,
    brokers: [...source.brokers],
    connectionTimeout: source.connectionTimeoutMs,
    requestTimeout: source.requestTimeoutMs,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => {
      const { message, error, broker } = log as {
        message: string;
        error?: string;
        broker?: string;
      };
      const detail = [broker, error].filter(Boolean).join(": ");
      const line = `kafkajs ${level === logLevel.ERROR ? "error" : "warning"}: ${message}${
        detail ? ` (${detail})` : ""
      }`;
      if (!QUIET.some((q) => line.includes(q))) console.error(line);
    },
  };
  if (source.ssl) {
    config.ssl = source.ssl === true ? true : {
      rejectUnauthorized: source.ssl.rejectUnauthorized,
      ca: source.ssl.caFile ? [Deno.readTextFileSync(source.ssl.caFile)] : undefined,
    };
  }
  if (source.sasl) config.sasl = { ...source.sasl } as SASLOptions;
  return new Kafka(config);
}

/**
 * Lines kafkajs logs that say nothing an operator can act on: the pipeline assigns partitions
 * itself, and coordinators loading after a broker start are retried.
 */
const QUIET = [
  "KafkaJS v2.0.0 switched default partitioner",
  "another concurrent operation on the same transaction",
  // Transactions abort on a failed send, and the pipeline then starts each task's producer anew.
  "Limiting retries for the idempotent producer",
  "The coordinator is loading",
  "The group coordinator is not available",
  // Leaders and coordinators moving (a topic just created, a broker restarting): retried.
  "This server is not the leader for that topic-partition",
  "This is not the correct coordinator",
  "There is no leader for this topic-partition",
];

// kafkajs schedules a throttle check with a negative delay when it is not throttled; Node's
// timers warn about that once per process. Only that warning is dropped.
process.removeAllListeners("warning");
process.on("warning", (w: Error) => {
  if (w.name !== "TimeoutNegativeWarning") console.error(`${w.name}: ${w.message}`);
});

/** One line on what went wrong talking to Kafka. */
export function describeKafkaError(e: unknown): string {
  const err = e as { name?: string; message?: string; type?: string; originalError?: unknown };
  const cause = err.originalError as { message?: string } | undefined;
  const parts = [err.type ?? err.name, err.message, cause?.message].filter(Boolean);
  return [...new Set(parts)].join(": ");
}

/**
 * A cluster connection of the client's own kind, for what kafkajs has no public API for:
 * fetching a partition from an offset without joining a consumer group (the pipeline assigns
 * partitions to its tasks itself), and reading metadata. kafkajs keeps the factory behind a
 * private symbol of its client; the version is pinned.
 */
export function createCluster(kafka: Kafka): KafkaCluster {
  const factory = Object.getOwnPropertySymbols(kafka).find((s) =>
    s.description === "private:Kafka:createCluster"
  );
  if (!factory) throw new Error("kafkajs has no cluster factory: is its version the pinned one?");
  // deno-lint-ignore no-explicit-any
  return (kafka as any)[factory]({ allowAutoTopicCreation: false, isolationLevel: 1 });
}

/** The part of kafkajs' internal cluster the fetcher and the offset fetch use. */
export interface KafkaCluster extends CoordinatorLookup {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  refreshMetadata(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(args: { nodeId: string }): Promise<KafkaBroker>;
}

/** A broker connection, as kafkajs' internal `Broker`. */
export interface KafkaBroker {
  fetch(request: {
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: {
      topic: string;
      partitions: { partition: number; fetchOffset: string; maxBytes: number }[];
    }[];
  }): Promise<{ responses: FetchedTopic[] }>;
}

/** One topic of a fetch response. */
export interface FetchedTopic {
  topicName: string;
  partitions: FetchedPartition[];
}

/** One partition of a fetch response (kafkajs' decoded form). */
export interface FetchedPartition {
  partition: number;
  highWatermark: string;
  lastStableOffset: string;
  lastStartOffset: string;
  abortedTransactions: { producerId: string; firstOffset: string }[];
  messages: FetchedMessage[];
}

/** A fetched record, as kafkajs decodes it. */
export interface FetchedMessage {
  offset: string;
  key: Uint8Array | null;
  value: Uint8Array | null;
  timestamp: string;
  headers?: Record<string, Uint8Array | Uint8Array[] | undefined>;
  isControlRecord?: boolean;
}
