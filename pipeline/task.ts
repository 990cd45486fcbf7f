import type { Headers, LogRecord, NewRecord, StreamRecord } from "./record.ts";
import { keyToString, serializedValue } from "./record.ts";
import type { KeyValueStore } from "./state/key_value_store.ts";
import type { WindowStore } from "./state/window_store.ts";
import type { FraudScoringStore } from "./wasm/fraud_scoring_store.ts";
import type { StatsWindowStore } from "./wasm/stats_window_store.ts";
import type { SessionStatsStore } from "./wasm/session_stats_store.ts";
import type {
  AnyRecord,
  CachingNode,
  DeferredRecord,
  DeferringNode,
  ProcessorContext,
} from "./topology/node.ts";
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

/**
 * What happens when a plugin's code throws for a record (Kafka Streams' processing exception
 * handler): "dlq" dead-letters the record and goes on, "stop" stops the pipeline.
 */
export type OnError = "dlq" | "stop";

export type AnyStore =
  | KeyValueStore
  | WindowStore
  | StatsWindowStore
  | SessionStatsStore
  | FraudScoringStore;

/** A plugin's code threw for a record and the plugin's `onError` is "stop". */
export class ProcessingError extends Error {
  override name = "ProcessingError";
  constructor(
    readonly plugin: string,
    readonly input: LogRecord,
    override readonly cause: unknown,
  ) {
    super(
      `plugin ${plugin} failed on ${input.topic}[${input.partition}]@${input.offset}: ${
        describeError(cause)
      } (its "onError" is "stop"; set it to "dlq" to dead-letter such records and go on)`,
    );
  }
}

/** A deferred record with the input behind it, and the plugin whose node holds it. */
interface HeldRecord extends DeferredRecord<unknown> {
  readonly input: LogRecord;
  readonly origin: string;
  readonly plugin: string;
}

/** A result the record cache holds: the record to forward, and the input behind it. */
interface CachedResult {
  readonly record: AnyRecord;
  readonly input: LogRecord;
  readonly origin: string;
}

/** The header naming an output record's origin. */
export const ORIGIN = "bss.origin";

/**
 * An operator failed (a WebAssembly trap, memory exhausted): the state of its store cannot be
 * trusted, so the tasks holding it stop (see PipelineRunner.failedPlugins).
 */
export class OperatorFailure extends Error {
  override name = "OperatorFailure";
  constructor(
    readonly operator: string,
    readonly plugin: string,
    readonly store: string,
    override readonly cause: unknown,
  ) {
    super(
      `operator ${operator} (store '${store}') of plugin ${plugin} failed: ${describeError(cause)}`,
    );
  }
}

/** A side effect of the record in progress, applied once the plugin's code finished without error. */
type Pending =
  | { readonly kind: "send"; readonly topic: string; readonly record: NewRecord }
  | { readonly kind: "dead"; readonly plugin: string | null }
  | { readonly kind: "late"; readonly plugin: string; readonly store: string };

/**
 * Processes one partition of a sub-topology: decodes each input record once, tracks stream
 * time, tells time-driven nodes when it advances, and runs the record through the sources.
 *
 * Each plugin's work on a record is isolated: what it writes is held back until its code has
 * finished, so a plugin that throws leaves no partial output; the record is dead-lettered with
 * the error instead (or, with `onError: "stop"`, the pipeline stops).
 */
export class StreamTask implements ProcessorContext {
  streamTime = -Infinity;
  input!: LogRecord;
  output!: TaskOutput;
  /** Next offset to read, per input topic. */
  readonly offsets: Map<string, number>;
  #pending: Pending[] = [];
  /** The origin header of the current input's outputs, up to their index (made when needed). */
  #originBase: string | null = null;
  #outputIndex = 0;
  /** The record cache: per caching node, results by cache key, oldest first. */
  readonly #caches = new Map<CachingNode, Map<string, CachedResult>>();
  #cached = 0;
  /** Results evicted from the cache, forwarded once the record in progress is done. */
  #evicted: [CachingNode, CachedResult][] = [];
  /** Records deferring nodes hold until the commit, per node. */
  readonly #deferred = new Map<DeferringNode<unknown>, HeldRecord[]>();
  #deferredCount = 0;

