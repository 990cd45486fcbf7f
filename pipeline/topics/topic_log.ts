/**
 * The one seam between the engine and where topics live. The runner, the admin API, the metrics
 * and the test driver reach topics only through `TopicLog`; the embedded log (Deno KV) and Kafka
 * (kafkajs) implement it, and nothing outside `pipeline/topics/` imports either.
 */
import type { LogRecord, NewRecord } from "../record.ts";
import type { Mutation } from "../kv/blob.ts";
import type { PersistedState } from "../state/persistent_map.ts";

/** How a topic is laid out and how long it keeps records. */
export interface TopicSpec {
  readonly partitions: number;
  /** Oldest records beyond either bound are deleted; both are per partition. */
  readonly retention?: { readonly records?: number; readonly ms?: number };
}

/** What the pipeline does with a topic; internal topics are created and checked by it. */
export type TopicRole = "input" | "output" | "repartition" | "changelog";

/** A topic the pipeline needs. */
export interface TopicRequest extends TopicSpec {
  readonly name: string;
  readonly role: TopicRole;
  /**
   * True when the partition count is required (internal topics, and topics the config sizes):
   * an existing topic with another count stops start-up. Otherwise an existing topic keeps its.
   */
  readonly exact: boolean;
}

/** Where an appended record landed. */
export interface RecordPosition {
  readonly partition: number;
  readonly offset: number;
}

/** A range a reader wants to `read` next. */
export interface FetchRequest {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly max: number;
  readonly maxBytes: number;
}

/**
 * Reads topics for one consumer (the runner, one HTTP read): `fetch` brings records into the
 * reader (loading them; when none is there yet, waiting up to `maxWaitMs` for some), `read`
 * returns them at once.
 */
export interface TopicReader {
  /**
   * `signal` ends a wait early (the runner stopping). Returns nothing when it had nothing to
   * load or wait for: the caller then goes on without yielding.
   */
  fetch(
    requests: readonly FetchRequest[],
    maxWaitMs?: number,
    signal?: AbortSignal,
  ): Promise<void> | void;
  /** Up to `max` records and about `maxBytes` (at least one record) from `offset` on. */
  read(
    topic: string,
    partition: number,
    offset: number,
    max: number,
    maxBytes?: number,
  ): LogRecord[];
  /**
   * The offset a reader that has consumed every record before `offset` may commit: past what
   * it will never return (Kafka's transaction markers, aborted records), else `offset`.
   */
  skipTo(topic: string, partition: number, offset: number): number;
}

/** A task as the log sees it: the partition it owns of each of its input topics. */
export interface TaskRef {
  /** `<sub-topology>_<partition>`, as Kafka Streams names tasks. */
  readonly id: string;
  readonly partition: number;
  readonly topics: readonly string[];
}

/** Where a task stood at its last commit. */
export interface TaskPositions {
  /** Next offset to read per input topic; topics never committed are absent. */
  readonly offsets: ReadonlyMap<string, number>;
  readonly streamTime: number | null;
}

/** One store partition's changed entries, in change order: a value text, or null (deleted). */
export interface StoreChanges {
  readonly store: string;
  readonly partition: number;
  readonly entries: readonly (readonly [key: string, value: string | null])[];
}

/** What one task commits for a batch. */
export interface TaskCommit {
  readonly task: TaskRef;
  /** Output records per topic, partition assigned, in the order they were sent. */
  readonly outputs: ReadonlyMap<string, readonly NewRecord[]>;
  /** Next offset to read per input topic. */
  readonly offsets: ReadonlyMap<string, number>;
  readonly streamTime: number;
  /** Changed state of the task's stores (the changelog). */
  readonly changes: readonly StoreChanges[];
}

