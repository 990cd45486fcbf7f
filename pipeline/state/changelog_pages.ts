import {
  blobDeletes,
  blobMutations,
  listBlobs,
  type Mutation,
  type StoredBlob,
  storedOf,
} from "../kv/blob.ts";

interface DeltaBlob extends StoredBlob {
  readonly seq: number;
  readonly bytes: number;
}

/**
 * How many times its snapshot the deltas may weigh before they are compacted. Writing a snapshot
 * costs 1/ratio of writing the deltas; loading replays up to ratio × the live data. At 2 the
 * snapshots took a third of the state-writing time in the benchmark.
 */
const COMPACTION_RATIO = 4;

/** A snapshot being written: its generation and the last delta it makes unnecessary. */
export interface SnapshotInProgress {
  readonly gen: number;
  readonly covers: number;
  readonly pages: StoredBlob[];
  bytes: number;
}

/**
 * A store's changelog in Deno KV, whatever its entries' encoding: one delta blob per commit
 * (`[...prefix, "d", seq]`), and now and then a snapshot generation (`[...prefix, "s", gen,
 * page]`) whose meta records the last delta before it began. Loading replays the current
 * snapshot, then the deltas after it: deltas hold whole values, so replaying them over a
 * snapshot taken while they were written is exact. Superseded blobs are deleted a few per
 * commit.
 */
export class ChangelogPages {
  #gen = 0;
  /** Highest generation seen in KV: a new snapshot never reuses a leftover's keys. */
  #maxGen = 0;
  #covers = -1;
  #nextSeq = 0;
  #snapshot: StoredBlob[] = [];
  #snapshotBytes = 0;
  #deltas: DeltaBlob[] = [];
  #deltaBytes = 0;
  #garbage: Mutation[] = [];

  private constructor(
    readonly prefix: Deno.KvKey,
    readonly minCompactionBytes: number,
  ) {}

  /**
   * Reads the changelog under `prefix`, handing every page to `apply` in the order to replay
   * them (snapshot pages, then deltas).
   */
  static async load(
    kv: Deno.Kv,
    prefix: Deno.KvKey,
    apply: (bytes: Uint8Array) => void,
    minCompactionBytes = 1024 * 1024,
  ): Promise<ChangelogPages> {
    const log = new ChangelogPages(prefix, minCompactionBytes);
    const meta = await kv.get<string>([...prefix, "meta"]);
    if (meta.value !== null) ({ gen: log.#gen, covers: log.#covers } = JSON.parse(meta.value));
    log.#maxGen = log.#gen;
    for await (const blob of listBlobs(kv, [...prefix, "s"])) {
      const gen = blob.key[prefix.length + 1] as number;
      log.#maxGen = Math.max(log.#maxGen, gen);
      if (gen !== log.#gen) {
        // Left by an unfinished or superseded snapshot.
        log.#garbage.push(...blobDeletes(blob));
        continue;
      }
      apply(blob.bytes);
      log.#snapshot.push(storedOf(blob));
      log.#snapshotBytes += blob.bytes.length;
    }
    for await (const blob of listBlobs(kv, [...prefix, "d"])) {
      const seq = blob.key[prefix.length + 1] as number;
      log.#nextSeq = Math.max(log.#nextSeq, seq + 1);
      if (seq <= log.#covers) {
        log.#garbage.push(...blobDeletes(blob));
        continue;
      }
      apply(blob.bytes);
      log.#deltas.push({ ...storedOf(blob), seq, bytes: blob.bytes.length });
      log.#deltaBytes += blob.bytes.length;
    }
    return log;
  }

  /** The mutations storing one commit's changes as the next delta. */
  appendDelta(bytes: Uint8Array | string): Mutation[] {
    const seq = this.#nextSeq++;
    const key = [...this.prefix, "d", seq];
    const blob = blobMutations(key, bytes);
    this.#deltas.push({ ...blob.stored, seq, bytes: bytes.length });
    this.#deltaBytes += bytes.length;
    return blob.mutations;
  }

  /** Whether the deltas now outweigh the snapshot enough to write a new one. */
  get wantsSnapshot(): boolean {
    return this.#deltaBytes >
      Math.max(this.minCompactionBytes, COMPACTION_RATIO * this.#snapshotBytes);
  }

  /** Starts a snapshot of the values as of now (every delta so far is covered by it). */
  beginSnapshot(): SnapshotInProgress {
    return { gen: ++this.#maxGen, covers: this.#nextSeq - 1, pages: [], bytes: 0 };
  }

  /** The mutations storing the next page of a snapshot. */
  snapshotPage(s: SnapshotInProgress, bytes: Uint8Array | string): Mutation[] {
    const key = [...this.prefix, "s", s.gen, s.pages.length];
    const blob = blobMutations(key, bytes);
    s.pages.push(blob.stored);
    s.bytes += bytes.length;
    return blob.mutations;
  }

  /** Switches to a completed snapshot: its meta, with the blobs it supersedes left as garbage. */
  finishSnapshot(s: SnapshotInProgress): Mutation[] {
    for (const old of this.#snapshot) this.#garbage.push(...blobDeletes(old));
    const covered = this.#deltas.filter((d) => d.seq <= s.covers);
    for (const old of covered) this.#garbage.push(...blobDeletes(old));
    this.#deltas = this.#deltas.filter((d) => d.seq > s.covers);
    this.#deltaBytes = this.#deltas.reduce((n, d) => n + d.bytes, 0);
    this.#gen = s.gen;
    this.#covers = s.covers;
    this.#snapshot = s.pages;
    this.#snapshotBytes = s.bytes;
    return [{
      key: [...this.prefix, "meta"],
      value: JSON.stringify({ gen: s.gen, covers: s.covers }),
    }];
  }

  /** Up to `max` deletes of superseded blobs. */
  takeGarbage(max: number): Mutation[] {
    return this.#garbage.splice(0, max);
  }
}
