import type { Windowed } from "../record.ts";
import type { KeyValueStore } from "../state/key_value_store.ts";
import type { WindowEntry, WindowStore } from "../state/window_store.ts";
import {
  openTimeWindows,
  type SessionWindowSpec,
  type SlidingWindowSpec,
  type TimeWindowSpec,
} from "../windows.ts";
import { type AnyRecord, type ProcessorContext, ProcessorNode } from "./node.ts";

/** How values fold into an aggregate; `merge` joins two session aggregates. */
export interface Aggregation<V, A> {
  readonly init: () => A;
  readonly add: (key: string, value: V, aggregate: A) => A;
  readonly merge?: (key: string, left: A, right: A) => A;
}

/** When windowed results are emitted: on every update, or once when the window closes. */
export type EmitStrategy = "update" | "close";

/**
 * Which replaced sessions are retracted with a null value: "all" (as Kafka Streams: every
 * session whose bounds changed) or "merged" (only sessions whose start changed, i.e. that were
 * absorbed into another; an extended session is simply updated under the same start).
 */
export type RetractStrategy = "all" | "merged";

// deno-lint-ignore no-explicit-any
type AnyAggregation = Aggregation<any, any>;

abstract class KeyedAggregateNode extends ProcessorNode {
  constructor(
    name: string,
    plugin: string,
    readonly storeName: string,
    readonly agg: AnyAggregation,
  ) {
    super(name, plugin);
    this.stores.push(storeName);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (!this.hasStringKey(record, ctx, `aggregation '${this.storeName}'`)) return;
    this.aggregate(record as AnyRecord & { key: string }, ctx);
  }

  protected abstract aggregate(record: AnyRecord & { key: string }, ctx: ProcessorContext): void;

  /**
   * Emits a window's result: an update goes through the task's record cache (coalesced per
   * window until the commit), a window emitted when it closes goes at once.
   */
  protected emitWindow(
    ctx: ProcessorContext,
    w: WindowEntry<unknown>,
    value: unknown,
    timestamp: number,
    cacheKey: string | null = `${w.key}@${w.start}`,
  ) {
    const key: Windowed = { key: w.key, window: { start: w.start, end: w.end } };
    const record = { key, value, timestamp, headers: {} };
    if (cacheKey === null) this.forward(record, ctx);
    else ctx.emitCached(this, cacheKey, record);
  }

  /** Forwards a result the record cache held. */
  flushCached(record: AnyRecord, ctx: ProcessorContext): void {
    this.forward(record, ctx);
  }
}

/** count / reduce / aggregate over all time per key: a table of the latest aggregate. */
export class AggregateNode extends KeyedAggregateNode {
  protected aggregate(record: AnyRecord & { key: string }, ctx: ProcessorContext): void {
    const store = ctx.store<KeyValueStore>(this.storeName);
    const current = store.get(record.key);
    const next = this.agg.add(
      record.key,
      record.value,
      current === undefined ? this.agg.init() : current,
    );
    store.put(record.key, next);
    ctx.emitCached(this, record.key, {
      key: record.key,
      value: next,
      timestamp: record.timestamp,
      headers: record.headers,
    });
  }
}

/** Aggregates per key in tumbling or hopping windows. */
export class TimeWindowAggregateNode extends KeyedAggregateNode {
  constructor(
    name: string,
    plugin: string,
    storeName: string,
    agg: AnyAggregation,
    readonly spec: TimeWindowSpec,
    readonly emit: EmitStrategy,
  ) {
    super(name, plugin, storeName, agg);
  }

  protected aggregate(record: AnyRecord & { key: string }, ctx: ProcessorContext): void {
    const store = ctx.store<WindowStore>(this.storeName);
    const { size, grace } = this.spec;
    const starts = openTimeWindows(record.timestamp, this.spec, ctx.streamTime);
    for (const start of starts) {
      const end = start + size;
      const closeAt = end + grace;
      const current = store.valueAt(record.key, start);
      const value = this.agg.add(
        record.key,
        record.value,
        current === undefined ? this.agg.init() : current,
      );
      store.put(record.key, start, end, value, closeAt);
      if (this.emit === "update") {
        this.emitWindow(ctx, { key: record.key, start, end, value }, value, record.timestamp);
      }
    }
    if (starts.length === 0) {
      ctx.late(
        this.plugin,
        this.storeName,
        record,
        "every window containing the record has closed (end + grace <= stream time)",
      );
    }
  }

  override advance(ctx: ProcessorContext): void {
    const closed = ctx.store<WindowStore>(this.storeName).closeUpTo(ctx.streamTime);
    if (this.emit === "close") {
      for (const w of closed) {
        this.emitWindow(ctx, w, w.value, w.end - 1, null);
      }
    }
  }
}

/**
 * Aggregates per key over sliding windows [t - size, t] ending at each record's time t, so every
 * span of `size` that holds records is covered. Records are buffered (until they can no longer
 * fall in an open window) to build each new window's aggregate.
 */
export class SlidingWindowAggregateNode extends KeyedAggregateNode {
  readonly bufferName: string;

