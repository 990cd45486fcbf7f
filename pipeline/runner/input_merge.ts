import type { LogRecord, StreamRecord } from "../record.ts";
import type { StreamTask } from "../task.ts";
import type { TopicReader } from "../topics/topic_log.ts";

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

/**
 * A task's next input records, decoded a few at a time ahead of processing. Across topics they
 * are merged by picking the topic whose next record is earliest (ties: tables first, as the
 * task's topics are ordered); each topic stays in offset order.
 */
export function* taskInputs(
  task: StreamTask,
  reader: TopicReader,
  max: number,
  maxBytes: number,
): Generator<{ log: LogRecord; record: StreamRecord | string }> {
  const topics = task.sub.topics.map((topic) =>
    new InputCursor(
      task,
      reader.read(topic, task.partition, task.offsets.get(topic)!, max, maxBytes),
    )
  );
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