/** A batch's commit: every task's part, and the local state that goes with them. */
export interface BatchCommit {
  readonly tasks: readonly TaskCommit[];
  /** Deno KV mutations of the changed stores (snapshots and deltas). */
  readonly state: readonly Mutation[];
  /** Every task's output records per topic, in the order they were sent. */
  readonly appends: ReadonlyMap<string, readonly NewRecord[]>;
  /** Topics whose records this batch appends were all read within it (hand-off). */
  readonly handedOff: ReadonlySet<string>;
  /** Per repartition topic partition, the offset every reader has committed past. */
  readonly consumed: readonly { topic: string; partition: number; offset: number }[];
}

/**
 * The topics cannot be used right now (a broker unreachable, a transaction fenced or failed):
 * nothing after the last commit is kept, and reloading from it once they can be used is exact.
 */
export class TopicsUnavailableError extends Error {
  override name = "TopicsUnavailableError";
}

/** A store's changelog topic, named as Kafka Streams names it. */
export function changelogTopic(applicationId: string, store: string): string {
  return `${applicationId}-${store}-changelog`;
}

/** The topics of one application, wherever they live. */
export interface TopicLog {
  /** Where the topics live, for /health and metadata ("embedded" or the Kafka brokers). */
  readonly description: string;
  /**
   * Whether re-keyed records may go straight to their reading task within the batch that made
   * them (one process owns every partition). With Kafka they go through the topic.
   */
  readonly handsOffInternally: boolean;
  /**
   * Whether stores have changelog topics here (Kafka), so a commit carries their changes as
   * changelog records. The embedded log's local state is its own changelog.
   */
  readonly keepsChangelogs: boolean;
  /**
   * Estimated bytes after which a batch commits: of output records, and of changed state
   * (plus the outputs when `shared`: both go into one KV commit).
   */
  readonly commitBudget: {
    readonly outputBytes: number;
    readonly stateBytes: number;
    readonly shared: boolean;
  };
  /** Connects (retrying is the caller's job) and creates or checks the topics. */
  ensureTopics(requests: readonly TopicRequest[]): Promise<void>;
  hasTopic(name: string): boolean;
  topicNames(): string[];
  partitions(topic: string): number;
  startOffset(topic: string, partition: number): number;
  /** The offset the next record appended gets, as last seen. */
  endOffset(topic: string, partition: number): number;
  reader(): TopicReader;
  /** Appends records durably (acknowledged); partitions from keys unless given. */
  append(topic: string, records: readonly NewRecord[]): Promise<RecordPosition[]>;
  /** Where each task stood at its last commit. */
  positions(tasks: readonly TaskRef[]): Promise<Map<string, TaskPositions>>;
  /**
   * Brings a store partition loaded from local state up to what was committed (Kafka: catches
   * it up from its changelog, or rebuilds it). The embedded log's local state is the truth.
   */
  restore(store: string, partition: number, state: PersistedState): Promise<void>;
  /**
   * Commits a batch all or nothing: outputs, input offsets, stream times and state. Commits are
   * written in call order, so a caller may queue the next before one lands; `abandoned` is asked
   * right before writing, and when it says true (an earlier commit failed) nothing is written.
   * A failure leaves the last commit in place; TopicsUnavailableError says a reload recovers.
   */
  commit(batch: BatchCommit, abandoned?: () => boolean): Promise<void>;
  /** Forgets committed offsets and stream times, and empties the internal topics. */
  reset(internalTopics: readonly string[]): Promise<void>;
  /** Why the log cannot be used right now, or null. */
  problem(): string | null;
  close(): Promise<void>;
}

/** Raised for a topic the log does not have. */
export class UnknownTopicError extends Error {
  constructor(readonly topic: string) {
    super(`Unknown topic '${topic}'`);
  }
}

/** An existing topic whose partition count is not the one the pipeline needs. */
export class TopicMismatchError extends Error {
  override name = "TopicMismatchError";
  constructor(
    readonly topic: string,
    readonly found: number,
    readonly needed: number,
    fix: string,
  ) {
    super(
      `Cannot use topic '${topic}': it has ${found} partitions and the pipeline needs ${needed}, ` +
        `or keys would no longer map to the partitions that hold them. ${fix}`,
    );
  }
}
