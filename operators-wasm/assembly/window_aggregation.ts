// Windowed aggregation with its state in linear memory: count, sum, min, max and last value
// per key and tumbling or hopping window, and optionally a count per category (the host interns
// categories as 0, 1, …), closed by stream time + grace. One call per batch:
// the host writes the batch as columns (key ids, event times, values, the task's stream time
// at each record), `aggregate` applies it, and the host reads back the updates, the windows
// that closed, the late records and the changed windows (for persistence). One module holds
// many stores (a store partition each), each with its own table; the columns are shared.

import { Column, ExpiryHeap, findSlot, LIVE, SLOT_KEY, SLOT_STATE, SLOT_EPOCH, SLOT_EXTRA, SLOT_FIELDS, SlotTable, Stores } from "./layout";

/**
 * Fields of a window's slot. Its end and close time follow from its start (the store's size and
 * grace), so a slot without categories is 64 bytes: one cache line.
 */
const START = 0;
const COUNT = 1;
const SUM = 2;
const MIN = 3;
const MAX = 4;
const LAST = 5;
/** The first category count; a store with `categories` counts has that many fields more. */
const COUNTS = 6;
/**
 * Where a row's statistics (count … last) start: after key, start, end and close (changed and
 * loaded rows) or record, key, start and end (updates and closed rows).
 */
const STATS_AT = 4;

/** Row widths (f64 each) of the output columns, before the category counts that end each row. */
export const UPDATE_ROW: i32 = 9; // record, key, start, end, count, sum, min, max, last
export const CHANGED_ROW: i32 = 11; // key, start, end, close, count, sum, min, max, last, live, record
/** A changed row's `live`: still open, closed, or closed after an update in this batch. */
const CLOSED: f64 = 0;
const OPEN: f64 = 1;
const UPDATED_CLOSED: f64 = 2;
export const LOAD_ROW: i32 = 9; // key, start, end, close, count, sum, min, max, last

/** One store partition's windows. */
class Windows {
  readonly table: SlotTable;
  readonly expiry: ExpiryHeap = new ExpiryHeap();
  readonly perRecord: i32;
  epoch: i32 = 0;

  constructor(
    readonly size: f64,
    readonly advance: f64,
    readonly grace: f64,
    readonly categories: i32,
  ) {
    this.table = new SlotTable(COUNTS + categories);
    this.perRecord = <i32>Math.ceil(size / advance);
  }
}

const stores = new Stores<Windows>();
let size: f64 = 1;
let advance: f64 = 1;
let grace: f64 = 0;
let categories: i32 = 0;
let table: SlotTable = new SlotTable(8);
let expiry: ExpiryHeap = new ExpiryHeap();

/** Makes store `id` the one the next calls work on. */
function use(id: i32): Windows {
  const w = stores.get(id);
  size = w.size;
  advance = w.advance;
  grace = w.grace;
  categories = w.categories;
  table = w.table;
  expiry = w.expiry;
  updates.setWidth((UPDATE_ROW + categories) * 8);
  closed.setWidth((UPDATE_ROW + categories) * 8);
  changed.setWidth((CHANGED_ROW + categories) * 8);
  loads.setWidth((LOAD_ROW + categories) * 8);
  return w;
}
const inKeys = new Column(4);
const inTimes = new Column(8);
const inValues = new Column(8);
const inStreamTimes = new Column(8);
const inCategories = new Column(4);
const updates = new Column(UPDATE_ROW * 8);
const closed = new Column(UPDATE_ROW * 8);
const late = new Column(4);
const changed = new Column(CHANGED_ROW * 8);
const changedSlots = new Column(4);
const loads = new Column(LOAD_ROW * 8);

let updateCount: i32 = 0;
let closedCount: i32 = 0;
let lateCount: i32 = 0;
let changedCount: i32 = 0;

/**
 * A new store of windows of `size` ms starting every `advance` ms (tumbling when equal), open
 * `grace` ms more, counting records of `categoryCount` categories; returns its id.
 */
export function create(
  windowSize: f64,
  windowAdvance: f64,
  windowGrace: f64,
  categoryCount: i32,
): i32 {
  const windows = new Windows(windowSize, windowAdvance, windowGrace, categoryCount);
  return stores.add(windows);
}

/** Frees store `id`'s memory (a closed pipeline's); its id may be given to a new store. */
export function release(id: i32): void {
  const w = stores.get(id);
  w.table.release();
  w.expiry.release();
  stores.release(id);
}

