import type { Windowed } from "../record.ts";
import { OperatorFailure } from "../task.ts";
import type { StatsWindowStore, WindowStats } from "../wasm/stats_window_store.ts";
import { CHANGED_ROW, CLOSED, UPDATE_ROW } from "../wasm/window_kernel.ts";
import type { TimeWindowSpec } from "../windows.ts";
import type { EmitStrategy } from "./aggregate_nodes.ts";
import {
  type AnyRecord,
  type DeferredRecord,
  type DeferringNode,
  type ProcessorContext,
  ProcessorNode,
} from "./node.ts";

/** A window's statistics, with the value of the record behind them (null once closed). */
export interface WindowStatsOf<V> extends WindowStats {
  readonly event: V | null;
}

/** What a record brings to its windows: its measure, and its category when they count some. */
export interface Measured {
  readonly value: number;
  readonly category: string | null;
}

/**
 * A record's measure and category, checked: a measure that is not a finite number, or a
 * category that is not a string, is the record's error (it is dead-lettered).
 */
export function measured(
  store: string,
  value: unknown,
  // deno-lint-ignore no-explicit-any
  measure: (value: any) => number,
  // deno-lint-ignore no-explicit-any
  categorize: ((value: any) => string) | null,
): Measured {
  const v = measure(value);
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new TypeError(`stats '${store}' measured ${JSON.stringify(v)}, not a finite number`);
  }
  const category = categorize ? categorize(value) : null;
  if (categorize && typeof category !== "string") {
    throw new TypeError(
      `stats '${store}' categorized a record as ${JSON.stringify(category)}, not a string`,
    );
  }
  return { value: v, category };
}

/** What the window and session operators' stores take a batch as. */
interface ColumnStore {
  category(name: string): number;
  intern(key: string): number;
  prepare(n: number): {
    readonly keys: Int32Array;
    readonly times: Float64Array;
    readonly values: Float64Array;
    readonly streamTimes: Float64Array;
    readonly categories: Int32Array;
  };
}

/** Writes a batch of measured records into a store's columns (categories first: see `category`). */
function writeColumns(
  store: ColumnStore,
  items: readonly DeferredRecord<Measured>[],
  categorized: boolean,
): void {
  const n = items.length;
  const categories = categorized ? items.map((item) => store.category(item.value.category!)) : null;
  const c = store.prepare(n);
  for (let i = 0; i < n; i++) {
    const item = items[i];
    c.keys[i] = store.intern(item.record.key as string);
    c.times[i] = item.record.timestamp;
    c.values[i] = item.value.value;
    c.streamTimes[i] = item.streamTime;
  }
  if (categories) c.categories.set(categories);
}

/** A result's statistics from `row` (count, sum, min, max, last from `at`, counts from `countsAt`). */
export function statsOf<V>(
  store: { counts(row: Float64Array, at: number): Readonly<Record<string, number>> },
  row: Float64Array,
  at: number,
  countsAt: number,
  event: V | null,
): WindowStatsOf<V> {
  return {
    count: row[at],
    sum: row[at + 1],
    min: row[at + 2],
    max: row[at + 3],
    last: row[at + 4],
    counts: store.counts(row, countsAt),
    event,
  };
}

/**
 * Runs a batch of held records through a stats operator: writes them into its columns, applies
 * them (`aggregate`; a failure in there is the operator's, which stops its tasks), and reports
 * the records it found late, each as of its own record.
 */
export function aggregateHeld<R extends { readonly late: Int32Array }>(
  ctx: ProcessorContext,
  node: {
    readonly plugin: string;
    readonly storeName: string;
    readonly categorize: unknown;
  },
  operator: string,
  store: ColumnStore,
  items: readonly DeferredRecord<Measured>[],
  aggregate: () => R,
  lateReason: string,
): R {
  let result: R;
  try {
    writeColumns(store, items, node.categorize !== null);
    result = aggregate();
  } catch (e) {
    throw new OperatorFailure(operator, node.plugin, node.storeName, e);
  }
  for (const i of result.late) {
    ctx.within(items[i], () => ctx.late(node.plugin, node.storeName, items[i].record, lateReason));
  }
  return result;
}

