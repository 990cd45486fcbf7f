import type { Mutation } from "../kv/blob.ts";
import { ChangelogPages, type SnapshotInProgress } from "./changelog_pages.ts";

/**
 * How values are written: `encode` gives the JSON-serializable form stored in KV, `decode` turns
 * it back into the value given its key (so a codec may leave out what the key already says).
 */
export interface ValueCodec<V> {
  encode(value: V): unknown;
  decode(key: string, stored: unknown): V;
}

/** Values stored as they are. */
const AS_IS: ValueCodec<never> = { encode: (v) => v, decode: (_k, stored) => stored as never };

/** Tuning of snapshotting and the stored form of values; the defaults suit production. */
export interface PersistentMapOptions<V = unknown> {
  /** Stored form of values; default: the value itself. */
  readonly codec?: ValueCodec<V>;
  /** Deltas are compacted only once they also exceed this many bytes. */
  readonly minCompactionBytes?: number;
  /** Entries a commit adds to a snapshot being written. */
  readonly snapshotEntriesPerCommit?: number;
  /** Old blobs a commit deletes after a snapshot switch. */
  readonly deletesPerCommit?: number;
}

/** A snapshot written a few pages per commit, from the keys live when it began. */
interface Compaction extends SnapshotInProgress {
  readonly keys: string[];
  at: number;
}

/** Entries per snapshot page; each page is one KV blob. */
const SNAPSHOT_PAGE_ENTRIES = 500;

/** What the runner persists of a store at each commit (see `PersistentMap.takeCommit`). */
export interface PersistedState {
  readonly size: number;
  /** Every entry as the changelog names it, for inspection and tests. */
  entries(): Iterable<[string, unknown]>;
  /** Estimated bytes the next commit writes for it, a snapshot step included. */
  readonly dirtyBytes: number;
  /**
   * The KV mutations of this commit's changes, and the changes as changelog records (key, JSON
   * text or null), which a store may leave out when `changelog` is false.
   */
  takeCommit(changelog: boolean): { mutations: Mutation[]; changes: [string, string | null][] };
  /** Applies a change read back from a changelog topic (Kafka restore). */
  applyChange(key: string, text: string | null): void;
  /** Deletes every entry, to rebuild from a changelog topic. */
  clear(): void;
}

/**
 * A string-keyed map held in memory and persisted to Deno KV as a changelog of JSON pages (see
 * ChangelogPages): each commit appends one delta with the entries changed since the last one
 * (so a commit costs a few KV writes whatever the number of keys), and once deltas outweigh the
 * snapshot a new one is written a few pages per commit from the current values. Values must be
 * JSON-serializable.
 */
export class PersistentMap<V> implements PersistedState {
  readonly #data = new Map<string, V>();
  /**
   * Changes since the last commit, as the stored form's JSON text. An entry changed once is
   * serialized right away, while its objects are still in the CPU cache (at commit time they
   * rarely are); one changed again is kept live and serialized at commit, so a hot key costs one
   * serialization per commit.
   */
  #dirtyText = new Map<string, string>();
  /** Entries changed more than once since the last commit, or deleted (undefined). */
  #dirtyLive = new Map<string, V | undefined>();
  #pages!: ChangelogPages;
  #compaction: Compaction | null = null;
  /** Running average of a changed entry's serialized size, for batch budgeting. */
  #entryBytes = 200;

  private constructor(
    readonly prefix: Deno.KvKey,
    readonly options: Required<Omit<PersistentMapOptions, "codec">>,
    readonly codec: ValueCodec<V>,
  ) {}