  constructor(
    readonly sub: Subtopology,
    readonly partition: number,
    readonly stores: ReadonlyMap<string, AnyStore>,
    offsets: Map<string, number>,
    readonly reports: ReportTopics,
    /** Topics whose records carry event time in the record timestamp (internal topics). */
    readonly internalTopics: ReadonlySet<string>,
    /** Each plugin's `onError`; plugins not listed dead-letter. */
    readonly onError: ReadonlyMap<string, OnError> = new Map(),
    /** Event times outside these bounds are dead-lettered (see `EventTimeBounds`). */
    readonly eventTime: EventTimeBounds = { min: 0, maxAheadMs: null, now: Date.now },
    /** Results the record cache holds at most; 0 forwards every result at once. */
    readonly cacheCapacity = 0,
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
    this.#pending.push({
      kind: "send",
      topic,
      record: {
        key: keyToString(record.key),
        value: empty || internal ? null : JSON.stringify(record.value),
        timestamp: record.timestamp,
        headers: this.#withOrigin(record.headers),
        parsed: internal ? record.value : undefined,
      },
    });
  }

  /**
   * `headers` plus the origin of the output: the input record behind it (topic, partition,
   * offset, then the output's index among that record's outputs), so that a consumer can tell a
   * duplicate even when it reads uncommitted records. Behind a repartition topic the origin is
   * the external input's, with the index extended: `bss.order.events:1:42:0.3`.
   */
  #withOrigin(headers: Headers): Headers {
    const origin = this.#nextOrigin();
    // Most outputs have no other header (or only the origin they came with): no spread then.
    return onlyOrigin(headers) ? { [ORIGIN]: origin } : { ...headers, [ORIGIN]: origin };
  }

  /** The origin of the current input's next output. */
  #nextOrigin(): string {
    let base = this.#originBase;
    if (base === null) {
      const input = this.input;
      const upstream = this.internalTopics.has(input.topic) ? input.headers[ORIGIN] : undefined;
      base = this.#originBase = upstream !== undefined
        ? `${upstream}.`
        : `${input.topic}:${input.partition}:${input.offset}:`;
    }
    return `${base}${this.#outputIndex++}`;
  }

  emitCached(node: CachingNode, cacheKey: string, record: AnyRecord): void {
    if (this.cacheCapacity === 0) {
      node.flushCached(record, this);
      return;
    }
    let cache = this.#caches.get(node);
    if (!cache) this.#caches.set(node, cache = new Map());
    if (cache.delete(cacheKey)) this.#cached--;
    // The origin is fixed now: the record behind the result, its outputs numbered after it.
    cache.set(cacheKey, { record, input: this.input, origin: this.#nextOrigin() });
    if (++this.#cached > this.cacheCapacity) {
      const [oldest, result] = cache.entries().next().value!;
      cache.delete(oldest);
      this.#cached--;
      this.#evicted.push([node, result]);
    }
  }

  /** Frees what its stores hold outside the JS heap (WebAssembly memory); unusable after. */
  release(): void {
    for (const store of this.stores.values()) if ("release" in store) store.release();
  }

  get coalesces(): boolean {
    return this.cacheCapacity > 0;
  }

  defer<T>(node: DeferringNode<T>, record: AnyRecord, value: T): void {
    if (this.cacheCapacity === 0) {
      // No cache: every update follows its record at once, as the other steps' do.
      node.flushDeferred([{ record, value, streamTime: this.streamTime }], this);
      return;
    }
    const key = node as DeferringNode<unknown>;
    let held = this.#deferred.get(key);
    if (!held) this.#deferred.set(key, held = []);
    held.push({
      record,
      value,
      streamTime: this.streamTime,
      input: this.input,
      origin: this.#nextOrigin(),
      plugin: node.plugin,
    });
    this.#deferredCount++;
  }

  within(item: DeferredRecord<unknown>, fn: () => void): void {
    const held = item as Partial<HeldRecord>;
    // A record flushed at once is the record in progress: a failure is its processing's.
    if (held.input === undefined) {
      fn();
      return;
    }
    this.#isolated(held.input, held.origin!, held.plugin!, "processing the record", fn);
  }

  /** Results the record cache holds, and records deferring nodes hold. */
  get cachedResults(): number {
    return this.#cached + this.#deferredCount;
  }

  /** Whether the record cache or a deferring node holds anything for the commit. */
  get hasCached(): boolean {
    return this.#cached > 0 || this.#deferredCount > 0;
  }

  /**
   * Forwards every result the record cache holds, oldest first, as of their own records (for
   * dead letters and origins), and empties it: before each commit. What the forwarded results
   * put into caches already flushed stays held, counted in `hasCached`, for the caller to flush
   * again before the commit.
   */
  flushCaches(): void {
    // Deferring nodes first: what they emit may go through caches further down.
    for (const [node, held] of this.#deferred) {
      if (held.length === 0) continue;
      this.#deferred.set(node, []);
      this.#deferredCount -= held.length;
      this.#flushDeferred(node, held);
    }
    // What a deferring node's results evicted from a full cache is older than what it holds.
    this.#forwardEvicted();
    for (const [node, cache] of this.#caches) {
      if (cache.size === 0) continue;
      const results = [...cache.values()];
      cache.clear();
      this.#cached -= results.length;
      for (const result of results) this.#forwardCached(node, result);
      this.#forwardEvicted();
    }
  }

  /** Lets a deferring node process its batch; a failure of its code is the batch's records'. */
  #flushDeferred(node: DeferringNode<unknown>, held: HeldRecord[]): void {
    try {
      node.flushDeferred(held, this);
    } catch (e) {
      if (e instanceof ProcessingError || e instanceof OperatorFailure) throw e;
      // Which record it failed on is unknown: the batch's first stands for them.
      this.#as(held[0].input, held[0].origin, () => {
        this.#failed(node.plugin, e, "processing a batch of records");
      });
    }
  }

  /** Forwards one cached result under its own record, like the processing of that record. */
  #forwardCached(node: CachingNode, result: CachedResult): void {
    this.#isolated(
      result.input,
      result.origin,
      node.plugin,
      "emitting a cached result",
      () => node.flushCached(result.record, this),
    );
  }

  /** `#as`, with a failure of the plugin's code in `fn` dead-lettering that record only. */
  #isolated(
    input: LogRecord,
    origin: string,
    plugin: string,
    stage: string,
    fn: () => void,
  ): void {
    this.#as(input, origin, () => {
      try {
        fn();
        this.#flush();
      } catch (e) {
        this.#failed(plugin, e, stage);
      }
    });
  }

  /** Runs `fn` as the processing of `input` would, its outputs numbered under `origin`. */
  #as(input: LogRecord, origin: string, fn: () => void): void {
    const before = this.input;
    const base = this.#originBase;
    const index = this.#outputIndex;
    this.input = input;
    this.#originBase = `${origin}.`;
    this.#outputIndex = 0;
    try {
      fn();
      this.#flush();
    } finally {
      this.input = before;
      this.#originBase = base;
      this.#outputIndex = index;
    }
  }

  /** Forwards results evicted while a record was processed, once it is done. */
  #forwardEvicted(): void {
    while (this.#evicted.length > 0) {
      const evicted = this.#evicted;
      this.#evicted = [];
      for (const [node, result] of evicted) this.#forwardCached(node, result);
    }
  }

  late(plugin: string, store: string, record: AnyRecord, reason: string): void {
    this.#pending.push({ kind: "late", plugin, store });
    this.#report(this.reports.late, record.timestamp, {
      plugin,
      store,
      reason,
      eventTime: record.timestamp,
      streamTime: this.streamTime,
      value: record.value,
    });
  }

  deadLetter(plugin: string | null, reason: string, details: Record<string, unknown> = {}): void {
    this.#pending.push({ kind: "dead", plugin });
    const raw = serializedValue(this.input);
    this.#report(this.reports.deadLetter, this.input.timestamp, {
      ...(plugin ? { plugin } : {}),
      reason,
      ...details,
      // A dead letter must stay producible to any broker (Kafka refuses records past 1 MiB).
      ...(raw !== null && raw.length > MAX_RAW
        ? { raw: raw.slice(0, MAX_RAW), rawLength: raw.length, rawTruncated: true }
        : { raw }),
    });
  }

  /** Writes a report about the current input record, naming where it came from. */
  #report(topic: string, timestamp: number, details: Record<string, unknown>): void {
    const input = this.input;
    this.#pending.push({
      kind: "send",
      topic,
      record: {
        key: input.key,
        value: JSON.stringify({
          sourceTopic: input.topic,
          partition: input.partition,
          offset: input.offset,
          key: input.key,
          ...details,
        }),
        timestamp,
        headers: this.#withOrigin({}),
      },
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
    // Internal topics carry the event time their writer gave the record.
    if (this.internalTopics.has(input.topic)) {
      return { key: input.key, value, timestamp: input.timestamp, headers: input.headers };
    }
    let timestamp = input.timestamp;
    let field = "the record timestamp";
    if (value !== null && typeof value === "object") {
      const t = (value as { timestamp?: unknown }).timestamp;
      if (t !== undefined) {
        const parsed = typeof t === "number" ? t : typeof t === "string" ? Date.parse(t) : NaN;
        if (!Number.isFinite(parsed)) {
          return `timestamp: expected epoch milliseconds or an ISO-8601 string, got ${
            JSON.stringify(t)
          }`;
        }
        timestamp = parsed;
        field = "timestamp";
      }
    }
    const outOfBounds = checkEventTime(timestamp, this.eventTime);
    if (outOfBounds) return `${field}: ${outOfBounds}`;
    return { key: input.key, value, timestamp, headers: input.headers as Headers };
  }

  /** Runs one decoded record through the task (or dead-letters it with the decode failure). */
  process(input: LogRecord, record: StreamRecord | string): void {
    this.input = input;
    this.#originBase = null;
    this.#outputIndex = 0;
    if (typeof record === "string") {
      this.deadLetter(null, record);
      this.#flush();
      return;
    }
    if (record.timestamp > this.streamTime) {
      this.streamTime = record.timestamp;
      for (const n of this.sub.timeNodes) {
        try {
          n.advance!(this);
        } catch (e) {
          this.#failed(n.plugin, e, "closing windows");
          continue;
        }
        this.#flush();
      }
    }
    for (const source of this.sub.sources.get(input.topic)!) {
      try {
        source.process(record, this);
      } catch (e) {
        this.#failed(source.plugin, e, "processing the record");
        continue;
      }
      this.#flush();
    }
    if (this.#evicted.length > 0) this.#forwardEvicted();
  }

  /** Hands what the record's run through one plugin wrote to the batch. */
  #flush(): void {
    const pending = this.#pending;
    if (pending.length === 0) return;
    const out = this.output;
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i];
      if (p.kind === "send") out.send(p.topic, p.record);
      else if (p.kind === "dead") out.deadLettered(this.input.topic, p.plugin);
      else out.late(p.plugin, p.store);
    }
    pending.length = 0;
  }

  /** A plugin's code threw: drop what it wrote for this record, then dead-letter or stop. */
  #failed(plugin: string, error: unknown, stage: string): void {
    this.#pending.length = 0;
    if (error instanceof OperatorFailure) throw error;
    if (this.onError.get(plugin) === "stop") throw new ProcessingError(plugin, this.input, error);
    this.deadLetter(plugin, `${stage} failed: ${describeError(error)}`, {
      error: {
        name: error instanceof Error ? error.name : typeof error,
        message: error instanceof Error ? error.message : String(error),
      },
    });
    this.#flush();
  }
}

