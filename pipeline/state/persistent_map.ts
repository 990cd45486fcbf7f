import { blobDeletes, blobMutations, listBlobs, type Mutation } from "../kv/blob.ts";

interface StoredBlob {
  readonly key: Deno.KvKey;
  readonly parts: number;
}

interface DeltaBlob extends StoredBlob {
  readonly seq: number;
  readonly bytes: number;
}

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
  /** Deltas are compacted only once they also exceed this many bytes (see COMPACTION_RATIO). */
  readonly minCompactionBytes?: number;
  /** Entries a commit adds to a snapshot being written. */
  readonly snapshotEntriesPerCommit?: number;
  /** Old blobs a commit deletes after a snapshot switch. */
  readonly deletesPerCommit?: number;
}

interface Compaction {
  readonly gen: number;
  /** The last delta the snapshot makes unnecessary. */
  readonly covers: number;
  readonly keys: string[];
  at: number;
  pages: StoredBlob[];
  bytes: number;
}

/**
 * How many times its snapshot the deltas may weigh before they are compacted. Writing a snapshot
 * costs 1/ratio of writing the deltas; loading replays up to ratio × the live data. At 2 the
 * snapshots took a third of the state-writing time in the benchmark.
 */
const COMPACTION_RATIO = 4;

/** Entries per snapshot page; each page is one KV blob. */
const SNAPSHOT_PAGE_ENTRIES = 500;

/**
 * A string-keyed map held in memory and persisted to Deno KV as a changelog.
 *
 * Each commit appends one delta with the entries changed since the last commit (so a commit
 * costs a few KV writes whatever the number of keys). Once deltas outweigh the snapshot a few
 * times over, a new snapshot generation is written a few pages per commit from the current
 * values; its meta records the last delta before it began. Loading reads that snapshot and
 * replays the deltas after it: deltas hold whole values, so replaying them over a snapshot taken
 * while they were written is exact. Values must be JSON-serializable.
 */
export class PersistentMap<V> {
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
  #gen = 0;
  /** Highest generation seen in KV: a new snapshot never reuses a leftover's keys. */
  #maxGen = 0;
  #covers = -1;
  #nextSeq = 0;
  #snapshot: StoredBlob[] = [];
  #snapshotBytes = 0;
  #deltas: DeltaBlob[] = [];
  #deltaBytes = 0;
  #compaction: Compaction | null = null;
  #garbage: Mutation[] = [];
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
    const meta = await kv.get<string>([...prefix, "meta"]);
    if (meta.value !== null) ({ gen: map.#gen, covers: map.#covers } = JSON.parse(meta.value));
    map.#maxGen = map.#gen;
    const apply = (text: string) => {
      for (const [k, v] of JSON.parse(text) as [string, unknown][]) {
        if (v === null) map.#data.delete(k);
        else map.#data.set(k, codec.decode(k, v));
      }
    };
    for await (const blob of listBlobs(kv, [...prefix, "s"])) {
      const gen = blob.key[prefix.length + 1] as number;
      map.#maxGen = Math.max(map.#maxGen, gen);
      if (gen !== map.#gen) {
        // Left by an unfinished or superseded snapshot.
        map.#garbage.push(...blobDeletes(blob.key, blob.parts));
        continue;
      }
      apply(blob.text);
      map.#snapshot.push({ key: blob.key, parts: blob.parts });
      map.#snapshotBytes += blob.text.length;
    }
    for await (const blob of listBlobs(kv, [...prefix, "d"])) {
      const seq = blob.key[prefix.length + 1] as number;
      map.#nextSeq = Math.max(map.#nextSeq, seq + 1);
      if (seq <= map.#covers) {
        map.#garbage.push(...blobDeletes(blob.key, blob.parts));
        continue;
      }
      apply(blob.text);
      map.#deltas.push({ key: blob.key, parts: blob.parts, seq, bytes: blob.text.length });
      map.#deltaBytes += blob.text.length;
    }
    return map;
  }

  get size(): number {
    return this.#data.size;
  }

  /** Estimated bytes the next commit writes for this map, a snapshot step included. */
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

  /**
   * Applies a change read back from a changelog (the stored form's text, or null: deleted), as
   * the commit that wrote it did; it is persisted with the next commit.
   */
  applyChange(key: string, text: string | null): void {
    if (text === null) {
      this.delete(key);
      return;
    }
    this.#data.set(key, this.codec.decode(key, JSON.parse(text)));
    this.#dirtyLive.delete(key);
    this.#dirtyText.set(key, text);
  }

  /** Deletes every entry (persisted with the next commit), to rebuild the map from elsewhere. */
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
   * progress. The caller commits them atomically with the offsets they reflect.
   */
  takeCommit(): { mutations: Mutation[]; changes: [string, string | null][] } {
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
      const seq = this.#nextSeq++;
      const key = [...this.prefix, "d", seq];
      const blob = blobMutations(key, text);
      out.push(...blob);
      this.#deltas.push({ key, parts: blob.length, seq, bytes: text.length });
      this.#deltaBytes += text.length;
    }
    const threshold = Math.max(
      this.options.minCompactionBytes,
      COMPACTION_RATIO * this.#snapshotBytes,
    );
    if (!this.#compaction && this.#deltaBytes > threshold) {
      this.#compaction = {
        gen: ++this.#maxGen,
        covers: this.#nextSeq - 1,
        keys: [...this.#data.keys()],
        at: 0,
        pages: [],
        bytes: 0,
      };
    }
    if (this.#compaction) out.push(...this.#snapshotStep(this.#compaction));
    if (this.#garbage.length > 0) {
      out.push(...this.#garbage.splice(0, this.options.deletesPerCommit));
    }
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
      const key = [...this.prefix, "s", c.gen, c.pages.length];
      const text = JSON.stringify(page);
      const blob = blobMutations(key, text);
      out.push(...blob);
      c.pages.push({ key, parts: blob.length });
      c.bytes += text.length;
    }
    if (c.at < c.keys.length) return out;
    out.push({
      key: [...this.prefix, "meta"],
      value: JSON.stringify({ gen: c.gen, covers: c.covers }),
    });
    for (const old of this.#snapshot) this.#garbage.push(...blobDeletes(old.key, old.parts));
    const covered = this.#deltas.filter((d) => d.seq <= c.covers);
    for (const old of covered) this.#garbage.push(...blobDeletes(old.key, old.parts));
    this.#deltas = this.#deltas.filter((d) => d.seq > c.covers);
    this.#deltaBytes = this.#deltas.reduce((n, d) => n + d.bytes, 0);
    this.#gen = c.gen;
    this.#covers = c.covers;
    this.#snapshot = c.pages;
    this.#snapshotBytes = c.bytes;
    this.#compaction = null;
    return out;
  }
}