  /** Loads the map stored under `prefix` (empty if nothing is stored). */
  static async load<V>(
    kv: Deno.Kv,
    prefix: Deno.KvKey,
    options: PersistentMapOptions<V> = {},
  ): Promise<PersistentMap<V>> {
    const codec = options.codec ?? AS_IS;
    const map = new PersistentMap<V>(prefix, {
      minCompactionBytes: options.minCompactionBytes ?? 1024 * 1024,
      snapshotEntriesPerCommit: options.snapshotEntriesPerCommit ?? 250,
      deletesPerCommit: options.deletesPerCommit ?? 200,
    }, codec);
    const decoder = new TextDecoder();
    map.#pages = await ChangelogPages.load(kv, prefix, (bytes) => {
      for (const [k, v] of JSON.parse(decoder.decode(bytes)) as [string, unknown][]) {
        if (v === null) map.#data.delete(k);
        else map.#data.set(k, codec.decode(k, v));
      }
    }, map.options.minCompactionBytes);
    return map;
  }

  get size(): number {
    return this.#data.size;
  }

  get dirtyBytes(): number {
    const c = this.#compaction;
    const snapshot = c ? Math.min(c.keys.length - c.at, this.options.snapshotEntriesPerCommit) : 0;
    return (this.#dirtyText.size + this.#dirtyLive.size + snapshot) * this.#entryBytes;
  }

  get(key: string): V | undefined {
    return this.#data.get(key);
  }

  /** Stores a value. Changing it later in place needs `touch`, or the commit misses it. */
  set(key: string, value: V): void {
    this.#data.set(key, value);
    this.#changed(key, value);
  }

  /** Marks an entry changed in place (the object `get` returned) for the next commit. */
  touch(key: string, value: V): void {
    this.#changed(key, value);
  }

  delete(key: string): void {
    if (!this.#data.delete(key)) return;
    this.#dirtyText.delete(key);
    this.#dirtyLive.set(key, undefined);
  }

  #changed(key: string, value: V): void {
    if (this.#dirtyLive.has(key)) {
      this.#dirtyLive.set(key, value);
    } else if (this.#dirtyText.delete(key)) {
      this.#dirtyLive.set(key, value);
    } else {
      this.#dirtyText.set(key, this.#valueText(value));
    }
  }

  /** The stored form's JSON text. */
  #valueText(value: V): string {
    return JSON.stringify(this.codec.encode(value));
  }

  applyChange(key: string, text: string | null): void {
    if (text === null) {
      this.delete(key);
      return;
    }
    this.#data.set(key, this.codec.decode(key, JSON.parse(text)));
    this.#dirtyLive.delete(key);
    this.#dirtyText.set(key, text);
  }

  clear(): void {
    for (const key of [...this.#data.keys()]) this.delete(key);
  }

  entries(): IterableIterator<[string, V]> {
    return this.#data.entries();
  }

  /** The KV mutations of `takeCommit`, for callers that need no changelog. */
  takeMutations(): Mutation[] {
    return this.takeCommit().mutations;
  }

  /**
   * Every change since the last call, as changelog entries (key, stored form's text or null for
   * a deletion), and the KV mutations that persist them, plus the next step of a snapshot in
   * progress. The caller commits them atomically with the offsets they reflect. The changes are
   * the stored form: they come with every commit, changelog or not.
   */
  takeCommit(_changelog = true): { mutations: Mutation[]; changes: [string, string | null][] } {
    const out: Mutation[] = [];
    const changes: [string, string | null][] = [];
    for (const entry of this.#dirtyText) changes.push(entry);
    for (const [k, v] of this.#dirtyLive) {
      changes.push([k, v === undefined ? null : this.#valueText(v)]);
    }
    if (changes.length > 0) {
      this.#dirtyText = new Map();
      this.#dirtyLive = new Map();
      const parts = changes.map(([k, v]) => `[${JSON.stringify(k)},${v ?? "null"}]`);
      const text = `[${parts.join(",")}]`;
      this.#entryBytes = 0.8 * this.#entryBytes + 0.2 * (text.length / changes.length);
      out.push(...this.#pages.appendDelta(text));
    }
    if (!this.#compaction && this.#pages.wantsSnapshot) {
      this.#compaction = { ...this.#pages.beginSnapshot(), keys: [...this.#data.keys()], at: 0 };
    }
    if (this.#compaction) out.push(...this.#snapshotStep(this.#compaction));
    out.push(...this.#pages.takeGarbage(this.options.deletesPerCommit));
    return { mutations: out, changes };
  }

  /** Writes the next pages of a snapshot; the last step switches to it. */
  #snapshotStep(c: Compaction): Mutation[] {
    const out: Mutation[] = [];
    const until = Math.min(c.keys.length, c.at + this.options.snapshotEntriesPerCommit);
    while (c.at < until) {
      const page: [string, unknown][] = [];
      for (; c.at < until && page.length < SNAPSHOT_PAGE_ENTRIES; c.at++) {
        const v = this.#data.get(c.keys[c.at]);
        if (v !== undefined) page.push([c.keys[c.at], this.codec.encode(v)]);
      }
      out.push(...this.#pages.snapshotPage(c, JSON.stringify(page)));
    }
    if (c.at < c.keys.length) return out;
    out.push(...this.#pages.finishSnapshot(c));
    this.#compaction = null;
    return out;
  }
}
