/**
 * A store partition of windowed statistics whose windows live in a window kernel (WebAssembly
 * linear memory, or the TypeScript reference), persisted as binary pages of changed windows and
 * loaded back into the kernel on start (see CountingStore).
 */
import { ByteReader, type ByteWriter } from "../state/byte_codec.ts";
import { applyEntries } from "../state/binary_pages.ts";
import type { TimeWindowSpec } from "../windows.ts";
import { NONE, readCounts, writeCounts } from "./categories.ts";
import { byKeyAndStart, CountingStore } from "./counting_store.ts";
import {
  CHANGED_ROW,
  LOAD_ROW,
  OPEN,
  type OperatorMode,
  type WindowColumns,
  type WindowKernel,
  windowKernel,
  type WindowResult,
} from "./window_kernel.ts";

/**
 * A window's statistics: count, sum, min, max and last value of what it received, and how many
 * of its records fell in each category (empty when the store counts no categories).
 */
export interface WindowStats {
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly last: number;
  readonly counts: Readonly<Record<string, number>>;
}

/** A live window of a store, as queries and tests see it. */
export interface StatsWindow {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly stats: WindowStats;
}

/** A window as stored: its key, the LOAD_ROW fields after the key id, its category counts. */
interface StoredWindow {
  readonly key: string;
  /** start, end, close, count, sum, min, max, last */
  readonly fields: Float64Array;
  /** Records per category name (only categories it has records of). */
  readonly counts: ReadonlyMap<string, number>;
}

/** Windows per snapshot page. */
const SNAPSHOT_PAGE_WINDOWS = 1000;

export class StatsWindowStore extends CountingStore<WindowKernel> {
  protected kernel: WindowKernel;
  /** Windows read from KV or a changelog topic, until `open` hands them to the kernel. */
  #loading: Map<string, StoredWindow> | null = new Map();

  private constructor(
    readonly name: string,
    readonly spec: TimeWindowSpec,
    readonly mode: OperatorMode,
  ) {
    super();
    this.kernel = this.#newKernel(0);
  }

