import type { PersistentMap } from "./persistent_map.ts";

/** A named key-value state store of one task, read and written synchronously. */
export class KeyValueStore<V = unknown> {
  constructor(readonly name: string, readonly map: PersistentMap<V>) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  put(key: string, value: V): void {
    this.map.set(key, value);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  all(): IterableIterator<[string, V]> {
    return this.map.entries();
  }

  get size(): number {
    return this.map.size;
  }
}
