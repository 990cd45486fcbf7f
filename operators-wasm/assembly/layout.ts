// Shared memory layout of the stateful operators: growable column buffers the host fills and
// reads, and an open-addressing table of fixed-size slots keyed by (key id, f64), in linear
// memory. The host owns strings: keys reach an operator as interned ids (u32).

/** A growable buffer of `width`-byte items; `ptr` moves when it grows. */
export class Column {
  ptr: usize = 0;
  capacity: i32 = 0;
  bytes: usize = 0;

  constructor(public width: i32) {}

  /**
   * Items of `width` bytes from now on (a store with wider rows): the memory is kept, what it
   * holds is void.
   */
  setWidth(width: i32): void {
    if (width == this.width) return;
    this.width = width;
    this.capacity = <i32>(this.bytes / <usize>width);
  }

  /** Room for item `i`, keeping the items before it (for columns filled as a call goes). */
  @inline fit(i: i32): void {
    if (i >= this.capacity) this.grow(i + 1);
  }

  grow(n: i32): void {
    const size = max(n, this.capacity * 2);
    const bytes = <usize>size * <usize>this.width;
    const ptr = heap.alloc(bytes);
    if (this.ptr != 0) {
      memory.copy(ptr, this.ptr, <usize>this.capacity * <usize>this.width);
      heap.free(this.ptr);
    }
    this.ptr = ptr;
    this.capacity = size;
    this.bytes = bytes;
  }

  /** Room for `n` items (contents are not kept across a growth). */
  reserve(n: i32): void {
    if (n <= this.capacity) return;
    const size = max(n, this.capacity * 2);
    if (this.ptr != 0) heap.free(this.ptr);
    this.bytes = <usize>size * <usize>this.width;
    this.ptr = heap.alloc(this.bytes);
    this.capacity = size;
  }

  @inline f64At(i: i32, field: i32): f64 {
    return load<f64>(this.ptr + <usize>i * <usize>this.width + (<usize>field << 3));
  }

  @inline setF64(i: i32, field: i32, v: f64): void {
    store<f64>(this.ptr + <usize>i * <usize>this.width + (<usize>field << 3), v);
  }

  @inline i32At(i: i32): i32 {
    return load<i32>(this.ptr + (<usize>i << 2));
  }

  @inline setI32(i: i32, v: i32): void {
    store<i32>(this.ptr + (<usize>i << 2), v);
  }
}

/**
 * Slot header: key id + 1 (0: never used), state, the batch it last changed in, and a free i32
 * for the operator.
 */
export const SLOT_KEY: usize = 0;
export const SLOT_STATE: usize = 4;
export const SLOT_EPOCH: usize = 8;
export const SLOT_EXTRA: usize = 12;
/** The f64 fields start here. */
export const SLOT_FIELDS: usize = 16;

/** Slots start at a cache line (a 64-byte slot then spans one line, not two). */
const CACHE_LINE: usize = 64;

export const EMPTY: i32 = 0;
export const LIVE: i32 = 1;
export const DELETED: i32 = 2;

/**
 * Open addressing with linear probing over slots of SLOT_FIELDS + 8 × fields bytes, keyed by
 * (key id, f64 tag: a window start, say). Deleted slots are tombstones until the next growth.
 */
export class SlotTable {
  /** The slots, at a cache line's boundary inside the block at `block`. */
  ptr: usize = 0;
  block: usize = 0;
  capacity: i32 = 0;
  live: i32 = 0;
  used: i32 = 0;
  readonly slotBytes: i32;

  constructor(readonly fields: i32) {
    this.slotBytes = <i32>SLOT_FIELDS + fields * 8;
  }

  @inline slot(i: i32): usize {
    return this.ptr + <usize>i * <usize>this.slotBytes;
  }

  @inline state(i: i32): i32 {
    return load<i32>(this.slot(i) + SLOT_STATE);
  }

