import { type LogRecord, type NewRecord, serializedValue } from "../record.ts";
import type { StreamTask, TaskOutput } from "../task.ts";
import { partitionForKey } from "../topics/partitioner.ts";
import type { Repartition } from "./handoff.ts";

/** Approximate bytes a record adds to a commit. */
function recordBytes(key: string | null, value: string | null): number {
  return 48 + (key?.length ?? 0) + (value?.length ?? 0);
}

/** What one task wrote in a batch: output records per topic, in the order it sent them. */
export class TaskOutputs implements TaskOutput {
  readonly appends = new Map<string, NewRecord[]>();

  constructor(readonly task: StreamTask, readonly batch: Batch) {}

  send(topic: string, record: NewRecord): void {
    const sent = this.batch.route(topic, record);
    let list = this.appends.get(topic);
    if (!list) this.appends.set(topic, list = []);
    list.push(sent);
  }

  deadLettered(sourceTopic: string): void {
    const m = this.batch.deadLetters;
    m.set(sourceTopic, (m.get(sourceTopic) ?? 0) + 1);
  }

  late(plugin: string, store: string): void {
    const k = `${plugin}/${store}`;
    this.batch.lateCounts.set(k, (this.batch.lateCounts.get(k) ?? 0) + 1);
  }
}

/** Everything one batch produces: output records per task and topic, and counts for metrics. */
export class Batch {
  /** Every output record per topic in the order sent, across tasks. */
  readonly appends = new Map<string, NewRecord[]>();
  /** Per task that wrote or read, what it wrote. */
  readonly tasks = new Map<StreamTask, TaskOutputs>();
  /** Re-keyed records for readers in this batch, in the order they were sent. */
  readonly handoffs: LogRecord[] = [];
  /** Topics whose records this batch appends are all read within it. */
  readonly handedOff = new Set<string>();
  /** Estimated bytes the handed-off records not yet processed will make their readers write. */
  handoffBytes = 0;
  /** Approximate bytes of the output records. */
  bytes = 0;
  readonly recordsIn = new Map<string, number>();
  readonly recordsOut = new Map<string, number>();
  readonly deadLetters = new Map<string, number>();
  readonly lateCounts = new Map<string, number>();

  constructor(readonly repartitions: ReadonlyMap<string, Repartition>) {}

  /** Where `task` writes in this batch. */
  outputFor(task: StreamTask): TaskOutputs {
    let out = this.tasks.get(task);
    if (!out) this.tasks.set(task, out = new TaskOutputs(task, this));
    return out;
  }

  countIn(topic: string): void {
    this.recordsIn.set(topic, (this.recordsIn.get(topic) ?? 0) + 1);
  }

  /** Adds a record to the batch's appends; returns it as it will be appended. */
  route(topic: string, record: NewRecord): NewRecord {
    let list = this.appends.get(topic);
    if (!list) this.appends.set(topic, list = []);
    this.recordsOut.set(topic, (this.recordsOut.get(topic) ?? 0) + 1);
    const r = this.repartitions.get(topic);
    if (!r) {
      list.push(record);
      this.bytes += recordBytes(record.key, serializedValue(record));
      return record;
    }
    // Partition and offset are assigned here, as the log will, so a reader can take the record
    // before it is committed.
    const n = r.readers.length;
    const partition = record.key === null ? r.roundRobin++ % n : partitionForKey(record.key, n);
    const offset = r.next[partition]++;
    if (!r.direct) {
      // Stored for a later batch: serialized now, so the batch knows its size.
      const value = serializedValue(record);
      const stored = { ...record, value, partition };
      list.push(stored);
      this.bytes += recordBytes(record.key, value);
      return stored;
    }
    const sent = { ...record, partition };
    list.push(sent);
    this.handedOff.add(topic);
    this.handoffBytes += r.cost;
    this.handoffs.push({
      topic,
      partition,
      offset,
      key: record.key,
      value: record.value,
      timestamp: record.timestamp!,
      headers: record.headers ?? {},
      parsed: record.parsed,
    });
    return sent;
  }
}
