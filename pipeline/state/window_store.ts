import type { PersistentMap } from "./persistent_map.ts";

/** One stored window of one key. */
export interface WindowEntry<V> {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: V;
}

interface Stored<V> {
  k: string;
  s: number;
  e: number;
  v: V;
  /** Stream time at which the window closes and is deleted. */
  c: number;
}

/**
 * A named window store of one task: values per (key, window start), indexed by key for
 * lookups and by close time so closed windows are found and deleted without a scan.
 */
export class WindowStore<V = unknown> {
  readonly #byKey = new Map<string, Map<number, Stored<V>>>();
  readonly #byClose = new Map<number, Set<string>>();
  /** Distinct close times, ascending. */
  readonly #closeTimes: number[] = [];

  constructor(readonly name: string, readonly map: PersistentMap<Stored<V>>) {
    for (const [id, s] of map.entries()) this.#index(id, s);
  }

  get(key: string, start: number): WindowEntry<V> | undefined {
    const s = this.#byKey.get(key)?.get(start);
    return s && toEntry(s);
  }

  /** Stores a window; it is deleted once stream time reaches `closeAt`. */
  put(key: string, start: number, end: number, value: V, closeAt: number): void {
    const id = windowId(key, start);
    const old = this.#byKey.get(key)?.get(start);
    if (old) this.#unindex(id, old);
    const s: Stored<V> = { k: key, s: start, e: end, v: value, c: closeAt };
    this.map.set(id, s);
    this.#index(id, s);
  }

  delete(key: string, start: number): void {
    const id = windowId(key, start);
    const old = this.#byKey.get(key)?.get(start);
    if (!old) return;
    this.#unindex(id, old);
    this.map.delete(id);
  }

  /** The key's windows whose start lies in [from, to], by start. */
  fetch(key: string, from = -Infinity, to = Infinity): WindowEntry<V>[] {
    const windows = this.#byKey.get(key);
    if (!windows) return [];
    const out: WindowEntry<V>[] = [];
    for (const s of windows.values()) if (s.s >= from && s.s <= to) out.push(toEntry(s));
    return out.sort((a, b) => a.start - b.start);
  }

  /** Every stored window, for queries and tests. */
  all(): WindowEntry<V>[] {
    const out: WindowEntry<V>[] = [];
    for (const windows of this.#byKey.values()) {
      for (const s of windows.values()) out.push(toEntry(s));
    }
    return out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.start - b.start);
  }

  get size(): number {
    return this.map.size;
  }

  /** Deletes and returns the windows whose close time is <= streamTime, by close time. */
  closeUpTo(streamTime: number): WindowEntry<V>[] {
    const closed: WindowEntry<V>[] = [];
    while (this.#closeTimes.length > 0 && this.#closeTimes[0] <= streamTime) {
      const time = this.#closeTimes[0];
      // Same close time: by key, then start, so emit order does not depend on update order.
      const windows = [...this.#byClose.get(time)!].map((id) => this.map.get(id)!)
        .sort((a, b) => a.k < b.k ? -1 : a.k > b.k ? 1 : a.s - b.s);
      for (const s of windows) {
        closed.push(toEntry(s));
        this.delete(s.k, s.s);
      }
    }
    return closed;
  }

  #index(id: string, s: Stored<V>): void {
    let windows = this.#byKey.get(s.k);
    if (!windows) this.#byKey.set(s.k, windows = new Map());
    windows.set(s.s, s);
    let ids = this.#byClose.get(s.c);
    if (!ids) {
      this.#byClose.set(s.c, ids = new Set());
      insertSorted(this.#closeTimes, s.c);
    }
    ids.add(id);
  }

  #unindex(id: string, s: Stored<V>): void {
    const windows = this.#byKey.get(s.k)!;
    windows.delete(s.s);
    if (windows.size === 0) this.#byKey.delete(s.k);
    const ids = this.#byClose.get(s.c)!;
    ids.delete(id);
    if (ids.size === 0) {
      this.#byClose.delete(s.c);
      this.#closeTimes.splice(lowerBound(this.#closeTimes, s.c), 1);
    }
  }
}

function windowId(key: string, start: number): string {
  return `${start}\u0000${key}`;
}

function toEntry<V>(s: Stored<V>): WindowEntry<V> {
  return { key: s.k, start: s.s, end: s.e, value: s.v };
}

function lowerBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(sorted: number[], x: number): void {
  sorted.splice(lowerBound(sorted, x), 0, x);
}
