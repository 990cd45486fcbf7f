/**
 * Where each partition of the embedded log starts once its oldest pages were deleted: with no
 * page left, that is also where its offsets go on after a reopen. Kept as one blob, every
 * partition's start in it, rewritten by the commits that move one (a truncated repartition topic
 * moves several per commit): one key instead of one per partition.
 *
 * Earlier versions stored each under `["logend", topic, partition]`; those are read at load and
 * deleted by the first write.
 */
import { SnapshotBlob, type StagedWrite } from "../../kv/snapshot_blob.ts";

/** A partition's start: topic, partition, offset. */
export type PartitionStart = readonly [string, number, number];

const LEGACY_PREFIX = ["logend"];

export class PartitionStarts {
  readonly #blob: SnapshotBlob;
  #loaded = new Map<string, number>();
  /** Moves reported, and how many of them the last landed write covers. */
  #moves = 0;
  #written = 0;

  constructor(readonly kv: Deno.Kv) {
    this.#blob = new SnapshotBlob(kv, ["logstarts"]);
  }

  /** Reads the stored starts (the blob, and any keys of the earlier layout it lacks). */
  async load(): Promise<void> {
    const starts = new Map<string, number>();
    const text = await this.#blob.load();
    if (text !== null) {
      for (const [topic, partition, start] of JSON.parse(text) as PartitionStart[]) {
        starts.set(id(topic, partition), start);
      }
    }
    const legacy: Deno.KvKey[] = [];
    for await (const e of this.kv.list<number>({ prefix: LEGACY_PREFIX })) {
      const [, topic, partition] = e.key as [string, string, number];
      if (!starts.has(id(topic, partition))) starts.set(id(topic, partition), e.value);
      legacy.push(e.key);
    }
    this.#blob.retire(legacy);
    this.#loaded = starts;
  }

  /** The start stored for a partition at load (0 when none). */
  of(topic: string, partition: number): number {
    return this.#loaded.get(id(topic, partition)) ?? 0;
  }

  /** Notes that a partition's start moved: the next `stage` writes them all. */
  moved(): void {
    this.#moves++;
  }

  /**
   * The mutations storing every partition's start as `current` lists them (those above 0), or
   * null when none moved since the last landed write. Call inside the committer's `serialize`.
   */
  stage(current: () => PartitionStart[]): StagedWrite | null {
    if (this.#moves === this.#written && !this.#blob.hasRetired) return null;
    const covers = this.#moves;
    const blob = this.#blob.write(JSON.stringify(current()));
    return {
      mutations: blob.mutations,
      landed: () => {
        blob.landed();
        this.#written = Math.max(this.#written, covers);
      },
    };
  }
}

function id(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
