/**
 * A value kept as one blob under one key and rewritten whole by the commits that change it,
 * instead of a key per entry: what a KV commit costs goes with the separate keys it writes.
 * `write` returns the mutations and `landed`, to call once they are committed; a commit that
 * never lands leaves the blob as the last landed one stored it (its surplus parts included).
 * Keys of an earlier layout the blob replaces (`retire`) are deleted by the next write that lands.
 */
import {
  blobDeletes,
  blobMutations,
  listBlobs,
  type Mutation,
  type StoredBlob,
  storedOf,
} from "./blob.ts";

/** Mutations for one commit, and what to call once they are committed. */
export interface StagedWrite {
  readonly mutations: Mutation[];
  readonly landed: () => void;
}

export class SnapshotBlob {
  /** Where the last landed commit stored the blob. */
  #stored: StoredBlob | null = null;
  /** Keys of an earlier layout, deleted with the next write. */
  #retired: Deno.KvKey[] = [];

  constructor(readonly kv: Deno.Kv, readonly key: Deno.KvKey) {}

  /** The stored text, or null when there is none. */
  async load(): Promise<string | null> {
    this.#stored = null;
    this.#retired = [];
    let text: string | null = null;
    for await (const blob of listBlobs(this.kv, this.key)) {
      if (blob.key.length !== this.key.length) continue;
      this.#stored = storedOf(blob);
      text = blob.text;
    }
    return text;
  }

  /** Keys whose content the blob now holds (read after `load`), to delete with the next write. */
  retire(keys: readonly Deno.KvKey[]): void {
    this.#retired.push(...keys);
  }

  /** Whether retired keys wait for a write to delete them. */
  get hasRetired(): boolean {
    return this.#retired.length > 0;
  }

  /** The mutations storing `text` in place of the last landed blob. */
  write(text: string): StagedWrite {
    const blob = blobMutations(this.key, text);
    const stored = this.#stored;
    const surplus = stored && stored.parts > blob.stored.parts
      ? blobDeletes(stored).slice(blob.stored.parts)
      : [];
    return this.#staged([...blob.mutations, ...surplus], blob.stored);
  }

  /** The mutations deleting the blob. */
  clear(): StagedWrite {
    return this.#staged(this.#stored ? blobDeletes(this.#stored) : [], null);
  }

  #staged(mutations: Mutation[], stored: StoredBlob | null): StagedWrite {
    const retired = this.#retired;
    return {
      mutations: [...mutations, ...retired.map((key) => ({ key, value: null }))],
      landed: () => {
        this.#stored = stored;
        // Keys retired while this write was in flight wait for the next one.
        if (this.#retired === retired) this.#retired = [];
      },
    };
  }
}
