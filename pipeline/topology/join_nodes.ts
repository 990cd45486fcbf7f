import type { KeyValueStore } from "../state/key_value_store.ts";
import type { WindowStore } from "../state/window_store.ts";
import type { JoinWindowSpec } from "../windows.ts";
import { type AnyRecord, type ProcessorContext, ProcessorNode } from "./node.ts";

// deno-lint-ignore no-explicit-any
type Joiner = (left: any, right: any, key: string) => unknown;

/** Joins each stream record with the table's current value for its key. */
export class StreamTableJoinNode extends ProcessorNode {
  constructor(
    name: string,
    plugin: string,
    readonly tableStore: string,
    readonly joiner: Joiner,
    readonly left: boolean,
  ) {
    super(name, plugin);
    this.stores.push(tableStore);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (typeof record.key !== "string") {
      if (!this.left) return;
      this.forward({ ...record, value: this.joiner(record.value, null, record.key) }, ctx);
      return;
    }
    const match = ctx.store<KeyValueStore>(this.tableStore).get(record.key);
    if (match === undefined && !this.left) return;
    this.forward({ ...record, value: this.joiner(record.value, match ?? null, record.key) }, ctx);
  }
}

/**
 * One side of a windowed stream–stream inner join: buffers its own records by time and joins
 * each with the other side's buffered records whose times are within the join window.
 */
export class StreamStreamJoinSideNode extends ProcessorNode {
  constructor(
    name: string,
    plugin: string,
    readonly ownStore: string,
    readonly otherStore: string,
    readonly spec: JoinWindowSpec,
    readonly isLeft: boolean,
    readonly joiner: Joiner,
  ) {
    super(name, plugin);
    this.stores.push(ownStore, otherStore);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (!this.hasStringKey(record, ctx, `join '${this.ownStore}'`)) return;
    const { before, after, grace } = this.spec;
    const t = record.timestamp;
    // How far the other side may be before/after this record, seen from this side.
    const lookBack = this.isLeft ? before : after;
    const lookAhead = this.isLeft ? after : before;
    if (t + Math.max(before, after) + grace <= ctx.streamTime) {
      ctx.late(this.plugin, this.ownStore, record, "the record is outside every open join window");
      return;
    }
    const own = ctx.store<WindowStore<unknown[]>>(this.ownStore);
    const existing = own.get(record.key, t);
    own.put(
      record.key,
      t,
      t,
      [...(existing?.value ?? []), record.value],
      t + Math.max(before, after) + grace,
    );
    const other = ctx.store<WindowStore<unknown[]>>(this.otherStore);
    for (const match of other.fetch(record.key, t - lookBack, t + lookAhead)) {
      for (const value of match.value) {
        const joined = this.isLeft
          ? this.joiner(record.value, value, record.key)
          : this.joiner(value, record.value, record.key);
        this.forward({
          key: record.key,
          value: joined,
          timestamp: Math.max(t, match.start),
          headers: record.headers,
        }, ctx);
      }
    }
  }

  override advance(ctx: ProcessorContext): void {
    ctx.store<WindowStore>(this.ownStore).closeUpTo(ctx.streamTime);
  }
}