  @inline keyOf(i: i32): i32 {
    return load<i32>(this.slot(i) + SLOT_KEY) - 1;
  }

  @inline field(i: i32, f: i32): f64 {
    return load<f64>(this.slot(i) + SLOT_FIELDS + (<usize>f << 3));
  }

  @inline setField(i: i32, f: i32, v: f64): void {
    store<f64>(this.slot(i) + SLOT_FIELDS + (<usize>f << 3), v);
  }

  @inline epoch(i: i32): i32 {
    return load<i32>(this.slot(i) + SLOT_EPOCH);
  }

  @inline setEpoch(i: i32, e: i32): void {
    store<i32>(this.slot(i) + SLOT_EPOCH, e);
  }

  @inline extra(i: i32): i32 {
    return load<i32>(this.slot(i) + SLOT_EXTRA);
  }

  @inline setExtra(i: i32, v: i32): void {
    store<i32>(this.slot(i) + SLOT_EXTRA, v);
  }

  /** The slot of (key, tag), or -1. The tag is field 0. */
  find(key: i32, tag: f64): i32 {
    if (this.capacity == 0) return -1;
    return findSlot(this.ptr, <usize>this.slotBytes, this.capacity - 1, key, tag);
  }

  /** A new live slot for (key, tag), which must not be in the table; the table has room. */
  insert(key: i32, tag: f64): i32 {
    const mask = this.capacity - 1;
    let i = <i32>(hash(key, tag) & <u32>mask);
    while (this.state(i) == LIVE) i = (i + 1) & mask;
    if (this.state(i) == EMPTY) this.used++;
    const p = this.slot(i);
    memory.fill(p, 0, <usize>this.slotBytes);
    store<i32>(p + SLOT_KEY, key + 1);
    store<i32>(p + SLOT_STATE, LIVE);
    store<i32>(p + SLOT_EPOCH, -1);
    this.setField(i, 0, tag);
    this.live++;
    return i;
  }

  remove(i: i32): void {
    store<i32>(this.slot(i) + SLOT_STATE, DELETED);
    this.live--;
  }

  /** Gives the slots' memory back; the table is empty after. */
  release(): void {
    if (this.block != 0) heap.free(this.block);
    this.block = 0;
    this.ptr = 0;
    this.capacity = 0;
    this.live = 0;
    this.used = 0;
  }

  /**
   * Room for `more` inserts without growing; returns true when it had to grow (slots moved:
   * slot indices the caller kept are void).
   */
  ensure(more: i32): bool {
    if ((this.used + more) * 10 <= this.capacity * 7) return false;
    let capacity = max(this.capacity, 1024);
    while ((this.live + more) * 10 > capacity * 5) capacity *= 2;
    const oldPtr = this.ptr;
    const oldBlock = this.block;
    const oldCapacity = this.capacity;
    this.block = heap.alloc(<usize>capacity * <usize>this.slotBytes + CACHE_LINE);
    this.ptr = (this.block + CACHE_LINE - 1) & ~(CACHE_LINE - 1);
    memory.fill(this.ptr, 0, <usize>capacity * <usize>this.slotBytes);
    this.capacity = capacity;
    this.used = 0;
    this.live = 0;
    const mask = capacity - 1;
    for (let j = 0; j < oldCapacity; j++) {
      const from = oldPtr + <usize>j * <usize>this.slotBytes;
      if (load<i32>(from + SLOT_STATE) != LIVE) continue;
      const key = load<i32>(from + SLOT_KEY) - 1;
      const tag = load<f64>(from + SLOT_FIELDS);
      let i = <i32>(hash(key, tag) & <u32>mask);
      while (this.state(i) != EMPTY) i = (i + 1) & mask;
      memory.copy(this.slot(i), from, <usize>this.slotBytes);
      this.used++;
      this.live++;
    }
    if (oldBlock != 0) heap.free(oldBlock);
    return true;
  }
}

