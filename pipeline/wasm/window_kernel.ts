/**
 * Windowed aggregation (count, sum, min, max, last per key and tumbling or hopping window, and
 * optionally a count per category) as one call per batch over columns, in two implementations behind one interface: the
 * WebAssembly operator, whose windows live in linear memory, and a TypeScript reference.
 */
import * as wasm from "../../operators-wasm/build/window_aggregation.wasm";
import { ExpiryQueue } from "./expiry_queue.ts";
import { MemoryViews } from "./memory_views.ts";

/** f64s per update row and per closed row: record, key, start, end, count, sum, min, max, last. */
export const UPDATE_ROW = 9;
/**
 * f64s per changed row: key, start, end, close, count, sum, min, max, last, live (OPEN, CLOSED
 * or UPDATED_CLOSED), and the batch's record that last updated the window (-1 in a dump), or
 * for a CLOSED one the record that closed it. A CLOSED row's statistics are zeros; an
 * UPDATED_CLOSED window was updated in the batch before it closed, its row holds its final state.
 */
export const CHANGED_ROW = 11;
export const CLOSED = 0;
export const OPEN = 1;
export const UPDATED_CLOSED = 2;
/** f64s per loaded row: key, start, end, close, count, sum, min, max, last. */
export const LOAD_ROW = 9;
/** Windows per page of a dump, and per call of a load: bounds the columns' memory. */
export const DUMP_PAGE_ROWS = 4096;

/**
 * f64s per row of each kind for a kernel counting `categories` categories: the counts per
 * category (0, 1, …) end every row, after the fields above (zeros in a closed window's changed
 * row).
 */
export interface RowWidths {
  readonly update: number;
  readonly changed: number;
  readonly load: number;
}

export function rowWidths(categories: number): RowWidths {
  return {
    update: UPDATE_ROW + categories,
    changed: CHANGED_ROW + categories,
    load: LOAD_ROW + categories,
  };
}

/** The batch's columns, to fill before `aggregate` (valid until the next call). */
export interface WindowColumns {
  /** Interned key ids. */
  readonly keys: Int32Array;
  /** Event times. */
  readonly times: Float64Array;
  readonly values: Float64Array;
  /** The task's stream time when each record arrived. */
  readonly streamTimes: Float64Array;
  /** Each record's category (0 to categories - 1; -1: none). Read only when counting some. */
  readonly categories: Int32Array;
}

/** What a batch did (views valid until the next call). */
export interface WindowResult {
  /** One row per window a record updated, with the window's aggregate after the update. */
  readonly updates: Float64Array;
  /** Windows closed (stream time past end + grace), the record that closed them first. */
  readonly closed: Float64Array;
  /** Records every window of which had closed. */
  readonly late: Int32Array;
  /** Windows changed in the batch, once each, with their state (or closed: live 0). */
  readonly changed: Float64Array;
}

/** A store partition of windows. */
export interface WindowKernel {
  /** How many categories its windows count. */
  readonly categories: number;
  readonly rows: RowWidths;
  /** Columns for a batch of `n` records. */
  prepare(n: number): WindowColumns;
  /** Applies the batch; `updates` holds every update only `withUpdates` (else it is empty). */
  aggregate(n: number, withUpdates: boolean): WindowResult;
  /** Loads windows (rows of `rows.load`) after a restart. */
  load(rows: Float64Array): void;
  /** Every live window, as changed rows in pages of at most DUMP_PAGE_ROWS (for a snapshot). */
  dump(): Iterable<Float64Array>;
  readonly liveWindows: number;
  /** Frees its memory (a closed pipeline's store); unusable after. */
  release(): void;
}

/** Which implementation runs a plugin's operators (config: `"operators"`). */
export type OperatorMode = "wasm" | "ts";

/**
 * Windows of `size` ms every `advance` ms, open `grace` ms after their end, counting records
 * per category of `categories`.
 */
export function windowKernel(
  mode: OperatorMode,
  size: number,
  advance: number,
  grace: number,
  categories = 0,
): WindowKernel {
  return mode === "wasm"
    ? new WasmWindowKernel(size, advance, grace, categories)
    : new TsWindowKernel(size, advance, grace, categories);
}

const views = new MemoryViews(wasm.memory);

/** The WebAssembly operator: one store of the shared module. */
class WasmWindowKernel implements WindowKernel {
  readonly #id: number;
  readonly rows: RowWidths;