  constructor(
    name: string,
    plugin: string,
    storeName: string,
    agg: AnyAggregation,
    readonly spec: SlidingWindowSpec,
    readonly emit: EmitStrategy,
  ) {
    super(name, plugin, storeName, agg);
    this.bufferName = `${storeName}-records`;
    this.stores.push(this.bufferName);
  }

  protected aggregate(record: AnyRecord & { key: string }, ctx: ProcessorContext): void {
    const { size, grace } = this.spec;
    const t = record.timestamp;
    if (t + size + grace <= ctx.streamTime) {
      ctx.late(
        this.plugin,
        this.storeName,
        record,
        "every sliding window containing the record has closed",
      );
      return;
    }
    const windows = ctx.store<WindowStore>(this.storeName);
    const buffer = ctx.store<WindowStore<unknown[]>>(this.bufferName);
    const buffered = buffer.get(record.key, t);
    buffer.put(record.key, t, t, [...(buffered?.value ?? []), record.value], t + size + grace);

    const updated: WindowEntry<unknown>[] = [];
    // Windows ending in [t, t + size] contain t: add the record to those still open.
    for (const w of windows.fetch(record.key, t - size, t)) {
      if (w.end + grace <= ctx.streamTime) continue;
      const value = this.agg.add(record.key, record.value, w.value);
      windows.put(w.key, w.start, w.end, value, w.end + grace);
      updated.push({ ...w, value });
    }
    if (!windows.get(record.key, t - size) && t + grace > ctx.streamTime) {
      let value = this.agg.init();
      for (const b of buffer.fetch(record.key, t - size, t)) {
        for (const v of b.value) value = this.agg.add(record.key, v, value);
      }
      windows.put(record.key, t - size, t, value, t + grace);
      updated.push({ key: record.key, start: t - size, end: t, value });
    }
    if (this.emit === "update") {
      updated.sort((a, b) => a.end - b.end);
      for (const w of updated) this.emitWindow(ctx, w, w.value, Math.max(t, w.end));
    }
  }

  override advance(ctx: ProcessorContext): void {
    ctx.store<WindowStore>(this.bufferName).closeUpTo(ctx.streamTime);
    const closed = ctx.store<WindowStore>(this.storeName).closeUpTo(ctx.streamTime);
    if (this.emit === "close") {
      for (const w of closed) this.emitWindow(ctx, w, w.value, w.end, null);
    }
  }
}

/**
 * Aggregates per key in session windows. A record within `gap` of existing sessions merges them
 * into one (their aggregates combined with `merge`); on update, replaced sessions are retracted
 * with a null value, as Kafka Streams does.
 */
export class SessionWindowAggregateNode extends KeyedAggregateNode {
  constructor(
    name: string,
    plugin: string,
    storeName: string,
    agg: AnyAggregation,
    readonly spec: SessionWindowSpec,
    readonly emit: EmitStrategy,
    readonly retract: RetractStrategy = "all",
  ) {
    super(name, plugin, storeName, agg);
    if (!agg.merge) {
      throw new Error(`Cannot aggregate sessions in '${storeName}' as a merger is required`);
    }
  }

  protected aggregate(record: AnyRecord & { key: string }, ctx: ProcessorContext): void {
    const { gap, grace } = this.spec;
    const t = record.timestamp;
    const store = ctx.store<WindowStore>(this.storeName);
    const overlapping = store.fetch(record.key).filter((w) =>
      w.start <= t + gap && w.end >= t - gap
    );
    if (overlapping.length === 0 && t + gap + grace <= ctx.streamTime) {
      ctx.late(
        this.plugin,
        this.storeName,
        record,
        "the record's session has closed (end + gap + grace <= stream time)",
      );
      return;
    }
    let start = t;
    let end = t;
    let value = this.agg.init();
    for (const w of overlapping) {
      start = Math.min(start, w.start);
      end = Math.max(end, w.end);
      value = this.agg.merge!(record.key, value, w.value);
    }
    value = this.agg.add(record.key, record.value, value);
    for (const w of overlapping) {
      // The session keeping its start is overwritten by the put below.
      if (w.start !== start) store.delete(w.key, w.start);
      const replaced = this.retract === "all"
        ? w.start !== start || w.end !== end
        : w.start !== start;
      if (this.emit === "update" && replaced) {
        this.emitWindow(ctx, w, null, t, this.#cacheKey(w));
      }
    }
    store.put(record.key, start, end, value, end + gap + grace);
    if (this.emit === "update") {
      const session = { key: record.key, start, end, value };
      this.emitWindow(ctx, session, value, t, this.#cacheKey(session));
    }
  }

  override advance(ctx: ProcessorContext): void {
    const closed = ctx.store<WindowStore>(this.storeName).closeUpTo(ctx.streamTime);
    if (this.emit === "close") {
      for (const w of closed) this.emitWindow(ctx, w, w.value, w.end, null);
    }
  }

  /**
   * A session's entry in the record cache: by its start when only absorbed sessions are
   * retracted (an extension then updates the same session), else by its bounds, as a
   * retraction of the old bounds must reach downstream.
   */
  #cacheKey(w: WindowEntry<unknown>): string {
    return this.retract === "merged" ? `${w.key}@${w.start}` : `${w.key}@${w.start}-${w.end}`;
  }
}
