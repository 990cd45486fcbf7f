import type { KvCommitter } from "../../kv/committer.ts";
import type { LogRecord, NewRecord } from "../../record.ts";
import type {
  BatchCommit,
  FetchRequest,
  RecordPosition,
  TaskPositions,
  TaskRef,
  TopicLog,
  TopicReader,
  TopicRequest,
} from "../topic_log.ts";
import { TopicMismatchError } from "../topic_log.ts";
import { CommittedPositions } from "./committed_positions.ts";
import { EmbeddedLog, type EmbeddedLogOptions } from "./embedded_log.ts";

/**
 * The embedded log as the pipeline's topics: one process owns every partition, and a batch's
 * output records, changed state, input offsets and stream times are one Deno KV commit.
 */
export class EmbeddedTopics implements TopicLog {
  readonly description = "embedded log (Deno KV)";
  readonly handsOffInternally = true;
  readonly keepsChangelogs = false;
  /**
   * Outputs and state together usually fit one atomic KV write (800 KiB) once deflated (the
   * budget counts bytes before deflate, which shrinks pages 4-6×); outliers go through the
   * write-ahead log.
   */
  readonly commitBudget = { outputBytes: 1400 * 1024, stateBytes: 1400 * 1024, shared: true };
  readonly #positions: CommittedPositions;

  private constructor(
    readonly log: EmbeddedLog,
    readonly committer: KvCommitter,
    readonly applicationId: string,
  ) {
    this.#positions = new CommittedPositions(committer.kv, applicationId);
  }

  static async open(
    committer: KvCommitter,
    applicationId: string,
    now: () => number = Date.now,
    options: EmbeddedLogOptions = {},
  ): Promise<EmbeddedTopics> {
    return new EmbeddedTopics(
      await EmbeddedLog.open(committer, now, options),
      committer,
      applicationId,
    );
  }

  ensureTopics(requests: readonly TopicRequest[]): Promise<void> {
    for (const r of requests) {
      // A store's local state is its changelog here: no topic for it.
      if (r.role === "changelog") continue;
      const existing = this.log.hasTopic(r.name) ? this.log.partitions(r.name) : null;
      if (existing !== null && existing !== r.partitions && r.exact) {
        throw new TopicMismatchError(
          r.name,
          existing,
          r.partitions,
          r.role === "repartition"
            ? "It is internal: POST /api/v1/streams/cleanup while stopped (or delete the state directory) to start over."
            : `Set "partitions": ${existing} for it in the config's "topics", or delete the state directory to start over.`,
        );
      }
      this.log.ensureTopic(r.name, { ...r, partitions: existing ?? r.partitions });
      if (r.role === "output") this.log.markOutputOnly(r.name);
    }
    return Promise.resolve();
  }

  hasTopic(name: string): boolean {
    return this.log.hasTopic(name);
  }

  topicNames(): string[] {
    return this.log.topicNames();
  }

  partitions(topic: string): number {
    return this.log.partitions(topic);
  }

  startOffset(topic: string, partition: number): number {
    return this.log.startOffset(topic, partition);
  }

  endOffset(topic: string, partition: number): number {
    return this.log.endOffset(topic, partition);
  }

  reader(): TopicReader {
    const log = this.log;
    return {
      fetch(requests: readonly FetchRequest[], maxWaitMs = 0, signal?: AbortSignal) {
        const missing = requests.filter((r) =>
          log.needsPrefetch(r.topic, r.partition, r.offset, r.max, r.maxBytes)
        );
        const available = () =>
          requests.some((r) =>
            log.endOffset(r.topic, r.partition) >
              Math.max(r.offset, log.startOffset(r.topic, r.partition))
          );
        const waits = maxWaitMs > 0 && !signal?.aborted && !available();
        if (missing.length === 0 && !waits) return;
        return (async () => {
          for (const r of missing) {
            await log.prefetch(r.topic, r.partition, r.offset, r.max, r.maxBytes);
          }
          if (waits) await appended(log, maxWaitMs, signal);
        })();
      },
      read(topic, partition, offset, max, maxBytes): LogRecord[] {
        return log.read(topic, partition, offset, max, maxBytes);
      },
      skipTo: (_topic, _partition, offset) => offset,
    };
  }

  append(topic: string, records: readonly NewRecord[]): Promise<RecordPosition[]> {
    return this.log.append(topic, records);
  }

  positions(tasks: readonly TaskRef[]): Promise<Map<string, TaskPositions>> {
    return this.committer.serialize(async () => {
      await this.#positions.load();
      return new Map(tasks.map((task) => [task.id, this.#positions.of(task)]));
    });
  }

  /** Local state is what was committed: nothing to catch up. */
  restore(): Promise<void> {
    return Promise.resolve();
  }

  commit(batch: BatchCommit, abandoned: () => boolean = () => false): Promise<void> {
    return this.committer.serialize(async () => {
      if (abandoned()) return;
      const staged = this.log.stage(batch.appends, batch.handedOff);
      const positions = this.#positions.advance(batch.tasks);
      await this.committer.write([...staged.mutations, ...batch.state, ...positions.mutations]);
      positions.landed();
      staged.publish();
      // Repartition records every reader has committed past are no longer needed.
      for (const c of batch.consumed) this.log.truncateBefore(c.topic, c.partition, c.offset);
    });
  }

  reset(internalTopics: readonly string[]): Promise<void> {
    return this.committer.serialize(async () => {
      await this.#positions.load();
      const cleared = this.#positions.clear();
      await this.committer.write(cleared.mutations);
      cleared.landed();
      // Unconsumed repartition records would be counted again on top of the reprocessed input.
      for (const topic of internalTopics) {
        if (!this.log.hasTopic(topic)) continue;
        for (let p = 0; p < this.log.partitions(topic); p++) {
          this.log.truncateBefore(topic, p, this.log.endOffset(topic, p));
        }
      }
      const staged = this.log.stage(new Map());
      await this.committer.write(staged.mutations);
      staged.publish();
    });
  }

  problem(): string | null {
    return null;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Resolves at the next append in this process (the only writer), after `ms`, or on abort. */
function appended(log: EmbeddedLog, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const unsubscribe = log.onAppend(done);
    signal?.addEventListener("abort", done);
  });
}
