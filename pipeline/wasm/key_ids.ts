/**
 * Strings (keys, customer ids) interned as dense ids for an operator, which sees only numbers,
 * and back. Ids are never reused: they index the operator's own tables.
 */
export class KeyIds {
  readonly #ids = new Map<string, number>();
  readonly #keys: string[] = [];

  /** The key's id, given a new one when it has none. */
  intern(key: string): number {
    let id = this.#ids.get(key);
    if (id === undefined) {
      id = this.#keys.length;
      this.#ids.set(key, id);
      this.#keys.push(key);
    }
    return id;
  }

  /** The key's id if it has one. */
  idOf(key: string): number | undefined {
    return this.#ids.get(key);
  }

  keyOf(id: number): string {
    return this.#keys[id];
  }

  /** Ids given so far: they run from 0 to size - 1. */
  get size(): number {
    return this.#keys.length;
  }
}