/** Makes room for a batch of `n` records of store `id`; call before filling the columns. */
export function prepare(id: i32, n: i32): void {
  const perRecord = use(id).perRecord;
  inKeys.reserve(n);
  inTimes.reserve(n);
  inValues.reserve(n);
  inStreamTimes.reserve(n);
  inCategories.reserve(n);
  const windows = n * perRecord;
  updates.reserve(windows);
  late.reserve(n);
  changedSlots.reserve(windows);
  // Closed windows are added as they close (`fit`), so these need not hold every live window.
  changed.reserve(windows + 1);
  closed.reserve(1);
  if (table.ensure(windows)) rebuildExpiry();
}

export function keysPtr(): usize { return inKeys.ptr; }
export function timesPtr(): usize { return inTimes.ptr; }
export function valuesPtr(): usize { return inValues.ptr; }
export function streamTimesPtr(): usize { return inStreamTimes.ptr; }
export function categoriesPtr(): usize { return inCategories.ptr; }
export function updatesPtr(): usize { return updates.ptr; }
export function closedPtr(): usize { return closed.ptr; }
export function latePtr(): usize { return late.ptr; }
export function changedPtr(): usize { return changed.ptr; }
export function closedRows(): i32 { return closedCount; }
export function lateRows(): i32 { return lateCount; }
export function changedRows(): i32 { return changedCount; }
export function liveWindows(id: i32): i32 { return use(id).table.live; }

function rebuildExpiry(): void {
  expiry.clear();
  for (let i = 0; i < table.capacity; i++) {
    if (table.state(i) == LIVE) expiry.push(closeOf(i), i);
  }
}

/** a mod n, rounded toward -∞ (f64 `%` is a software fmod in WebAssembly: slow). */
@inline function floorMod(a: f64, n: f64): f64 {
  return a - Math.floor(a / n) * n;
}

@inline function closeOf(slot: i32): f64 {
  return table.field(slot, START) + size + grace;
}

/** Copies a slot into row `row` of a column, after `lead` leading values already written. */
@inline function writeSlot(col: Column, row: i32, lead: i32, slot: i32): void {
  const start = table.field(slot, START);
  col.setF64(row, lead, <f64>table.keyOf(slot));
  col.setF64(row, lead + 1, start);
  col.setF64(row, lead + 2, start + size);
}

/** Copies a slot's statistics (count … last, or zeros) into row `row`, from field `at` on. */
@inline function writeStats(col: Column, row: i32, at: i32, slot: i32, zeros: bool): void {
  for (let f = COUNT; f <= LAST; f++) col.setF64(row, at + f - COUNT, zeros ? 0 : table.field(slot, f));
}

/** Copies a slot's category counts into row `row` of a column, from field `at` on. */
@inline function writeCounts(col: Column, row: i32, at: i32, slot: i32): void {
  for (let c = 0; c < categories; c++) col.setF64(row, at + c, table.field(slot, COUNTS + c));
}


/**
 * Deletes the windows that close at or before `streamTime`, as closed by record `record`. A
 * window updated earlier in batch `epoch` keeps its final state and last record in its changed
 * row (its last update is still to be emitted); any other, zeros and the closing record.
 */
function closeUpTo(streamTime: f64, record: i32, epoch: i32): void {
  while (expiry.peek() <= streamTime) {
    const time = expiry.peek();
    const slot = expiry.pop();
    if (table.state(slot) != LIVE || closeOf(slot) != time) continue;
    const row = closedCount++;
    closed.fit(row);
    changed.fit(changedCount);
    closed.setF64(row, 0, <f64>record);
    writeSlot(closed, row, 1, slot);
    writeStats(closed, row, STATS_AT, slot, false);
    writeCounts(closed, row, UPDATE_ROW, slot);
    const c = changedCount++;
    const updated = table.epoch(slot) == epoch;
    writeSlot(changed, c, 0, slot);
    changed.setF64(c, 3, closeOf(slot));
    writeStats(changed, c, STATS_AT, slot, !updated);
    changed.setF64(c, 9, updated ? UPDATED_CLOSED : CLOSED);
    changed.setF64(c, 10, <f64>(updated ? table.extra(slot) : record));
    for (let k = 0; k < categories; k++) {
      changed.setF64(c, CHANGED_ROW + k, updated ? table.field(slot, COUNTS + k) : 0);
    }
    table.remove(slot);
  }
}

