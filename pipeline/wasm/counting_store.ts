/**
 * What the window and session operators' stores share: keys and category names interned for
 * the kernel (strings stay in TypeScript), a kernel that a new category widens, and persistence
 * as binary pages (ChangelogPages: a delta per commit, snapshots copied from the kernel and
 * written a page per commit).
 */
import type { Mutation } from "../kv/blob.ts";
import { ByteWriter } from "../state/byte_codec.ts";
import { BinarySnapshots } from "../state/binary_pages.ts";
import { ChangelogPages } from "../state/changelog_pages.ts";
import type { PersistedState } from "../state/persistent_map.ts";
import { Categories } from "./categories.ts";
import { KeyIds } from "./key_ids.ts";
import type { StatsWindow } from "./stats_window_store.ts";

/** What the stores need of a kernel. */
export interface CountingKernel {
  /** How many categories it counts. */
  readonly categories: number;
  release(): void;
}

export abstract class CountingStore<K extends CountingKernel> implements PersistedState {
  protected abstract kernel: K;
  protected readonly keys = new KeyIds();
  /** Category names as the kernel's category numbers; it counts as many as it has room for. */
  protected readonly names = new Categories();
  /** This commit's changes as binary entries (changelog records are decoded from them). */
  protected delta = new ByteWriter();
  #pages!: ChangelogPages;
  #snapshots!: BinarySnapshots;

  /** Reads the store's pages under `prefix`, handing each to `apply`; `open` must follow. */
  protected async loadPages(
    kv: Deno.Kv,
    prefix: Deno.KvKey,
    apply: (bytes: Uint8Array) => void,
    snapshotPageEntries: number,
  ): Promise<void> {
    this.#pages = await ChangelogPages.load(kv, prefix, apply);
    this.#snapshots = new BinarySnapshots(this.#pages, snapshotPageEntries);
  }

  /** Loads what was read into the kernel; the store is usable after. */
  abstract open(): this;

  /** Whether what was read is not in the kernel yet (before `open`). */
  protected abstract get loading(): boolean;

  /** Makes the kernel again counting `categories` categories, with the same state. */
  protected abstract widen(categories: number): void;

  /** The changelog records of a delta's entries: (id, JSON text, or null for a deletion). */
  protected abstract changes(delta: Uint8Array): [string, string | null][];

  /** Writes every entry live now into a snapshot's pages, from a copy taken now. */
  protected abstract snapshotEntries(): (page: ByteWriter) => Iterator<unknown>;

  abstract readonly size: number;
  abstract entries(): Iterable<[string, unknown]>;
  abstract applyChange(id: string, text: string | null): void;
  abstract clear(): void;

  /** What the runner persists at each commit: the store itself. */
  get map(): PersistedState {
    return this;
  }

  /** Frees the kernel's memory; the store is unusable after. */
  release(): void {
    this.kernel.release();
  }

  /** The id the kernel knows a key by. */
  intern(key: string): number {
    return this.keys.intern(key);
  }

  keyOf(id: number): string {
    return this.keys.keyOf(id);
  }

  /**
   * The number the kernel counts a category by. A category it has not seen before widens all
   * its state (the kernel is made again with room for more), so call this for a batch's records
   * before `prepare`.
   */
  category(name: string): number {
    const id = this.names.intern(name);
    if (id >= this.kernel.categories) this.widen(Math.max(4, 2 * this.kernel.categories));
    return id;
  }

  /** The category counts of a row, from `at` on. */
  counts(row: Float64Array, at: number): Readonly<Record<string, number>> {
    return this.names.record(row, at, this.kernel.categories);
  }

  /**
   * A live window or session for queries and tests: key id at `keyAt`, start and end at
   * `startAt`, count, sum, min, max and last at `statsAt`, the counts at `countsAt`.
   */
  protected window(
    row: Float64Array,
    keyAt: number,
    startAt: number,
    statsAt: number,
    countsAt: number,
  ): StatsWindow {
    return {
      key: this.keys.keyOf(row[keyAt]),
      start: row[startAt],
      end: row[startAt + 1],
      stats: {
        count: row[statsAt],
        sum: row[statsAt + 1],
        min: row[statsAt + 2],
        max: row[statsAt + 3],
        last: row[statsAt + 4],
        counts: this.counts(row, countsAt),
      },
    };
  }

  get dirtyBytes(): number {
    return this.delta.length + this.#snapshots.pendingBytes;
  }

  takeCommit(changelog: boolean): { mutations: Mutation[]; changes: [string, string | null][] } {
    const changes = changelog ? this.changes(this.delta.bytes()) : [];
    const mutations: Mutation[] = [];
    if (this.delta.length > 0) mutations.push(...this.#pages.appendDelta(this.delta.take()));
    if (!this.loading) mutations.push(...this.#snapshots.step(() => this.snapshotEntries()));
    mutations.push(...this.#pages.takeGarbage(200));
    return { mutations, changes };
  }
}

/** Windows or sessions in key order, then by start. */
export function byKeyAndStart(windows: StatsWindow[]): StatsWindow[] {
  return windows.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.start - b.start);
}
