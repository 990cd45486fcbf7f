/** Record headers: string values only, as Kafka headers are usually read. */
export type Headers = Readonly<Record<string, string>>;

/** A record as it is stored in a topic: the value is the raw (serialized) text. */
export interface LogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  /** Serialized value; null is a tombstone. */
  readonly value: string | null;
  /** Record (append) timestamp, epoch ms. */
  readonly timestamp: number;
  readonly headers: Headers;
  /** Order of appends across partitions in this process (not stored); 0 for records loaded. */
  readonly seq?: number;
  /** Wall-clock time this process appended the record (not stored), for latency metrics. */
  readonly appendedAt?: number;
  /**
   * The value as its writer in this process gave it (internal topics): readers use it instead
   * of parsing `value`, which is null until the record is stored.
   */
  readonly parsed?: unknown;
}

/** A record to append: partition is derived from the key unless given. */
export interface NewRecord {
  readonly key: string | null;
  /** Serialized value; null is a tombstone, unless `parsed` holds the value. */
  readonly value: string | null;
  readonly timestamp?: number;
  readonly headers?: Headers;
  readonly partition?: number;
  /**
   * The value not yet serialized, from a writer in this process (saves serializing and parsing
   * it when its reader takes it within the same batch); see `serializedValue`.
   */
  readonly parsed?: unknown;
}

/** A record's value as stored: its text, serialized from `parsed` if the writer left it so. */
export function serializedValue(record: NewRecord): string | null {
  if (record.value !== null || record.parsed === undefined) return record.value;
  return JSON.stringify(record.parsed);
}

/** The window a windowed aggregate belongs to: [start, end) for time windows. */
export interface Window {
  readonly start: number;
  readonly end: number;
}

/** The key of a windowed aggregate, as Kafka Streams' `Windowed<K>`. */
export interface Windowed<K = string> {
  readonly key: K;
  readonly window: Window;
}

/** A record flowing through the operators: value already parsed, timestamp is event time. */
export interface StreamRecord<K = string | null, V = unknown> {
  readonly key: K;
  readonly value: V;
  readonly timestamp: number;
  readonly headers: Headers;
}

/** Serializes a key for a topic: windowed keys become `key@start-end`. */
export function keyToString(key: unknown): string | null {
  if (key === null || key === undefined) return null;
  if (typeof key === "string") return key;
  if (typeof key === "object" && "window" in key && "key" in key) {
    const w = key as Windowed<unknown>;
    return `${keyToString(w.key)}@${w.window.start}-${w.window.end}`;
  }
  return JSON.stringify(key);
}