/**
 * Applies the batch's `n` records to store `id`; returns the number of update rows, which are
 * written only when `withUpdates` (the host wants every update, not only each window's last).
 */
export function aggregate(id: i32, n: i32, withUpdates: bool): i32 {
  const windows = use(id);
  const epoch = ++windows.epoch;
  updateCount = 0;
  closedCount = 0;
  lateCount = 0;
  changedCount = 0;
  let changedSlotCount = 0;
  const keys = inKeys.ptr;
  const times = inTimes.ptr;
  const vals = inValues.ptr;
  const streams = inStreamTimes.ptr;
  const cats = inCategories.ptr;
  // Neither the table nor these columns move during a batch (`prepare` made room): their
  // addresses are read once, or the compiler reloads them after every store to memory.
  const base = table.ptr;
  const slotBytes = <usize>table.slotBytes;
  const mask = table.capacity - 1;
  const slotList = changedSlots.ptr;
  const updateRows = updates.ptr;
  const updateWidth = <usize>updates.width;
  const counting = categories;
  // Events of one key often come in runs: the last window found is tried first.
  let lastKey = -1;
  let lastStartSeen: f64 = NaN;
  let lastSlot = -1;
  // Event times mostly move forward: the window starts of the last time are reused while the
  // next time falls in the same advance step (no division then).
  let stepFrom: f64 = Infinity;
  let stepTo: f64 = -Infinity;
  let lastStart: f64 = 0;
  let first: f64 = 0;
  let nextClose = expiry.peek();
  for (let i = 0; i < n; i++) {
    const streamTime = load<f64>(streams + (<usize>i << 3));
    if (nextClose <= streamTime) {
      closeUpTo(streamTime, i, epoch);
      nextClose = expiry.peek();
      lastKey = -1;
    }
    const key = load<i32>(keys + (<usize>i << 2));
    const t = load<f64>(times + (<usize>i << 3));
    const v = load<f64>(vals + (<usize>i << 3));
    // A category out of range (the host gives -1 for none) is counted in no category.
    const category = counting > 0 ? load<i32>(cats + (<usize>i << 2)) : -1;
    const counted = category >= 0 && category < counting;
    if (t < stepFrom || t >= stepTo) {
      lastStart = t - floorMod(t, advance);
      first = lastStart - (Math.ceil((lastStart - t + size) / advance) - 1) * advance;
      stepFrom = lastStart;
      stepTo = lastStart + advance;
    }
    let open = false;
    for (let s = first; s <= lastStart; s += advance) {
      if (s + size + grace <= streamTime) continue;
      open = true;
      let slot = key == lastKey && s == lastStartSeen
        ? lastSlot
        : findSlot(base, slotBytes, mask, key, s);
      if (slot < 0) {
        slot = table.insert(key, s);
        table.setField(slot, MIN, Infinity);
        table.setField(slot, MAX, -Infinity);
        expiry.push(s + size + grace, slot);
        nextClose = expiry.peek();
      }
      const p = base + <usize>slot * slotBytes;
      const f = p + SLOT_FIELDS;
      const count = load<f64>(f, COUNT << 3) + 1;
      const sum = load<f64>(f, SUM << 3) + v;
      const mn = min(load<f64>(f, MIN << 3), v);
      const mx = max(load<f64>(f, MAX << 3), v);
      store<f64>(f, count, COUNT << 3);
      store<f64>(f, sum, SUM << 3);
      store<f64>(f, mn, MIN << 3);
      store<f64>(f, mx, MAX << 3);
      store<f64>(f, v, LAST << 3);
      if (counted) {
        const at = f + (<usize>(COUNTS + category) << 3);
        store<f64>(at, load<f64>(at) + 1);
      }
      // The batch's record that last updated the window.
      store<i32>(p + SLOT_EXTRA, i);
      lastKey = key;
      lastStartSeen = s;
      lastSlot = slot;
      if (load<i32>(p + SLOT_EPOCH) != epoch) {
        store<i32>(p + SLOT_EPOCH, epoch);
        store<i32>(slotList + (<usize>(changedSlotCount++) << 2), slot);
      }
      if (!withUpdates) continue;
      const u = updateRows + <usize>(updateCount++) * updateWidth;
      store<f64>(u, <f64>i);
      store<f64>(u, <f64>key, 8);
      store<f64>(u, s, 16);
      store<f64>(u, s + size, 24);
      store<f64>(u, count, 32);
      store<f64>(u, sum, 40);
      store<f64>(u, mn, 48);
      store<f64>(u, mx, 56);
      store<f64>(u, v, 64);
      for (let c = 0; c < counting; c++) {
        store<f64>(u + (<usize>(UPDATE_ROW + c) << 3), load<f64>(f + (<usize>(COUNTS + c) << 3)));
      }
    }
    if (!open) late.setI32(lateCount++, i);
  }
  // Windows still open and changed in this batch, once each; the rows' room is made first so
  // the column stays put and its address can live in a local.
  changed.fit(changedCount + changedSlotCount);
  const changedWidth = <usize>changed.width;
  let row = changed.ptr + <usize>changedCount * changedWidth;
  for (let j = 0; j < changedSlotCount; j++) {
    const slot = load<i32>(slotList + (<usize>j << 2));
    const p = base + <usize>slot * slotBytes;
    if (load<i32>(p + SLOT_STATE) != LIVE || load<i32>(p + SLOT_EPOCH) != epoch) continue;
    store<i32>(p + SLOT_EPOCH, -1);
    const f = p + SLOT_FIELDS;
    const start = load<f64>(f, START << 3);
    store<f64>(row, <f64>(load<i32>(p + SLOT_KEY) - 1));
    store<f64>(row, start, 8);
    store<f64>(row, start + size, 16);
    store<f64>(row, start + size + grace, 24);
    store<f64>(row, load<f64>(f, COUNT << 3), 32);
    store<f64>(row, load<f64>(f, SUM << 3), 40);
    store<f64>(row, load<f64>(f, MIN << 3), 48);
    store<f64>(row, load<f64>(f, MAX << 3), 56);
    store<f64>(row, load<f64>(f, LAST << 3), 64);
    store<f64>(row, OPEN, 72);
    store<f64>(row, <f64>load<i32>(p + SLOT_EXTRA), 80);
    for (let c = 0; c < counting; c++) {
      store<f64>(row + (<usize>(CHANGED_ROW + c) << 3), load<f64>(f + (<usize>(COUNTS + c) << 3)));
    }
    changedCount++;
    row += changedWidth;
  }
  return updateCount;
}

