import type { Headers, LogRecord, NewRecord, StreamRecord } from "./record.ts";
import { keyToString, serializedValue } from "./record.ts";
import type { KeyValueStore } from "./state/key_value_store.ts";
import type { WindowStore } from "./state/window_store.ts";
import type { AnyRecord, ProcessorContext } from "./topology/node.ts";
import type { Subtopology } from "./topology/subtopologies.ts";

/** Where a task's side effects go during one batch: output records and reports. */
export interface TaskOutput {
  send(topic: string, record: NewRecord): void;
  deadLettered(sourceTopic: string, plugin: string | null): void;
  late(plugin: string, store: string): void;
}

/** Topics reserved for dead letters and late records. */
export interface ReportTopics {
  readonly deadLetter: string;
  readonly late: string;
}

export type AnyStore = KeyValueStore | WindowStore;

/**
 * Processes one partition of a sub-topology: decodes each input record once, tracks stream
 * time, tells time-driven nodes when it advances, and runs the record through the sources.
 */
export class StreamTask implements ProcessorContext {
  streamTime = -Infinity;
  input!: LogRecord;
  output!: TaskOutput;
  /** Next offset to read, per input topic. */
  readonly offsets: Map<string, number>;

  constructor(
    readonly sub: Subtopology,
    readonly partition: number,
    readonly stores: ReadonlyMap<string, AnyStore>,
    offsets: Map<string, number>,
    readonly reports: ReportTopics,
    /** Topics whose records carry event time in the record timestamp (internal topics). */
    readonly internalTopics: ReadonlySet<string>,
  ) {
    this.offsets = offsets;
  }

  get id(): string {
    return `${this.sub.id}_${this.partition}`;
  }

  store<S>(name: string): S {
    const s = this.stores.get(name);
    if (!s) throw new Error(`Store '${name}' is not available in task ${this.id}`);
    return s as S;
  }

  send(topic: string, record: AnyRecord): void {
    const empty = record.value === null || record.value === undefined;
    // Internal topics are read back by this process: the value goes as it is, and is serialized
    // only if the record is stored (a record its reader takes within the batch never is).
    const internal = !empty && this.internalTopics.has(topic);
    this.output.send(topic, {
      key: keyToString(record.key),
      value: empty || internal ? null : JSON.stringify(record.value),
      timestamp: record.timestamp,
      headers: record.headers,
      parsed: internal ? record.value : undefined,
    });
  }

  late(plugin: string, store: string, record: AnyRecord, reason: string): void {
    this.output.late(plugin, store);
    this.#report(this.reports.late, record.timestamp, {
      plugin,
      store,
      reason,
      eventTime: record.timestamp,
      streamTime: this.streamTime,
      value: record.value,
    });
  }

  deadLetter(plugin: string | null, reason: string): void {
    this.output.deadLettered(this.input.topic, plugin);
    this.#report(this.reports.deadLetter, this.input.timestamp, {
      ...(plugin ? { plugin } : {}),
      reason,
      raw: serializedValue(this.input),
    });
  }

  /** Writes a report about the current input record, naming where it came from. */
  #report(topic: string, timestamp: number, details: Record<string, unknown>): void {
    const input = this.input;
    this.output.send(topic, {
      key: input.key,
      value: JSON.stringify({
        sourceTopic: input.topic,
        partition: input.partition,
        offset: input.offset,
        key: input.key,
        ...details,
      }),
      timestamp,
      headers: {},
    });
  }

  /**
   * Parses a record's value and event time. Returns the reason when it cannot; the caller sends
   * the record to the dead-letter topic when it processes it.
   */
  decode(input: LogRecord): StreamRecord | string {
    let value: unknown = null;
    if (input.parsed !== undefined) {
      value = input.parsed;
    } else if (input.value !== null) {
      try {
        value = JSON.parse(input.value);
      } catch (e) {
        return `value is not valid JSON: ${(e as Error).message}`;
      }
    }
    let timestamp = input.timestamp;
    if (!this.internalTopics.has(input.topic) && value !== null && typeof value === "object") {
      const t = (value as { timestamp?: unknown }).timestamp;
      if (t !== undefined) {
        const parsed = typeof t === "number" ? t : typeof t === "string" ? Date.parse(t) : NaN;
        if (!Number.isFinite(parsed)) {
          return `timestamp: expected epoch milliseconds or an ISO-8601 string, got ${
            JSON.stringify(t)
          }`;
        }
        timestamp = parsed;
      }
    }
    return { key: input.key, value, timestamp, headers: input.headers as Headers };
  }

  /** Runs one decoded record through the task (or dead-letters it with the decode failure). */
  process(input: LogRecord, record: StreamRecord | string): void {
    this.input = input;
    if (typeof record === "string") {
      this.deadLetter(null, record);
      return;
    }
    if (record.timestamp > this.streamTime) {
      this.streamTime = record.timestamp;
      for (const n of this.sub.timeNodes) n.advance!(this);
    }
    for (const source of this.sub.sources.get(input.topic)!) source.process(record, this);
  }
}
