/**
 * A store partition of windowed statistics whose windows live in a window kernel (WebAssembly
 * linear memory, or the TypeScript reference): keys are interned here, strings stay in
 * TypeScript. It persists as binary pages of changed windows (ChangelogPages: a delta per
 * commit, snapshots dumped from the kernel), and loads them back into the kernel on start.
 */
import type { Mutation } from "../kv/blob.ts";
import { ByteReader, ByteWriter } from "../state/byte_codec.ts";
import { applyEntries, binarySnapshot } from "../state/binary_pages.ts";
import { ChangelogPages } from "../state/changelog_pages.ts";
import type { PersistedState } from "../state/persistent_map.ts";
import type { TimeWindowSpec } from "../windows.ts";
import { KeyIds } from "./key_ids.ts";
import {
  CHANGED_ROW,
  LOAD_ROW,
  type OperatorMode,
  type WindowColumns,
  type WindowKernel,
  windowKernel,
  type WindowResult,
} from "./window_kernel.ts";

/** A window's statistics: count, sum, min, max and last value of what it received. */
export interface WindowStats {
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly last: number;
}

/** A live window of a store, as queries and tests see it. */
export interface StatsWindow {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly stats: WindowStats;
}

/** A window as stored: its key and the LOAD_ROW fields after the key id. */
interface StoredWindow {
  readonly key: string;
  /** start, end, close, count, sum, min, max, last */
  readonly fields: Float64Array;
}

/** Windows per snapshot page. */
const SNAPSHOT_PAGE_WINDOWS = 2000;

export class StatsWindowStore implements PersistedState {
  readonly #kernel: WindowKernel;
  readonly #keys = new KeyIds();
  /** Windows read from KV or a changelog topic, until `open` hands them to the kernel. */
  #loading: Map<string, StoredWindow> | null = new Map();
  /** This commit's changes as binary entries (changelog records are decoded from them). */
  #delta = new ByteWriter();
  #pages!: ChangelogPages;

  private constructor(
    readonly name: string,
    readonly spec: TimeWindowSpec,
    mode: OperatorMode,
  ) {
    this.#kernel = windowKernel(mode, spec.size, spec.advance, spec.grace);
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
    store.#pages = await ChangelogPages.load(
      kv,
      prefix,
      (bytes) => applyEntries(store.#loading!, decodeEntries(bytes)),
    );
    return store;
  }