/** Makes room to load `n` windows into store `id`; returns where to write their rows. */
export function prepareLoad(id: i32, n: i32): usize {
  use(id);
  loads.reserve(n);
  if (table.ensure(n)) rebuildExpiry();
  return loads.ptr;
}

/** Loads `n` windows written as rows into store `id` (a restart). */
export function loadWindows(id: i32, n: i32): void {
  use(id);
  for (let i = 0; i < n; i++) {
    const key = <i32>loads.f64At(i, 0);
    const start = loads.f64At(i, 1);
    let slot = table.find(key, start);
    if (slot < 0) slot = table.insert(key, start);
    for (let f = COUNT; f <= LAST; f++) table.setField(slot, f, loads.f64At(i, STATS_AT + f - COUNT));
    for (let c = 0; c < categories; c++) {
      table.setField(slot, COUNTS + c, loads.f64At(i, LOAD_ROW + c));
    }
    expiry.push(closeOf(slot), slot);
  }
}

let dumpNext: i32 = 0;

/**
 * Writes up to `max` live windows of store `id`, from slot `from` on, as changed rows (a
 * snapshot, page by page); returns how many. `dumpedTo` is the slot to go on from (-1: done).
 */
export function dump(id: i32, from: i32, max: i32): i32 {
  use(id);
  changed.reserve(max);
  changedCount = 0;
  let slot = from;
  for (; slot < table.capacity && changedCount < max; slot++) {
    if (table.state(slot) != LIVE) continue;
    const c = changedCount++;
    writeSlot(changed, c, 0, slot);
    changed.setF64(c, 3, closeOf(slot));
    writeStats(changed, c, STATS_AT, slot, false);
    changed.setF64(c, 9, OPEN);
    changed.setF64(c, 10, -1);
    writeCounts(changed, c, CHANGED_ROW, slot);
  }
  dumpNext = slot < table.capacity ? slot : -1;
  return changedCount;
}

export function dumpedTo(): i32 { return dumpNext; }