/**
 * The slot of (key, tag) in a table of `mask` + 1 slots of `slotBytes` at `base`, or -1. For hot
 * loops that keep the table's address in locals: the address is then not reloaded after every
 * store to linear memory (which could, as far as the compiler knows, have changed it).
 */
@inline export function findSlot(base: usize, slotBytes: usize, mask: i32, key: i32, tag: f64): i32 {
  let i = <i32>(hash(key, tag) & <u32>mask);
  let p = base + <usize>i * slotBytes;
  let s = load<i32>(p + SLOT_STATE);
  while (s != EMPTY) {
    if (s == LIVE && load<i32>(p + SLOT_KEY) == key + 1 && load<f64>(p + SLOT_FIELDS) == tag) return i;
    i = (i + 1) & mask;
    p = base + <usize>i * slotBytes;
    s = load<i32>(p + SLOT_STATE);
  }
  return -1;
}

/** Mixes a key id and an f64 tag (murmur3's finalizer over both halves). */
@inline export function hash(key: i32, tag: f64): u32 {
  const bits = reinterpret<u64>(tag);
  let h = <u32>key * 0x9e3779b1 ^ <u32>bits ^ <u32>(bits >> 32) * 0x85ebca6b;
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

/**
 * A binary min-heap of (time, slot) in linear memory: the slots in the order they expire.
 * Entries are never removed early: a popped entry whose slot no longer expires then is skipped.
 */
export class ExpiryHeap {
  ptr: usize = 0;
  size: i32 = 0;
  capacity: i32 = 0;

  @inline time(i: i32): f64 {
    return load<f64>(this.ptr + (<usize>i << 4));
  }

  @inline slotAt(i: i32): i32 {
    return load<i32>(this.ptr + (<usize>i << 4) + 8);
  }

  @inline put(i: i32, time: f64, slot: i32): void {
    store<f64>(this.ptr + (<usize>i << 4), time);
    store<i32>(this.ptr + (<usize>i << 4) + 8, slot);
  }

  clear(): void {
    this.size = 0;
  }

  /** Gives the heap's memory back; it is empty after. */
  release(): void {
    if (this.ptr != 0) heap.free(this.ptr);
    this.ptr = 0;
    this.size = 0;
    this.capacity = 0;
  }

  push(time: f64, slot: i32): void {
    if (this.size == this.capacity) {
      const capacity = max(1024, this.capacity * 2);
      const ptr = heap.alloc(<usize>capacity << 4);
      memory.copy(ptr, this.ptr, <usize>this.size << 4);
      if (this.ptr != 0) heap.free(this.ptr);
      this.ptr = ptr;
      this.capacity = capacity;
    }
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.time(parent) <= time) break;
      this.put(i, this.time(parent), this.slotAt(parent));
      i = parent;
    }
    this.put(i, time, slot);
  }

  /** The earliest time, or +∞ when empty. */
  @inline peek(): f64 {
    return this.size == 0 ? Infinity : this.time(0);
  }

  /** Removes the earliest entry and returns its slot. */
  pop(): i32 {
    const slot = this.slotAt(0);
    const lastTime = this.time(this.size - 1);
    const lastSlot = this.slotAt(this.size - 1);
    const n = --this.size;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && this.time(r) < this.time(l) ? r : l;
      if (this.time(m) >= lastTime) break;
      this.put(i, this.time(m), this.slotAt(m));
      i = m;
    }
    if (n > 0) this.put(i, lastTime, lastSlot);
    return slot;
  }
}

/** An operator's stores by id; a released store's id goes to the next new one. */
export class Stores<T> {
  readonly items: T[] = [];
  readonly released: i32[] = [];

  add(item: T): i32 {
    if (this.released.length > 0) {
      const id = this.released.pop();
      unchecked(this.items[id] = item);
      return id;
    }
    this.items.push(item);
    return this.items.length - 1;
  }

  @inline get(id: i32): T {
    return unchecked(this.items[id]);
  }

  release(id: i32): void {
    this.released.push(id);
  }
}