  /** Loads the windows read so far into the kernel. */
  open(): this {
    const windows = [...this.#loading!.values()];
    this.#loading = null;
    const rows = new Float64Array(windows.length * LOAD_ROW);
    windows.forEach((w, i) => {
      rows[i * LOAD_ROW] = this.intern(w.key);
      rows.set(w.fields, i * LOAD_ROW + 1);
    });
    this.#kernel.load(rows);
    return this;
  }

  /** What the runner persists at each commit: the store itself. */
  get map(): PersistedState {
    return this;
  }

  /** Frees the kernel's memory; the store is unusable after. */
  release(): void {
    this.#kernel.release();
  }

  /** The id the kernel knows a key by. */
  intern(key: string): number {
    return this.#keys.intern(key);
  }

  keyOf(id: number): string {
    return this.#keys.keyOf(id);
  }

  /** Columns for a batch of `n` records (fill them, then `aggregate`). */
  prepare(n: number): WindowColumns {
    return this.#kernel.prepare(n);
  }

  /** Applies a prepared batch; its changed windows are persisted with the next commit. */
  aggregate(n: number, withUpdates: boolean): WindowResult {
    const result = this.#kernel.aggregate(n, withUpdates);
    const c = result.changed;
    for (let at = 0; at < c.length; at += CHANGED_ROW) {
      const key = this.#keys.keyOf(c[at]);
      encodeEntry(this.#delta, key, c[at + 1], c[at + 9] === 1 ? c : null, at + 1);
    }
    return result;
  }

  get size(): number {
    return this.#loading ? this.#loading.size : this.#kernel.liveWindows;
  }

  get dirtyBytes(): number {
    return this.#delta.length;
  }

  takeCommit(changelog: boolean): { mutations: Mutation[]; changes: [string, string | null][] } {
    const mutations: Mutation[] = [];
    const changes: [string, string | null][] = changelog
      ? [...decodeEntries(this.#delta.bytes())].map(([id, w]) => [id, w && changeText(w.fields)])
      : [];
    if (this.#delta.length > 0) {
      mutations.push(...this.#pages.appendDelta(this.#delta.take()));
    }
    if (this.#pages.wantsSnapshot && !this.#loading) mutations.push(...this.#snapshot());
    mutations.push(...this.#pages.takeGarbage(200));
    return { mutations, changes };
  }

  /** A snapshot of every live window, written at once from the kernel's dump, page by page. */
  #snapshot(): Mutation[] {
    const keys = this.#keys;
    const kernel = this.#kernel;
    return binarySnapshot(this.#pages, SNAPSHOT_PAGE_WINDOWS, function* (page) {
      for (const dump of kernel.dump()) {
        for (let at = 0; at < dump.length; at += CHANGED_ROW) {
          encodeEntry(page, keys.keyOf(dump[at]), dump[at + 1], dump, at + 1);
          yield;
        }
      }
    });
  }

  applyChange(id: string, text: string | null): void {
    const bar = id.indexOf("|");
    const start = Number(id.slice(0, bar));
    const key = id.slice(bar + 1);
    let fields: Float64Array | null = null;
    if (text === null) this.#loading!.delete(id);
    else {
      const [length, grace, count, sum, min, max, last] = JSON.parse(text) as number[];
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
      this.#loading!.set(id, { key, fields });
    }
    encodeEntry(this.#delta, key, start, fields);
  }

  clear(): void {
    for (const w of this.#loading!.values()) {
      encodeEntry(this.#delta, w.key, w.fields[0], null);
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
    for (const dump of this.#kernel.dump()) {
      for (let at = 0; at < dump.length; at += CHANGED_ROW) {
        out.push({
          key: this.#keys.keyOf(dump[at]),
          start: dump[at + 1],
          end: dump[at + 2],
          stats: {
            count: dump[at + 4],
            sum: dump[at + 5],
            min: dump[at + 6],
            max: dump[at + 7],
            last: dump[at + 8],
          },
        });
      }
    }
    return out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.start - b.start);
  }
}

/** A window's id in a changelog topic, as window stores name them: start, '|', key. */
function windowId(key: string, start: number): string {
  return `${start}|${key}`;
}

/** A window's changelog value: [end - start, close - end, count, sum, min, max, last]. */
function changeText(f: Float64Array): string {
  return JSON.stringify([f[1] - f[0], f[2] - f[1], f[3], f[4], f[5], f[6], f[7]]);
}

/**
 * Writes one window: key (u16 length, UTF-8), live flag (u8), start (f64), and when live end,
 * close, count, sum, min, max, last (f64 each, `fields[at + 1…7]`); little-endian.
 */
function encodeEntry(
  w: ByteWriter,
  key: string,
  start: number,
  fields: Float64Array | null,
  at = 0,
): void {
  w.str(key);
  w.u8(fields ? 1 : 0);
  w.f64(start);
  if (fields) { for (let f = 1; f < 8; f++) w.f64(fields[at + f]); }
}

/** The windows of a page, as (id, window or null for a deletion). */
function* decodeEntries(bytes: Uint8Array): Generator<[string, StoredWindow | null]> {
  const r = new ByteReader(bytes);
  while (!r.done) {
    const key = r.str();
    const live = r.u8() === 1;
    const start = r.f64();
    if (!live) {
      yield [windowId(key, start), null];
      continue;
    }
    const fields = new Float64Array(8);
    fields[0] = start;
    for (let f = 1; f < 8; f++) fields[f] = r.f64();
    yield [windowId(key, start), { key, fields }];
  }
}
