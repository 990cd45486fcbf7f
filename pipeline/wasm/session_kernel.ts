/**
 * Session windows (count, sum, min, max, last and a count per category per key and session) as
 * one call per batch over columns, in two implementations behind one interface: the
 * WebAssembly operator, whose sessions live in linear memory, and a TypeScript reference.
 */
import * as wasm from "../../operators-wasm/build/session_windows.wasm";
import { ExpiryQueue } from "./expiry_queue.ts";
import { MemoryViews } from "./memory_views.ts";
import type { OperatorMode } from "./window_kernel.ts";

/**
 * f64s per update row: record, retraction (1: the session's old bounds, zeros after) or update
 * (0), key, start, end, count, sum, min, max, last, then the category counts.
 */
export const SESSION_UPDATE_ROW = 10;
/** f64s per closed row: record, key, start, end, count, sum, min, max, last, category counts. */
export const SESSION_CLOSED_ROW = 9;
/** f64s per session in a changed row: start, end, count, sum, min, max, last, category counts. */
export const SESSION_FIELDS = 7;
/** Keys per page of a dump, and per call of a load. */
const DUMP_PAGE_KEYS = 2048;

/** f64s per row of each kind: a changed row is a key, its session count and `perKey` sessions. */
export interface SessionRowWidths {
  readonly categories: number;
  readonly update: number;
  readonly closed: number;
  readonly session: number;
  readonly changed: number;
}

function rowWidths(categories: number, perKey: number): SessionRowWidths {
  const session = SESSION_FIELDS + categories;
  return {
    categories,
    update: SESSION_UPDATE_ROW + categories,
    closed: SESSION_CLOSED_ROW + categories,
    session,
    changed: 2 + perKey * session,
  };
}

/** The batch's columns, to fill before `aggregate` (valid until the next call). */
export interface SessionColumns {
  readonly keys: Int32Array;
  readonly times: Float64Array;
  readonly values: Float64Array;
  /** Each record's category (0 to categories - 1; -1: none). */
  readonly categories: Int32Array;
  readonly streamTimes: Float64Array;
}

/** What a batch did (views valid until the next call). */
export interface SessionResult {
  /** In record order: each record's retractions, then its session's update. */
  readonly updates: Float64Array;
  readonly closed: Float64Array;
  readonly late: Int32Array;
  /** Keys whose sessions changed, once each, with all their sessions (none: deleted). */
  readonly changed: Float64Array;
}

export interface SessionKernel {
  readonly categories: number;
  /** Live sessions a key has room for (see `sessionsPerKey`). */
  readonly perKey: number;
  readonly rows: SessionRowWidths;
  prepare(n: number): SessionColumns;
  aggregate(n: number): SessionResult;
  /** Loads keys' sessions (changed rows) after a restart. */
  load(rows: Float64Array): void;
  /** Every key's sessions, as changed rows, in pages. */
  dump(): Iterable<Float64Array>;
  readonly liveSessions: number;
  release(): void;
}

/**
 * Live sessions a key can have: they are more than `gap` apart and all end within gap + grace of
 * stream time, so at most 2 + grace / gap of them.
 */
export function sessionsPerKey(gap: number, grace: number): number {
  return 2 + Math.floor(grace / gap);
}

/**
 * Sessions separated by `gap` ms of inactivity, open `grace` ms after, counting `categories`
 * categories; `retractAll`: a session whose bounds change is retracted, else only one absorbed.
 * Room for `perKey` sessions per key (more than `sessionsPerKey` when state written with other
 * bounds holds more).
 */
export function sessionKernel(
  mode: OperatorMode,
  gap: number,
  grace: number,
  categories: number,
  retractAll: boolean,
  perKey = sessionsPerKey(gap, grace),
): SessionKernel {
  return mode === "wasm"
    ? new WasmSessionKernel(gap, grace, categories, retractAll, perKey)
    : new TsSessionKernel(gap, grace, categories, retractAll, perKey);
}

const views = new MemoryViews(wasm.memory);

class WasmSessionKernel implements SessionKernel {
  readonly #id: number;
  readonly rows: SessionRowWidths;

  constructor(
    gap: number,
    grace: number,
    readonly categories: number,
    retractAll: boolean,
    readonly perKey: number,
  ) {
    this.#id = wasm.create(gap, grace, categories, retractAll ? 1 : 0, perKey);
    this.rows = rowWidths(categories, perKey);
  }

