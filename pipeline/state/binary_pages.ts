/** What the stores with binary pages (window and fraud-scoring operators) share. */
import type { Mutation } from "../kv/blob.ts";
import { ByteWriter } from "./byte_codec.ts";
import type { ChangelogPages } from "./changelog_pages.ts";

/** Replays a page's entries (null: deleted) into `into`. */
export function applyEntries<T>(into: Map<string, T>, entries: Iterable<[string, T | null]>): void {
  for (const [key, value] of entries) {
    if (value === null) into.delete(key);
    else into.set(key, value);
  }
}

/**
 * A whole snapshot written at once: `write` writes the entries into the page, yielding after
 * each one; a page holds `perPage` entries.
 */
export function binarySnapshot(
  pages: ChangelogPages,
  perPage: number,
  write: (page: ByteWriter) => Iterable<unknown>,
): Mutation[] {
  const snapshot = pages.beginSnapshot();
  const out: Mutation[] = [];
  const page = new ByteWriter();
  let inPage = 0;
  for (const _ of write(page)) {
    if (++inPage === perPage) {
      out.push(...pages.snapshotPage(snapshot, page.take()));
      inPage = 0;
    }
  }
  if (inPage > 0) out.push(...pages.snapshotPage(snapshot, page.take()));
  out.push(...pages.finishSnapshot(snapshot));
  return out;
}