  #newKernel(categories: number): WindowKernel {
    const { size, advance, grace } = this.spec;
    return windowKernel(this.mode, size, advance, grace, categories);
  }

  /** Reads the store's pages under `prefix`; `open` must follow (after any restore). */
  static async load(
    kv: Deno.Kv,
    prefix: Deno.KvKey,
    name: string,
    spec: TimeWindowSpec,
    mode: OperatorMode,
  ): Promise<StatsWindowStore> {
    const store = new StatsWindowStore(name, spec, mode);
    await store.loadPages(
      kv,
      prefix,
      (bytes) => applyEntries(store.#loading!, decodeEntries(bytes)),
      SNAPSHOT_PAGE_WINDOWS,
    );
    return store;
  }

  /** Loads the windows read so far into the kernel. */
  open(): this {
    const windows = [...this.#loading!.values()];
    this.#loading = null;
    for (const w of windows) for (const name of w.counts.keys()) this.names.intern(name);
    this.kernel.release();
    this.kernel = this.#newKernel(this.names.size);
    const width = this.kernel.rows.load;
    const rows = new Float64Array(windows.length * width);
    windows.forEach((w, i) => {
      rows[i * width] = this.intern(w.key);
      rows.set(w.fields, i * width + 1);
      this.names.place(w.counts, rows, i * width + LOAD_ROW);
    });
    this.kernel.load(rows);
    return this;
  }

  protected get loading(): boolean {
    return this.#loading !== null;
  }

  protected widen(categories: number): void {
    const old = this.kernel;
    const next = this.#newKernel(categories);
    const from = old.rows.changed;
    const to = next.rows.load;
    for (const page of old.dump()) {
      const n = page.length / from;
      const rows = new Float64Array(n * to);
      for (let i = 0; i < n; i++) {
        rows.set(page.subarray(i * from, i * from + LOAD_ROW), i * to);
        rows.set(page.subarray(i * from + CHANGED_ROW, (i + 1) * from), i * to + LOAD_ROW);
      }
      next.load(rows);
    }
    old.release();
    this.kernel = next;
  }

  /** f64s per row of each kind the kernel writes. */
  get rows() {
    return this.kernel.rows;
  }

  /** Columns for a batch of `n` records (fill them, then `aggregate`). */
  prepare(n: number): WindowColumns {
    return this.kernel.prepare(n);
  }

  /** Applies a prepared batch; its changed windows are persisted with the next commit. */
  aggregate(n: number, withUpdates: boolean): WindowResult {
    const result = this.kernel.aggregate(n, withUpdates);
    const c = result.changed;
    const width = this.kernel.rows.changed;
    for (let at = 0; at < c.length; at += width) {
      const key = this.keys.keyOf(c[at]);
      const live = c[at + 9] === OPEN;
      encodeEntry(this.delta, key, c[at + 1], live ? c : null, at + 1, this.#rowCounts(c, at));
    }
    return result;
  }

  get size(): number {
    return this.#loading ? this.#loading.size : this.kernel.liveWindows;
  }

  /** A changed row's category counts by name (none when the store counts no categories). */
  #rowCounts(row: Float64Array, at: number): ReadonlyMap<string, number> {
    return this.names.named(row, at + CHANGED_ROW, this.kernel.categories);
  }

  protected changes(delta: Uint8Array): [string, string | null][] {
    return [...decodeEntries(delta)].map(([id, w]) => [id, w && changeText(w)]);
  }

  /**
   * Writes every window live now into a snapshot's pages: the kernel's dump is copied at once
   * (its slots move as its table grows), and encoded a page per commit.
   */
  protected snapshotEntries(): (page: ByteWriter) => Iterator<unknown> {
    const dumps = [...this.kernel.dump()];
    const width = this.kernel.rows.changed;
    const categories = this.kernel.categories;
    const keys = this.keys;
    const names = this.names;
    return function* (page) {
      for (const dump of dumps) {
        for (let at = 0; at < dump.length; at += width) {
          const counts = names.named(dump, at + CHANGED_ROW, categories);
          encodeEntry(page, keys.keyOf(dump[at]), dump[at + 1], dump, at + 1, counts);
          yield;
        }
      }
    };
  }

  applyChange(id: string, text: string | null): void {
    const bar = id.indexOf("|");
    const start = Number(id.slice(0, bar));
    const key = id.slice(bar + 1);
    let fields: Float64Array | null = null;
    let counts = NONE;
    if (text === null) this.#loading!.delete(id);
    else {
      const [length, grace, count, sum, min, max, last, named] = JSON.parse(text) as [
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        Record<string, number>?,
      ];
      fields = Float64Array.of(
        start,
        start + length,
        start + length + grace,
        count,
        sum,
        min,
        max,
        last,
      );
      counts = new Map(Object.entries(named ?? {}));
      this.#loading!.set(id, { key, fields, counts });
    }
    encodeEntry(this.delta, key, start, fields, 0, counts);
  }

  clear(): void {
    for (const w of this.#loading!.values()) {
      encodeEntry(this.delta, w.key, w.fields[0], null, 0, NONE);
    }
    this.#loading!.clear();
  }

  /** Every live window under its changelog id, with its end and statistics. */
  *entries(): Iterable<[string, { end: number } & WindowStats]> {
    for (const w of this.all()) yield [windowId(w.key, w.start), { end: w.end, ...w.stats }];
  }

  /** Every live window as (key, start, end, stats), for queries and tests. */
  all(): StatsWindow[] {
    const out: StatsWindow[] = [];
    const width = this.kernel.rows.changed;
    for (const dump of this.kernel.dump()) {
      for (let at = 0; at < dump.length; at += width) {
        out.push(this.window(dump, at, at + 1, at + 4, at + CHANGED_ROW));
      }
    }
    return byKeyAndStart(out);
  }
}

/** A window's id in a changelog topic, as window stores name them: start, '|', key. */
function windowId(key: string, start: number): string {
  return `${start}|${key}`;
}

/**
 * A window's changelog value: [end - start, close - end, count, sum, min, max, last], and its
 * counts by category when it has any.
 */
function changeText(w: StoredWindow): string {
  const f = w.fields;
  const stats = [f[1] - f[0], f[2] - f[1], f[3], f[4], f[5], f[6], f[7]];
  return JSON.stringify(w.counts.size > 0 ? [...stats, Object.fromEntries(w.counts)] : stats);
}

/** Flag bits of an entry: the window is live, and has category counts. */
const LIVE = 1;
const COUNTED = 2;

/**
 * Writes one window: key (u16 length, UTF-8), flags (u8), start (f64), and when live end,
 * close, count, sum, min, max, last (f64 each, `fields[at + 1…7]`), then when counted the
 * number of categories (u16) and each one's name and count (f64); little-endian.
 */
function encodeEntry(
  w: ByteWriter,
  key: string,
  start: number,
  fields: Float64Array | null,
  at: number,
  counts: ReadonlyMap<string, number>,
): void {
  w.str(key);
  const counted = fields !== null && counts.size > 0;
  w.u8(fields ? LIVE | (counted ? COUNTED : 0) : 0);
  w.f64(start);
  if (fields) { for (let f = 1; f < 8; f++) w.f64(fields[at + f]); }
  if (counted) writeCounts(w, counts);
}

/** The windows of a page, as (id, window or null for a deletion). */
function* decodeEntries(bytes: Uint8Array): Generator<[string, StoredWindow | null]> {
  const r = new ByteReader(bytes);
  while (!r.done) {
    const key = r.str();
    const flags = r.u8();
    const start = r.f64();
    if ((flags & LIVE) === 0) {
      yield [windowId(key, start), null];
      continue;
    }
    const fields = new Float64Array(8);
    fields[0] = start;
    for (let f = 1; f < 8; f++) fields[f] = r.f64();
    const counts = (flags & COUNTED) !== 0 ? readCounts(r) : NONE;
    yield [windowId(key, start), { key, fields, counts }];
  }
}
