/** What the stores with binary pages (window and fraud-scoring operators) share. */
import type { Mutation } from "../kv/blob.ts";
import { ByteWriter } from "./byte_codec.ts";
import type { ChangelogPages, SnapshotInProgress } from "./changelog_pages.ts";

/** Replays a page's entries (null: deleted) into `into`. */
export function applyEntries<T>(into: Map<string, T>, entries: Iterable<[string, T | null]>): void {
  for (const [key, value] of entries) {
    if (value === null) into.delete(key);
    else into.set(key, value);
  }
}

/**
 * Snapshots written a page per commit, so that no commit outgrows one atomic KV write and none
 * waits for a whole store to be written. Entries changed while a snapshot is being written are
 * in the deltas after the one it covers, which are replayed over it: what a page holds need only
 * be as of the snapshot's start or later, and every entry live at its start must be in a page.
 */
/** A first guess of an entry's size in a snapshot page, before one is written. */
const ENTRY_BYTES = 120;

export class BinarySnapshots {
  #progress: SnapshotInProgress | null = null;
  #entries: Iterator<unknown> | null = null;
  readonly #page = new ByteWriter();
  #lastPageBytes = 0;

  constructor(readonly pages: ChangelogPages, readonly perPage: number) {}

  /**
   * This commit's page of the snapshot being written, or of a new one when the deltas outweigh
   * the last: `begin` gives what writes every entry into the page, yielding after each one.
   */
  step(begin: () => (page: ByteWriter) => Iterator<unknown>): Mutation[] {
    if (this.#progress === null) {
      if (!this.pages.wantsSnapshot) return [];
      this.#progress = this.pages.beginSnapshot();
      this.#entries = begin()(this.#page);
    }
    const progress = this.#progress;
    let inPage = 0;
    let done = false;
    while (inPage < this.perPage) {
      if (this.#entries!.next().done) {
        done = true;
        break;
      }
      inPage++;
    }
    const out: Mutation[] = [];
    if (inPage > 0) {
      this.#lastPageBytes = this.#page.length;
      out.push(...this.pages.snapshotPage(progress, this.#page.take()));
    }
    if (done) {
      out.push(...this.pages.finishSnapshot(progress));
      this.#progress = null;
      this.#entries = null;
    }
    return out;
  }

  /** About what the next commit writes for a snapshot in progress, or about to begin. */
  get pendingBytes(): number {
    if (this.#progress !== null) return this.#lastPageBytes;
    return this.pages.wantsSnapshot ? this.#lastPageBytes || this.perPage * ENTRY_BYTES : 0;
  }
}