  prepare(n: number): SessionColumns {
    wasm.prepare(this.#id, n);
    const f64 = views.f64;
    const i32 = views.i32;
    const f = (ptr: number) => f64.subarray(ptr / 8, ptr / 8 + n);
    const i = (ptr: number) => i32.subarray(ptr / 4, ptr / 4 + n);
    return {
      keys: i(wasm.keysPtr()),
      times: f(wasm.timesPtr()),
      values: f(wasm.valuesPtr()),
      categories: i(wasm.categoriesPtr()),
      streamTimes: f(wasm.streamTimesPtr()),
    };
  }

  aggregate(n: number): SessionResult {
    const updates = wasm.aggregate(this.#id, n);
    const f64 = views.f64;
    const rows = (ptr: number, count: number, width: number) =>
      f64.subarray(ptr / 8, ptr / 8 + count * width);
    return {
      updates: rows(wasm.updatesPtr(), updates, this.rows.update),
      closed: rows(wasm.closedPtr(), wasm.closedRows(), this.rows.closed),
      late: views.i32.subarray(wasm.latePtr() / 4, wasm.latePtr() / 4 + wasm.lateRows()),
      changed: rows(wasm.changedPtr(), wasm.changedRows(), this.rows.changed),
    };
  }

  load(rows: Float64Array): void {
    const step = DUMP_PAGE_KEYS * this.rows.changed;
    for (let at = 0; at < rows.length; at += step) {
      const page = rows.subarray(at, at + step);
      const n = page.length / this.rows.changed;
      const ptr = wasm.prepareLoad(this.#id, n);
      views.f64.set(page, ptr / 8);
      wasm.loadSessions(this.#id, n);
    }
  }

  *dump(): Iterable<Float64Array> {
    let from = 0;
    while (from >= 0) {
      const n = wasm.dump(this.#id, from, DUMP_PAGE_KEYS);
      from = wasm.dumpedTo();
      const at = wasm.changedPtr() / 8;
      if (n > 0) yield views.f64.slice(at, at + n * this.rows.changed);
    }
  }

  get liveSessions(): number {
    return wasm.liveSessions(this.#id);
  }

  release(): void {
    wasm.release(this.#id);
  }
}

/** A session: start, end, count, sum, min, max, last, then the category counts. */
type TsSession = number[];

/** The reference: the same rules over a Map of each key's sessions, row for row the same. */
class TsSessionKernel implements SessionKernel {
  readonly #sessions = new Map<number, TsSession[]>();
  /** Keys by time: a key is looked at when stream time reaches it (as the operator's heap). */
  readonly #expiry = new ExpiryQueue<number>();
  #epoch = 0;
  #changedAt = new Map<number, number>();
  #columns: SessionColumns = emptyColumns(0);
  #live = 0;
  readonly rows: SessionRowWidths;

  constructor(
    readonly gap: number,
    readonly grace: number,
    readonly categories: number,
    readonly retractAll: boolean,
    readonly perKey: number,
  ) {
    this.rows = rowWidths(categories, perKey);
  }

  prepare(n: number): SessionColumns {
    return this.#columns = emptyColumns(n);
  }

  #close(s: TsSession): number {
    return s[1] + this.gap + this.grace;
  }

  aggregate(n: number): SessionResult {
    const epoch = ++this.#epoch;
    const changedKeys: number[] = [];
    const touch = (key: number) => {
      if (this.#changedAt.get(key) === epoch) return;
      this.#changedAt.set(key, epoch);
      changedKeys.push(key);
    };
    const { keys, times, values, categories, streamTimes } = this.#columns;
    const updates: number[] = [];
    const closed: number[] = [];
    const late: number[] = [];
    const width = SESSION_FIELDS + this.categories;
    for (let r = 0; r < n; r++) {
      const streamTime = streamTimes[r];
      this.#closeUpTo(streamTime, r, closed, touch);
      const key = keys[r];
      const t = times[r];
      const v = values[r];
      const category = this.categories > 0 ? categories[r] : -1;
      const list = this.#sessions.get(key) ?? [];
      const near = list.filter((s) => s[0] <= t + this.gap && s[1] >= t - this.gap);
      if (near.length === 0 && t + this.gap + this.grace <= streamTime) {
        late.push(r);
        continue;
      }
      let target: TsSession;
      if (near.length === 0) {
        if (list.length === this.perKey) throw new Error(`more than ${this.perKey} sessions`);
        target = [t, t, 0, 0, Infinity, -Infinity, 0, ...Array(this.categories).fill(0)];
        list.push(target);
        list.sort((a, b) => a[0] - b[0]);
        this.#sessions.set(key, list);
        this.#live++;
        this.#expiry.push(this.#close(target), key);
      } else {
        const [first, second] = near;
        const start = Math.min(t, first[0]);
        const end = Math.max(t, (second ?? first)[1]);
        const retraction = (s: TsSession) =>
          updates.push(r, 1, key, s[0], s[1], ...Array(width - 2).fill(0));
        if (first[0] !== start || (this.retractAll && first[1] !== end)) retraction(first);
        if (second) {
          retraction(second);
          first[2] += second[2];
          first[3] += second[3];
          first[4] = Math.min(first[4], second[4]);
          first[5] = Math.max(first[5], second[5]);
          for (let c = 0; c < this.categories; c++) {
            first[SESSION_FIELDS + c] += second[SESSION_FIELDS + c];
          }
          list.splice(list.indexOf(second), 1);
          this.#live--;
        }
        first[0] = start;
        first[1] = end;
        target = first;
      }
      target[2] += 1;
      target[3] += v;
      target[4] = Math.min(target[4], v);
      target[5] = Math.max(target[5], v);
      target[6] = v;
      if (category >= 0 && category < this.categories) target[SESSION_FIELDS + category]++;
      touch(key);
      updates.push(r, 0, key, ...target);
    }
    const changed: number[] = [];
    for (const key of changedKeys) {
      const list = this.#sessions.get(key) ?? [];
      changed.push(...this.#keyRow(key, list));
    }
    return {
      updates: Float64Array.from(updates),
      closed: Float64Array.from(closed),
      late: Int32Array.from(late),
      changed: Float64Array.from(changed),
    };
  }

  /** A key's changed row: key, session count, its sessions, zeros up to `perKey`. */
  #keyRow(key: number, list: TsSession[]): number[] {
    const row = [key, list.length, ...list.flat()];
    while (row.length < this.rows.changed) row.push(0);
    return row;
  }

  #closeUpTo(
    streamTime: number,
    record: number,
    closed: number[],
    touch: (key: number) => void,
  ): void {
    while (this.#expiry.peek() <= streamTime) {
      const { item: key } = this.#expiry.pop();
      const list = this.#sessions.get(key);
      if (!list) continue;
      const open = list.filter((s) => this.#close(s) > streamTime);
      for (const s of list) if (this.#close(s) <= streamTime) closed.push(record, key, ...s);
      if (open.length === list.length) {
        this.#expiry.push(Math.min(...open.map((s) => this.#close(s))), key);
        continue;
      }
      this.#live -= list.length - open.length;
      touch(key);
      if (open.length === 0) {
        this.#sessions.delete(key);
        continue;
      }
      this.#sessions.set(key, open);
      this.#expiry.push(Math.min(...open.map((s) => this.#close(s))), key);
    }
  }

  load(rows: Float64Array): void {
    const w = this.rows;
    for (let at = 0; at < rows.length; at += w.changed) {
      const key = rows[at];
      const n = rows[at + 1];
      const list: TsSession[] = [];
      for (let i = 0; i < n; i++) {
        const from = at + 2 + i * w.session;
        list.push([...rows.subarray(from, from + w.session)]);
      }
      this.#live += n - (this.#sessions.get(key)?.length ?? 0);
      if (n === 0) this.#sessions.delete(key);
      else this.#sessions.set(key, list);
      for (const s of list) this.#expiry.push(this.#close(s), key);
    }
  }

  *dump(): Iterable<Float64Array> {
    let out: number[] = [];
    for (const [key, list] of this.#sessions) {
      out.push(...this.#keyRow(key, list));
      if (out.length === DUMP_PAGE_KEYS * this.rows.changed) {
        yield Float64Array.from(out);
        out = [];
      }
    }
    if (out.length > 0) yield Float64Array.from(out);
  }

  get liveSessions(): number {
    return this.#live;
  }

  release(): void {
    this.#sessions.clear();
    this.#expiry.clear();
  }
}

function emptyColumns(n: number): SessionColumns {
  return {
    keys: new Int32Array(n),
    times: new Float64Array(n),
    values: new Float64Array(n),
    categories: new Int32Array(n),
    streamTimes: new Float64Array(n),
  };
}
