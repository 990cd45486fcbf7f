import { blobDeletes, blobMutations, listBlobs, type Mutation } from "../kv/blob.ts";

interface StoredBlob {
  readonly key: Deno.KvKey;
  readonly parts: number;
}

/** Entries per snapshot page; each page is one KV blob. */
const SNAPSHOT_PAGE_ENTRIES = 500;
/** Deltas are folded into a new snapshot once they outweigh it (and at least this much). */
const MIN_COMPACTION_BYTES = 256 * 1024;

/**
 * A string-keyed map held in memory and persisted to Deno KV as a changelog.
 *
 * Each commit appends one delta page with the entries changed since the last commit (so a
 * commit costs a few KV writes whatever the number of keys); reading back replays the latest
 * snapshot and its deltas. Once the deltas outweigh the snapshot, a commit writes a new
 * snapshot generation instead and deletes the old one, all in the same logical commit.
 * Values must be JSON-serializable.
 */
export class PersistentMap<V> {
  readonly #data = new Map<string, V>();
  #dirty = new Map<string, V | undefined>();
  #gen = 0;
  #nextSeq = 0;
  #blobs: StoredBlob[] = [];
  #deltaBytes = 0;
  #snapshotBytes = 0;
  #garbage: Mutation[] = [];
  /** Running average of a changed entry's serialized size, for batch budgeting. */
  #entryBytes = 200;

  private constructor(readonly prefix: Deno.KvKey) {}

  /** Loads the map stored under `prefix` (empty if nothing is stored). */
  static async load<V>(kv: Deno.Kv, prefix: Deno.KvKey): Promise<PersistentMap<V>> {
    const map = new PersistentMap<V>(prefix);
    const meta = await kv.get<number>([...prefix, "meta"]);
    map.#gen = meta.value ?? 0;
    for (const kind of ["s", "d"] as const) {
      for await (const blob of listBlobs(kv, [...prefix, kind])) {
        if (blob.key[prefix.length + 1] !== map.#gen) {
          // Left by a compaction interrupted after its commit; remove with the next commit.
          map.#garbage.push(...blobDeletes(blob.key, blob.parts));
          continue;
        }
        const entries = JSON.parse(blob.text) as [string, V | null][];
        for (const [k, v] of entries) {
          if (v === null) map.#data.delete(k);
          else map.#data.set(k, v);
        }
        map.#blobs.push({ key: blob.key, parts: blob.parts });
        if (kind === "s") map.#snapshotBytes += blob.text.length;
        else {
          map.#deltaBytes += blob.text.length;
          map.#nextSeq = (blob.key[prefix.length + 2] as number) + 1;
        }
      }
    }
    return map;
  }

  get size(): number {
    return this.#data.size;
  }

  /** Entries changed since the last commit. */
  get dirtyCount(): number {
    return this.#dirty.size;
  }

  /** Estimated bytes the next commit writes for this map. */
  get dirtyBytes(): number {
    return this.#dirty.size * this.#entryBytes;
  }

  get(key: string): V | undefined {
    return this.#data.get(key);
  }

  set(key: string, value: V): void {
    this.#data.set(key, value);
    this.#dirty.set(key, value);
  }

  delete(key: string): void {
    if (!this.#data.delete(key)) return;
    this.#dirty.set(key, undefined);
  }

  entries(): IterableIterator<[string, V]> {
    return this.#data.entries();
  }

  /**
   * The KV mutations that persist every change since the last call. The caller commits them
   * atomically with the input offsets they reflect.
   */
  takeMutations(): Mutation[] {
    const mutations = this.#garbage;
    this.#garbage = [];
    if (this.#dirty.size === 0) return mutations;
    const delta: [string, V | null][] = [];
    for (const [k, v] of this.#dirty) delta.push([k, v === undefined ? null : v]);
    this.#dirty = new Map();
    const text = JSON.stringify(delta);
    this.#entryBytes = 0.8 * this.#entryBytes + 0.2 * (text.length / delta.length);
    if (this.#deltaBytes + text.length > Math.max(MIN_COMPACTION_BYTES, 2 * this.#snapshotBytes)) {
      return mutations.concat(this.#compact());
    }
    const key = [...this.prefix, "d", this.#gen, this.#nextSeq++];
    const blob = blobMutations(key, text);
    this.#blobs.push({ key, parts: blob.length });
    this.#deltaBytes += text.length;
    return mutations.concat(blob);
  }

  #compact(): Mutation[] {
    const out: Mutation[] = [];
    for (const old of this.#blobs) out.push(...blobDeletes(old.key, old.parts));
    this.#gen++;
    this.#blobs = [];
    this.#nextSeq = 0;
    this.#deltaBytes = 0;
    this.#snapshotBytes = 0;
    let page: [string, V][] = [];
    let pageNo = 0;
    const flush = () => {
      const key = [...this.prefix, "s", this.#gen, pageNo++];
      const text = JSON.stringify(page);
      const blob = blobMutations(key, text);
      out.push(...blob);
      this.#blobs.push({ key, parts: blob.length });
      this.#snapshotBytes += text.length;
      page = [];
    };
    for (const entry of this.#data) {
      page.push(entry);
      if (page.length === SNAPSHOT_PAGE_ENTRIES) flush();
    }
    if (page.length > 0) flush();
    out.push({ key: [...this.prefix, "meta"], value: this.#gen });
    return out;
  }
}