  constructor(size: number, advance: number, grace: number, readonly categories: number) {
    this.#id = wasm.create(size, advance, grace, categories);
    this.rows = rowWidths(categories);
  }

  prepare(n: number): WindowColumns {
    // May grow the memory: every view is taken after it.
    wasm.prepare(this.#id, n);
    const f64 = views.f64;
    return {
      keys: views.i32.subarray(wasm.keysPtr() / 4, wasm.keysPtr() / 4 + n),
      times: f64.subarray(wasm.timesPtr() / 8, wasm.timesPtr() / 8 + n),
      values: f64.subarray(wasm.valuesPtr() / 8, wasm.valuesPtr() / 8 + n),
      streamTimes: f64.subarray(wasm.streamTimesPtr() / 8, wasm.streamTimesPtr() / 8 + n),
      categories: views.i32.subarray(wasm.categoriesPtr() / 4, wasm.categoriesPtr() / 4 + n),
    };
  }

  aggregate(n: number, withUpdates: boolean): WindowResult {
    const updates = wasm.aggregate(this.#id, n, withUpdates ? 1 : 0);
    const f64 = views.f64;
    const rows = (ptr: number, count: number, width: number) =>
      f64.subarray(ptr / 8, ptr / 8 + count * width);
    return {
      updates: rows(wasm.updatesPtr(), updates, this.rows.update),
      closed: rows(wasm.closedPtr(), wasm.closedRows(), this.rows.update),
      late: views.i32.subarray(wasm.latePtr() / 4, wasm.latePtr() / 4 + wasm.lateRows()),
      changed: rows(wasm.changedPtr(), wasm.changedRows(), this.rows.changed),
    };
  }

  load(rows: Float64Array): void {
    const step = DUMP_PAGE_ROWS * this.rows.load;
    for (let at = 0; at < rows.length; at += step) {
      const page = rows.subarray(at, at + step);
      const n = page.length / this.rows.load;
      const ptr = wasm.prepareLoad(this.#id, n);
      views.f64.set(page, ptr / 8);
      wasm.loadWindows(this.#id, n);
    }
  }

  *dump(): Iterable<Float64Array> {
    let from = 0;
    while (from >= 0) {
      const n = wasm.dump(this.#id, from, DUMP_PAGE_ROWS);
      from = wasm.dumpedTo();
      const at = wasm.changedPtr() / 8;
      if (n > 0) yield views.f64.slice(at, at + n * this.rows.changed);
    }
  }

  get liveWindows(): number {
    return wasm.liveWindows(this.#id);
  }

  release(): void {
    wasm.release(this.#id);
  }
}

interface TsWindow {
  key: number;
  start: number;
  end: number;
  close: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  last: number;
  /** Records per category. */
  counts: number[];
  /** The batch it last changed in, and the record of that batch. */
  epoch: number;
  record: number;
}

/** The reference: the same rules over a Map, row for row the same results. */
class TsWindowKernel implements WindowKernel {
  readonly #windows = new Map<string, TsWindow>();
  /** Windows by close time, as the operator's expiry heap pops them. */
  readonly #expiry = new ExpiryQueue<string>();
  #epoch = 0;
  #columns: WindowColumns = emptyColumns(0);
  readonly rows: RowWidths;

  constructor(
    readonly size: number,
    readonly advance: number,
    readonly grace: number,
    readonly categories: number,
  ) {
    this.rows = rowWidths(categories);
  }

  prepare(n: number): WindowColumns {
    return this.#columns = emptyColumns(n);
  }

  aggregate(n: number, withUpdates: boolean): WindowResult {
    const epoch = ++this.#epoch;
    const { keys, times, values, streamTimes, categories } = this.#columns;
    const updates: number[] = [];
    const closed: number[] = [];
    const late: number[] = [];
    const changed: number[] = [];
    const touched: TsWindow[] = [];
    for (let i = 0; i < n; i++) {
      const streamTime = streamTimes[i];
      this.#closeUpTo(streamTime, i, epoch, closed, changed);
      const key = keys[i];
      const t = times[i];
      const v = values[i];
      const category = this.categories > 0 ? categories[i] : -1;
      const lastStart = t - floorMod(t, this.advance);
      const first = lastStart -
        (Math.ceil((lastStart - t + this.size) / this.advance) - 1) * this.advance;
      let open = false;
      for (let s = first; s <= lastStart; s += this.advance) {
        if (s + this.size + this.grace <= streamTime) continue;
        open = true;
        const id = `${key}|${s}`;
        let w = this.#windows.get(id);
        if (!w) {
          w = {
            key,
            start: s,
            end: s + this.size,
            close: s + this.size + this.grace,
            count: 0,
            sum: 0,
            min: Infinity,
            max: -Infinity,
            last: 0,
            counts: Array(this.categories).fill(0),
            epoch: -1,
            record: -1,
          };
          this.#windows.set(id, w);
          this.#expiry.push(w.close, id);
        }
        w.count += 1;
        w.sum += v;
        w.min = Math.min(w.min, v);
        w.max = Math.max(w.max, v);
        w.last = v;
        if (category >= 0 && category < this.categories) w.counts[category]++;
        w.record = i;
        if (w.epoch !== epoch) {
          w.epoch = epoch;
          touched.push(w);
        }
        if (withUpdates) {
          updates.push(i, key, s, s + this.size, w.count, w.sum, w.min, w.max, v, ...w.counts);
        }
      }
      if (!open) late.push(i);
    }
    for (const w of touched) {
      if (w.epoch !== epoch || this.#windows.get(`${w.key}|${w.start}`) !== w) continue;
      w.epoch = -1;
      pushChanged(changed, w, OPEN, w.record);
    }
    return {
      updates: Float64Array.from(updates),
      closed: Float64Array.from(closed),
      late: Int32Array.from(late),
      changed: Float64Array.from(changed),
    };
  }

  #closeUpTo(
    streamTime: number,
    record: number,
    epoch: number,
    closed: number[],
    changed: number[],
  ): void {
    while (this.#expiry.peek() <= streamTime) {
      const { time: close, item: id } = this.#expiry.pop();
      const w = this.#windows.get(id);
      if (!w || w.close !== close) continue;
      this.#windows.delete(id);
      closed.push(record, w.key, w.start, w.end, w.count, w.sum, w.min, w.max, w.last, ...w.counts);
      if (w.epoch === epoch) pushChanged(changed, w, UPDATED_CLOSED, w.record);
      else pushChanged(changed, w, CLOSED, record);
    }
  }

  load(rows: Float64Array): void {
    for (let i = 0; i < rows.length; i += this.rows.load) {
      // A window's end and close follow from its start, as the operator derives them.
      const [key, start, , , count, sum, min, max, last] = rows.subarray(i, i + LOAD_ROW);
      const end = start + this.size;
      const close = end + this.grace;
      const counts = [...rows.subarray(i + LOAD_ROW, i + this.rows.load)];
      const id = `${key}|${start}`;
      this.#windows.set(id, {
        key,
        start,
        end,
        close,
        count,
        sum,
        min,
        max,
        last,
        counts,
        epoch: -1,
        record: -1,
      });
      this.#expiry.push(close, id);
    }
  }

  *dump(): Iterable<Float64Array> {
    let out: number[] = [];
    for (const w of this.#windows.values()) {
      pushChanged(out, w, OPEN, -1);
      if (out.length === DUMP_PAGE_ROWS * this.rows.changed) {
        yield Float64Array.from(out);
        out = [];
      }
    }
    if (out.length > 0) yield Float64Array.from(out);
  }

  get liveWindows(): number {
    return this.#windows.size;
  }

  release(): void {
    this.#windows.clear();
    this.#expiry.clear();
  }
}

/** Appends a window's changed row; a CLOSED one's statistics and counts are zeros. */
function pushChanged(out: number[], w: TsWindow, live: number, record: number): void {
  out.push(w.key, w.start, w.end, w.close);
  if (live === CLOSED) {
    out.push(0, 0, 0, 0, 0, CLOSED, record);
    for (let c = 0; c < w.counts.length; c++) out.push(0);
  } else {
    out.push(w.count, w.sum, w.min, w.max, w.last, live, record, ...w.counts);
  }
}

function emptyColumns(n: number): WindowColumns {
  return {
    keys: new Int32Array(n),
    times: new Float64Array(n),
    values: new Float64Array(n),
    streamTimes: new Float64Array(n),
    categories: new Int32Array(n),
  };
}

function floorMod(a: number, n: number): number {
  return a - Math.floor(a / n) * n;
}