/**
 * Count, sum, min, max and last of a number taken from each record, and optionally a count per
 * category the record falls in, per key and tumbling or hopping window, computed by the window operator once per batch: the records are held until
 * the commit, then written to the operator as columns in one call. With the record cache on,
 * each window's result is emitted once per commit (as of the record that last updated it);
 * off, every update is.
 */
export class StatsWindowAggregateNode extends ProcessorNode implements DeferringNode<Measured> {
  constructor(
    name: string,
    plugin: string,
    readonly storeName: string,
    readonly spec: TimeWindowSpec,
    // deno-lint-ignore no-explicit-any
    readonly measure: (value: any) => number,
    readonly emit: EmitStrategy,
    // deno-lint-ignore no-explicit-any
    readonly categorize: ((value: any) => string) | null = null,
  ) {
    super(name, plugin);
    this.stores.push(storeName);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (!this.hasStringKey(record, ctx, `aggregation '${this.storeName}'`)) return;
    ctx.defer(this, record, measured(this.storeName, record.value, this.measure, this.categorize));
  }

  flushDeferred(items: readonly DeferredRecord<Measured>[], ctx: ProcessorContext): void {
    const store = ctx.store<StatsWindowStore>(this.storeName);
    const n = items.length;
    const everyUpdate = this.emit === "update" && !ctx.coalesces;
    const result = aggregateHeld(
      ctx,
      this,
      "window_aggregation",
      store,
      items,
      () => store.aggregate(n, everyUpdate),
      "every window containing the record has closed (end + grace <= stream time)",
    );
    const widths = store.rows;
    if (this.emit === "close") {
      const c = result.closed;
      for (let at = 0; at < c.length; at += widths.update) {
        const key = store.keyOf(c[at + 1]);
        this.#emit(ctx, store, items[c[at]], key, c, at + 2, at + UPDATE_ROW, null);
      }
      return;
    }
    if (everyUpdate) {
      const u = result.updates;
      for (let at = 0; at < u.length; at += widths.update) {
        const item = items[u[at]];
        const key = store.keyOf(u[at + 1]);
        this.#emit(ctx, store, item, key, u, at + 2, at + UPDATE_ROW, item.record.value);
      }
      return;
    }
    // Each window updated in the batch once, least recently updated first (as the record
    // cache forwards), as of the record that last updated it; a window that closed after its
    // update too, with its final state.
    const c = result.changed;
    const updated: number[] = [];
    for (let at = 0; at < c.length; at += widths.changed) {
      if (c[at + 9] !== CLOSED) updated.push(at);
    }
    updated.sort((a, b) => c[a + 10] - c[b + 10]);
    for (const at of updated) {
      const item = items[c[at + 10]];
      const key = store.keyOf(c[at]);
      // Changed rows hold the close time after the end: stats start one field later.
      this.#emit(ctx, store, item, key, c, at + 1, at + CHANGED_ROW, item.record.value, 1);
    }
  }

  /**
   * Forwards a window's statistics from `row` (start, end, [skip], count…, and the category
   * counts from `countsAt`) as of `item`.
   */
  #emit(
    ctx: ProcessorContext,
    store: StatsWindowStore,
    item: DeferredRecord<Measured>,
    key: string,
    row: Float64Array,
    at: number,
    countsAt: number,
    event: unknown,
    skip = 0,
  ): void {
    const start = row[at];
    const end = row[at + 1];
    const s = at + 2 + skip;
    const windowed: Windowed = { key, window: { start, end } };
    const value = statsOf(store, row, s, countsAt, event);
    const timestamp = event === null ? end - 1 : item.record.timestamp;
    ctx.within(item, () => this.forward({ key: windowed, value, timestamp, headers: {} }, ctx));
  }
}
