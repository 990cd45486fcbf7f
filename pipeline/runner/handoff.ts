import type { StreamTask } from "../task.ts";
import type { TopicLog } from "../topics/topic_log.ts";

/**
 * A repartition topic as the runner routes it. With one process owning every partition (the
 * embedded log), a re-keyed record goes straight to the task that reads it, within the batch
 * that made it: no extra batch of latency, nothing stored. Offsets are assigned here as the log
 * will, so the reader's committed offsets match the topic's.
 */
export class Repartition {
  /** Offset the next record of each partition gets, counting batches not yet committed. */
  readonly next: number[];
  /** Handed to its readers within the batch, in this batch. */
  direct = false;
  /** Partition of the next record without a key. */
  roundRobin = 0;
  /** Running estimate of the bytes a handed-off record makes its reader write. */
  cost = 500;

  constructor(
    readonly topic: string,
    /** The task reading each partition, by partition. */
    readonly readers: readonly StreamTask[],
    log: TopicLog,
  ) {
    this.next = readers.map((t) => log.endOffset(topic, t.partition));
  }

  /**
   * Decides for the coming batch: hand over directly only when allowed and the readers have
   * read everything appended so far, so records stay in order.
   */
  beginBatch(allowed: boolean): void {
    this.direct = allowed &&
      this.readers.every((t, p) => t.offsets.get(this.topic) === this.next[p]);
  }

  /** Folds what a handed-off record made its reader write into the running estimate. */
  observe(written: number): void {
    this.cost = 0.9 * this.cost + 0.1 * written;
  }
}

/** The repartition topics of a set of tasks, by topic. */
export function repartitions(
  topics: Iterable<string>,
  tasks: readonly StreamTask[],
  log: TopicLog,
): Map<string, Repartition> {
  const out = new Map<string, Repartition>();
  for (const topic of topics) {
    const readers = tasks.filter((t) => t.sub.topics.includes(topic))
      .sort((a, b) => a.partition - b.partition);
    // Read by no task here (its readers stopped): appended as any output topic.
    if (readers.length > 0) out.set(topic, new Repartition(topic, readers, log));
  }
  return out;
}
