/**
 * Category names (activity types, say) as the numbers an operator counts them by, and category
 * counts as rows, stores and outputs hold them.
 */
import type { ByteReader, ByteWriter } from "../state/byte_codec.ts";
import { KeyIds } from "./key_ids.ts";

/** The counts of a store that counts no categories. */
export const NO_COUNTS: Readonly<Record<string, number>> = Object.freeze({});

/** No category counts, by name. */
export const NONE: ReadonlyMap<string, number> = new Map();

export class Categories {
  readonly #ids = new KeyIds();

  /** The category's number, given a new one (the next) when it has none. */
  intern(name: string): number {
    return this.#ids.intern(name);
  }

  /** Categories numbered so far: 0 to size - 1. */
  get size(): number {
    return this.#ids.size;
  }

  /** The non-zero counts of `n` categories in `row` from `at` on, by name. */
  named(row: Float64Array, at: number, n: number): ReadonlyMap<string, number> {
    if (n === 0) return NONE;
    const out = new Map<string, number>();
    for (let c = 0; c < n; c++) if (row[at + c] > 0) out.set(this.#ids.keyOf(c), row[at + c]);
    return out;
  }

  /** The same as an object, as results carry them. */
  record(row: Float64Array, at: number, n: number): Readonly<Record<string, number>> {
    if (n === 0) return NO_COUNTS;
    const out: Record<string, number> = {};
    for (let c = 0; c < n; c++) if (row[at + c] > 0) out[this.#ids.keyOf(c)] = row[at + c];
    return out;
  }

  /** Writes counts by name into `row` from `at` on (numbering new categories). */
  place(counts: ReadonlyMap<string, number>, row: Float64Array, at: number): void {
    for (const [name, n] of counts) row[at + this.intern(name)] = n;
  }
}

/** Writes counts as the number of categories (u16), then each one's name and count (f64). */
export function writeCounts(w: ByteWriter, counts: ReadonlyMap<string, number>): void {
  w.u16(counts.size);
  for (const [name, n] of counts) {
    w.str(name);
    w.f64(n);
  }
}

export function readCounts(r: ByteReader): ReadonlyMap<string, number> {
  const counts = new Map<string, number>();
  for (let n = r.u16(); n > 0; n--) counts.set(r.str(), r.f64());
  return counts;
}
