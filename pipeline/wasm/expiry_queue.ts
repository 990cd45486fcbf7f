/**
 * The TypeScript references' expiry heap: items by time, ties in insertion order (the
 * operators' heaps break ties their own way; what closes at one time is closed by the same
 * record either way).
 */
export class ExpiryQueue<T> {
  #heap: { time: number; seq: number; item: T }[] = [];
  #seq = 0;

  /** The earliest time, or +∞ when empty. */
  peek(): number {
    return this.#heap.length === 0 ? Infinity : this.#heap[0].time;
  }

  push(time: number, item: T): void {
    const heap = this.#heap;
    const entry = { time, seq: this.#seq++, item };
    let i = heap.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (before(heap[parent], entry)) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = entry;
  }

  /** Removes the earliest entry and returns it. */
  pop(): { time: number; item: T } {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const m = r < heap.length && before(heap[r], heap[l]) ? r : l;
        if (before(last, heap[m])) break;
        heap[i] = heap[m];
        i = m;
      }
      heap[i] = last;
    }
    return top;
  }

  clear(): void {
    this.#heap = [];
  }
}

function before(a: { time: number; seq: number }, b: { time: number; seq: number }): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
