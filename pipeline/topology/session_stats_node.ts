import type { Windowed } from "../record.ts";
import { SESSION_CLOSED_ROW, SESSION_UPDATE_ROW } from "../wasm/session_kernel.ts";
import type { SessionStatsStore } from "../wasm/session_stats_store.ts";
import type { SessionWindowSpec } from "../windows.ts";
import type { EmitStrategy, RetractStrategy } from "./aggregate_nodes.ts";
import {
  type AnyRecord,
  type CachingNode,
  type DeferredRecord,
  type DeferringNode,
  type ProcessorContext,
  ProcessorNode,
} from "./node.ts";
import {
  aggregateHeld,
  type Measured,
  measured,
  statsOf,
  type WindowStatsOf,
} from "./stats_window_node.ts";

/**
 * Count, sum, min, max and last of a number taken from each record, and optionally a count per
 * category, per key and session, computed by the session operator once per batch: the records
 * are held until the commit, then written to the operator as columns in one call. Its updates
 * and retractions (null: a session absorbed into another, or with `retract: "all"` whose bounds
 * changed) then go downstream in record order, through the record cache as those of a JS session
 * aggregation do: with the cache on, once per session and commit.
 */
export class SessionStatsNode extends ProcessorNode
  implements DeferringNode<Measured>, CachingNode {
  constructor(
    name: string,
    plugin: string,
    readonly storeName: string,
    readonly spec: SessionWindowSpec,
    // deno-lint-ignore no-explicit-any
    readonly measure: (value: any) => number,
    readonly emit: EmitStrategy,
    readonly retract: RetractStrategy,
    // deno-lint-ignore no-explicit-any
    readonly categorize: ((value: any) => string) | null,
  ) {
    super(name, plugin);
    this.stores.push(storeName);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (!this.hasStringKey(record, ctx, `aggregation '${this.storeName}'`)) return;
    ctx.defer(this, record, measured(this.storeName, record.value, this.measure, this.categorize));
  }

  flushDeferred(items: readonly DeferredRecord<Measured>[], ctx: ProcessorContext): void {
    const store = ctx.store<SessionStatsStore>(this.storeName);
    const n = items.length;
    const result = aggregateHeld(
      ctx,
      this,
      "session_windows",
      store,
      items,
      () => store.aggregate(n),
      "the record's session has closed (end + gap + grace <= stream time)",
    );
    const widths = store.rows;
    if (this.emit === "close") {
      const c = result.closed;
      for (let at = 0; at < c.length; at += widths.closed) {
        const key = store.keyOf(c[at + 1]);
        const value = statsOf(store, c, at + 4, at + SESSION_CLOSED_ROW, null);
        const record = this.#record(key, c[at + 2], c[at + 3], value, c[at + 3]);
        ctx.within(items[c[at]], () => this.forward(record, ctx));
      }
      return;
    }
    const u = result.updates;
    for (let at = 0; at < u.length; at += widths.update) {
      const item = items[u[at]];
      const key = store.keyOf(u[at + 2]);
      const start = u[at + 3];
      const end = u[at + 4];
      const value = u[at + 1] === 1
        ? null
        : statsOf(store, u, at + 5, at + SESSION_UPDATE_ROW, item.record.value);
      const record = this.#record(key, start, end, value, item.record.timestamp);
      const cacheKey = this.retract === "merged" ? `${key}@${start}` : `${key}@${start}-${end}`;
      ctx.within(item, () => ctx.emitCached(this, cacheKey, record));
    }
  }

  flushCached(record: AnyRecord, ctx: ProcessorContext): void {
    this.forward(record, ctx);
  }

  #record(
    key: string,
    start: number,
    end: number,
    value: WindowStatsOf<unknown> | null,
    timestamp: number,
  ): AnyRecord {
    const windowed: Windowed = { key, window: { start, end } };
    return { key: windowed, value, timestamp, headers: {} };
  }
}