/**
 * Event times a task accepts: from `min` (epoch ms) to `maxAheadMs` past `now()` (null: no
 * upper bound but the JS date range). One event far in the future would otherwise move stream
 * time so far that every later event is late.
 */
export interface EventTimeBounds {
  readonly min: number;
  readonly maxAheadMs: number | null;
  readonly now: () => number;
}

/** Whether `headers` holds no header but the origin. */
function onlyOrigin(headers: Headers): boolean {
  for (const name in headers) if (name !== ORIGIN) return false;
  return true;
}

/** Characters of a dead-lettered record's value a report keeps. */
const MAX_RAW = 100_000;

/** Largest epoch ms a JS Date can hold. */
const MAX_DATE_MS = 8.64e15;

/** Why an event time is refused, or null when it is accepted. */
export function checkEventTime(t: number, bounds: EventTimeBounds): string | null {
  if (!Number.isFinite(t) || Math.abs(t) > MAX_DATE_MS) {
    return `${t} is outside the range of dates (±${MAX_DATE_MS} ms)`;
  }
  if (t < bounds.min) {
    return `${t} is before the earliest accepted event time ${bounds.min} (${
      new Date(bounds.min).toISOString()
    })`;
  }
  if (bounds.maxAheadMs !== null) {
    const now = bounds.now();
    if (t > now + bounds.maxAheadMs) {
      return `${t} (${
        new Date(t).toISOString()
      }) is more than ${bounds.maxAheadMs} ms ahead of the wall clock (${
        new Date(now).toISOString()
      })`;
    }
  }
  return null;
}

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
