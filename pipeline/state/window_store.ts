import type { PersistentMap, ValueCodec } from "./persistent_map.ts";

/** One stored window of one key. */
export interface WindowEntry<V> {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: V;
}

interface Slot<V> {
  /** The window's start, here too so that searching a key's windows reads only its slots. */
  readonly start: number;
  readonly id: string;
  readonly stored: Stored<V>;
}

export interface Stored<V> {
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
 *
 * The close-time index is lazy: a window's id is added to the bucket of its close time when
 * that time is first set, never removed; closing skips ids whose window was deleted or moved to
 * another close time. Updates then cost no index work.
 */
export class WindowStore<V = unknown> {
  /**
   * key → its windows by ascending start (the objects the persistent map holds, with their ids
   * there). A key has few windows, so a small sorted array beats a map per key.
   */
  readonly #byKey = new Map<string, Slot<V>[]>();
  /** The last key looked up and its windows: an aggregation reads, then writes, one key. */
  #lastKey: string | null = null;
  #lastSlots: Slot<V>[] | undefined = undefined;
  readonly #buckets = new Map<number, string[]>();
  /** Close times that have a bucket, as a binary min-heap. */
  readonly #closeTimes: number[] = [];

  constructor(readonly name: string, readonly map: PersistentMap<Stored<V>>) {
    for (const [id, s] of map.entries()) {
      this.#insert(s.k, { start: s.s, id, stored: s });
      this.#addToBucket(s.c, id);
    }
  }

  get(key: string, start: number): WindowEntry<V> | undefined {
    const slot = this.#slot(key, start);
    return slot && toEntry(slot.stored);
  }

  /** The value of one window, without building an entry (the aggregation hot path). */
  valueAt(key: string, start: number): V | undefined {
    return this.#slot(key, start)?.stored.v;
  }

  /** Stores a window; it is deleted once stream time reaches `closeAt`. */
  put(key: string, start: number, end: number, value: V, closeAt: number): void {
    const slot = this.#slot(key, start);
    if (!slot) {
      const id = windowId(key, start);
      const stored = { k: key, s: start, e: end, v: value, c: closeAt };
      this.#insert(key, { start, id, stored });
      this.map.set(id, stored);
      this.#addToBucket(closeAt, id);
      return;
    }
    // Updated in place: the persistent map serializes it at commit time.
    const s = slot.stored;
    const moved = s.c !== closeAt;
    s.e = end;
    s.v = value;
    s.c = closeAt;
    this.map.touch(slot.id, s);
    if (moved) this.#addToBucket(closeAt, slot.id);
  }

  delete(key: string, start: number): void {
    const slots = this.#windows(key);
    const i = slots ? indexOfStart(slots, start) : -1;
    if (i < 0) return;
    const [slot] = slots!.splice(i, 1);
    if (slots!.length === 0) {
      this.#byKey.delete(key);
      if (this.#lastKey === key) this.#lastSlots = undefined;
    }
    this.map.delete(slot.id);
  }

  /** The key's windows whose start lies in [from, to], by start. */
  fetch(key: string, from = -Infinity, to = Infinity): WindowEntry<V>[] {
    const slots = this.#windows(key);
    if (!slots) return [];
    const out: WindowEntry<V>[] = [];
    for (let i = 0; i < slots.length; i++) {
      if (slots[i].start > to) break;
      if (slots[i].start >= from) out.push(toEntry(slots[i].stored));
    }
    return out;
  }

  /** Every stored window, for queries and tests. */
  all(): WindowEntry<V>[] {
    const out: WindowEntry<V>[] = [];
    for (const [, s] of this.map.entries()) out.push(toEntry(s));
    return out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.start - b.start);
  }

  get size(): number {
    return this.map.size;
  }

  /** Deletes and returns the windows whose close time is <= streamTime, by close time. */
  closeUpTo(streamTime: number): WindowEntry<V>[] {
    const closed: WindowEntry<V>[] = [];
    const heap = this.#closeTimes;
    while (heap.length > 0 && heap[0] <= streamTime) {
      const time = popMin(heap);
      const ids = this.#buckets.get(time)!;
      this.#buckets.delete(time);
      const due: Stored<V>[] = [];
      for (const id of new Set(ids)) {
        const s = this.map.get(id);
        if (s && s.c === time) due.push(s);
      }
      // Same close time: by key, then start, so emit order does not depend on update order.
      due.sort((a, b) => a.k < b.k ? -1 : a.k > b.k ? 1 : a.s - b.s);
      for (const s of due) {
        closed.push(toEntry(s));
        this.delete(s.k, s.s);
      }
    }
    return closed;
  }

  #windows(key: string): Slot<V>[] | undefined {
    if (key !== this.#lastKey) {
      this.#lastKey = key;
      this.#lastSlots = this.#byKey.get(key);
    }
    return this.#lastSlots;
  }

  #slot(key: string, start: number): Slot<V> | undefined {
    const slots = this.#windows(key);
    if (!slots) return undefined;
    const i = indexOfStart(slots, start);
    return i < 0 ? undefined : slots[i];
  }

  #insert(key: string, slot: Slot<V>): void {
    let slots = this.#windows(key);
    if (!slots) {
      this.#byKey.set(key, slots = []);
      this.#lastSlots = slots;
    }
    let i = slots.length;
    while (i > 0 && slots[i - 1].start > slot.start) i--;
    slots.splice(i, 0, slot);
  }

  #addToBucket(closeAt: number, id: string): void {
    const bucket = this.#buckets.get(closeAt);
    if (bucket) {
      bucket.push(id);
      return;
    }
    this.#buckets.set(closeAt, [id]);
    pushHeap(this.#closeTimes, closeAt);
  }
}

/** Index of the window starting at `start` in slots sorted by start, or -1. */
function indexOfStart<V>(slots: readonly Slot<V>[], start: number): number {
  let lo = 0;
  let hi = slots.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const s = slots[mid].start;
    if (s === start) return mid;
    if (s < start) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** A window's id in the persistent map: its start, '|', its key. */
function windowId(key: string, start: number): string {
  return `${start}|${key}`;
}

/**
 * Windows are stored as [end - start, close - end, value]: the key and start are in the id, and
 * the two spans are short numbers where the times are 13 digits, so the changelog carries little
 * more than the aggregates.
 */
// deno-lint-ignore no-explicit-any
export const windowCodec: ValueCodec<Stored<any>> = {
  encode: (s) => [s.e - s.s, s.c - s.e, s.v],
  decode(id, stored) {
    const bar = id.indexOf("|");
    const start = Number(id.slice(0, bar));
    const [length, grace, v] = stored as [number, number, unknown];
    return { k: id.slice(bar + 1), s: start, e: start + length, v, c: start + length + grace };
  },
};

function toEntry<V>(s: Stored<V>): WindowEntry<V> {
  return { key: s.k, start: s.s, end: s.e, value: s.v };
}

function pushHeap(heap: number[], x: number): void {
  let i = heap.push(x) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= heap[i]) break;
    [heap[parent], heap[i]] = [heap[i], heap[parent]];
    i = parent;
  }
}

function popMin(heap: number[]): number {
  const min = heap[0];
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l] < heap[m]) m = l;
      if (r < heap.length && heap[r] < heap[m]) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  }
  return min;
}
