// Session windows with their state in linear memory: per key, its live sessions (sorted by
// start, at most `perKey`), each with count, sum, min, max and last value and a count per
// category. A record within `gap` of a key's sessions extends them, or merges the two it
// bridges; a session closes once stream time passes end + gap + grace. One call per batch:
// the host writes the batch as columns (key ids, event times, values, categories, the task's
// stream time at each record) and reads back, in record order, every session update and
// retraction, the sessions closed, the late records and the keys whose sessions changed.

import { Column, ExpiryHeap, LIVE, SLOT_FIELDS, SlotTable, Stores } from "./layout";

/** Fields of a session within a key's slot, before its category counts. */
const START = 0;
const END = 1;
const COUNT = 2;
const SUM = 3;
const MIN = 4;
const MAX = 5;
const LAST = 6;
const SESSION_FIELDS = 7;

/** A key's slot: its tag (0: the table's field 0), the number of sessions, then the sessions. */
const COUNT_FIELD = 1;
const SESSIONS = 2;

/** Row widths (f64 each) of the output columns, before the category counts that end each row. */
export const UPDATE_ROW: i32 = 10; // record, retraction (1) or update (0), key, start, end, count, sum, min, max, last
export const CLOSED_ROW: i32 = 9; // record, key, start, end, count, sum, min, max, last

/** One store partition's sessions. */
class Sessions {
  readonly table: SlotTable;
  readonly expiry: ExpiryHeap = new ExpiryHeap();
  readonly width: i32;
  epoch: i32 = 0;
  live: i32 = 0;

  constructor(
    readonly gap: f64,
    readonly grace: f64,
    readonly perKey: i32,
    readonly categories: i32,
    readonly retractAll: bool,
  ) {
    const w = SESSION_FIELDS + categories;
    this.table = new SlotTable(SESSIONS + perKey * w);
    this.width = w;
  }
}

const stores = new Stores<Sessions>();
let current: Sessions = new Sessions(1, 0, 1, 0, false);
let table: SlotTable = current.table;
let expiry: ExpiryHeap = current.expiry;
let width: i32 = SESSION_FIELDS;
let categories: i32 = 0;

const inKeys = new Column(4);
const inTimes = new Column(8);
const inValues = new Column(8);
const inCategories = new Column(4);
const inStreamTimes = new Column(8);
const updates = new Column(UPDATE_ROW * 8);
const closed = new Column(CLOSED_ROW * 8);
const late = new Column(4);
const changed = new Column(8);
const changedSlots = new Column(4);
const loads = new Column(8);

let updateCount: i32 = 0;
let closedCount: i32 = 0;
let lateCount: i32 = 0;
let changedCount: i32 = 0;
let changedSlotCount: i32 = 0;

/** f64s per changed (and loaded, and dumped) row: key, session count, then `perKey` sessions. */
function changedRow(s: Sessions): i32 {
  return 2 + s.perKey * s.width;
}

function use(id: i32): Sessions {
  const s = stores.get(id);
  current = s;
  table = s.table;
  expiry = s.expiry;
  width = s.width;
  categories = s.categories;
  updates.setWidth((UPDATE_ROW + categories) * 8);
  closed.setWidth((CLOSED_ROW + categories) * 8);
  changed.setWidth(changedRow(s) * 8);
  loads.setWidth(changedRow(s) * 8);
  return s;
}

/**
 * A new store of sessions separated by `gap` ms of inactivity, open `grace` ms more, counting
 * records of `categoryCount` categories, with room for `perKey` sessions per key; `retractAll`:
 * a session whose bounds change is retracted (else only one absorbed into another). Returns its
 * id.
 */
export function create(
  gap: f64,
  grace: f64,
  categoryCount: i32,
  retractAll: bool,
  perKey: i32,
): i32 {
  return stores.add(new Sessions(gap, grace, perKey, categoryCount, retractAll));
}

export function release(id: i32): void {
  const s = stores.get(id);
  s.table.release();
  s.expiry.release();
  stores.release(id);
}

/** Makes room for a batch of `n` records of store `id`; call before filling the columns. */
export function prepare(id: i32, n: i32): void {
  use(id);
  inKeys.reserve(n);
  inTimes.reserve(n);
  inValues.reserve(n);
  inCategories.reserve(n);
  inStreamTimes.reserve(n);
  // A record updates one session and retracts at most two.
  updates.reserve(3 * n);
  late.reserve(n);
  closed.reserve(1);
  changed.reserve(1);
  changedSlots.reserve(n);
  if (table.ensure(n)) rebuildExpiry();
}

export function keysPtr(): usize { return inKeys.ptr; }
export function timesPtr(): usize { return inTimes.ptr; }
export function valuesPtr(): usize { return inValues.ptr; }
export function categoriesPtr(): usize { return inCategories.ptr; }
export function streamTimesPtr(): usize { return inStreamTimes.ptr; }
export function updatesPtr(): usize { return updates.ptr; }
export function closedPtr(): usize { return closed.ptr; }
export function latePtr(): usize { return late.ptr; }
export function changedPtr(): usize { return changed.ptr; }
export function closedRows(): i32 { return closedCount; }
export function lateRows(): i32 { return lateCount; }
export function changedRows(): i32 { return changedCount; }
export function liveSessions(id: i32): i32 { return use(id).live; }

/** Where field `f` of session `i` of a slot is. */
@inline function at(slot: i32, i: i32, f: i32): usize {
  return table.slot(slot) + SLOT_FIELDS + (<usize>(SESSIONS + i * width + f) << 3);
}

@inline function count(slot: i32): i32 {
  return <i32>table.field(slot, COUNT_FIELD);
}

@inline function setCount(slot: i32, n: i32): void {
  table.setField(slot, COUNT_FIELD, <f64>n);
}

@inline function closeOf(slot: i32, i: i32): f64 {
  return load<f64>(at(slot, i, END)) + current.gap + current.grace;
}

function rebuildExpiry(): void {
  expiry.clear();
  for (let slot = 0; slot < table.capacity; slot++) {
    if (table.state(slot) != LIVE) continue;
    const n = count(slot);
    for (let i = 0; i < n; i++) expiry.push(closeOf(slot, i), slot);
  }
}

/** Marks a key's slot changed in this batch (the table does not grow within a batch). */
@inline function touch(slot: i32): void {
  if (table.epoch(slot) == current.epoch) return;
  table.setEpoch(slot, current.epoch);
  changedSlots.fit(changedSlotCount);
  changedSlots.setI32(changedSlotCount++, slot);
}

/**
 * Removes session `i` of a slot (the later ones move down). An emptied slot stays until the end
 * of the batch (a new session of its key may take it), and is removed once its key's deletion
 * is written.
 */
function removeSession(slot: i32, i: i32): void {
  const n = count(slot);
  if (i < n - 1) {
    memory.copy(at(slot, i, 0), at(slot, i + 1, 0), <usize>((n - 1 - i) * width) << 3);
  }
  setCount(slot, n - 1);
  current.live--;
  touch(slot);
}

/**
 * Closes the sessions whose end + gap + grace is at or before `streamTime`. A session has an
 * expiry entry from when it began, which may be earlier than its close now (it was extended):
 * a slot popped with sessions still open is pushed again for the earliest of them.
 */
function closeUpTo(streamTime: f64, record: i32): void {
  while (expiry.peek() <= streamTime) {
    const slot = expiry.pop();
    if (table.state(slot) != LIVE) continue;
    const key = table.keyOf(slot);
    for (let i = 0; i < count(slot);) {
      if (closeOf(slot, i) > streamTime) {
        i++;
        continue;
      }
      const row = closedCount++;
      closed.fit(row);
      closed.setF64(row, 0, <f64>record);
      closed.setF64(row, 1, <f64>key);
      for (let f = 0; f < width; f++) closed.setF64(row, 2 + f, load<f64>(at(slot, i, f)));
      removeSession(slot, i);
    }
    if (count(slot) == 0) continue;
    let next = Infinity;
    for (let i = 0; i < count(slot); i++) next = min(next, closeOf(slot, i));
    expiry.push(next, slot);
  }
}

/** Writes an update (or a retraction, whose statistics are zeros) as the next row. */
function writeUpdate(record: i32, key: i32, slot: i32, i: i32, retraction: bool): void {
  const row = updateCount++;
  updates.setF64(row, 0, <f64>record);
  updates.setF64(row, 1, retraction ? 1 : 0);
  updates.setF64(row, 2, <f64>key);
  for (let f = 0; f < width; f++) {
    const v = retraction && f > END ? 0 : load<f64>(at(slot, i, f));
    updates.setF64(row, 3 + f, v);
  }
}

/** Applies the batch's `n` records to store `id`; returns the number of update rows. */
export function aggregate(id: i32, n: i32): i32 {
  const s = use(id);
  s.epoch++;
  updateCount = 0;
  closedCount = 0;
  lateCount = 0;
  changedCount = 0;
  changedSlotCount = 0;
  const gap = s.gap;
  const grace = s.grace;
  for (let r = 0; r < n; r++) {
    const streamTime = load<f64>(inStreamTimes.ptr + (<usize>r << 3));
    if (expiry.peek() <= streamTime) closeUpTo(streamTime, r);
    const key = load<i32>(inKeys.ptr + (<usize>r << 2));
    const t = load<f64>(inTimes.ptr + (<usize>r << 3));
    const v = load<f64>(inValues.ptr + (<usize>r << 3));
    const category = categories > 0 ? load<i32>(inCategories.ptr + (<usize>r << 2)) : -1;
    let slot = table.find(key, 0);
    // The sessions within gap of t: at most two, consecutive.
    let first = -1;
    let last = -1;
    const sessions = slot < 0 ? 0 : count(slot);
    for (let i = 0; i < sessions; i++) {
      if (load<f64>(at(slot, i, START)) <= t + gap && load<f64>(at(slot, i, END)) >= t - gap) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0 && t + gap + grace <= streamTime) {
      late.setI32(lateCount++, r);
      continue;
    }
    if (slot < 0) {
      slot = table.insert(key, 0);
      setCount(slot, 0);
    }
    let target: i32;
    if (first < 0) {
      // A new session, in start order.
      const n0 = count(slot);
      if (n0 == s.perKey) unreachable();
      let i = 0;
      while (i < n0 && load<f64>(at(slot, i, START)) < t) i++;
      if (i < n0) {
        memory.copy(at(slot, i + 1, 0), at(slot, i, 0), <usize>((n0 - i) * width) << 3);
      }
      memory.fill(at(slot, i, 0), 0, <usize>width << 3);
      store<f64>(at(slot, i, START), t);
      store<f64>(at(slot, i, END), t);
      store<f64>(at(slot, i, MIN), Infinity);
      store<f64>(at(slot, i, MAX), -Infinity);
      setCount(slot, n0 + 1);
      s.live++;
      target = i;
      expiry.push(closeOf(slot, i), slot);
    } else {
      // Extend the first; a bridged second is merged into it, and retracted.
      const start = min(t, load<f64>(at(slot, first, START)));
      const end = max(t, load<f64>(at(slot, last, END)));
      const oldStart = load<f64>(at(slot, first, START));
      const oldEnd = load<f64>(at(slot, first, END));
      if (oldStart != start || (s.retractAll && oldEnd != end)) {
        writeUpdate(r, key, slot, first, true);
      }
      if (last != first) {
        writeUpdate(r, key, slot, last, true);
        const p = at(slot, first, 0);
        const q = at(slot, last, 0);
        store<f64>(p, load<f64>(p, COUNT << 3) + load<f64>(q, COUNT << 3), COUNT << 3);
        store<f64>(p, load<f64>(p, SUM << 3) + load<f64>(q, SUM << 3), SUM << 3);
        store<f64>(p, min(load<f64>(p, MIN << 3), load<f64>(q, MIN << 3)), MIN << 3);
        store<f64>(p, max(load<f64>(p, MAX << 3), load<f64>(q, MAX << 3)), MAX << 3);
        for (let c = 0; c < categories; c++) {
          const f = <usize>(SESSION_FIELDS + c) << 3;
          store<f64>(p + f, load<f64>(p + f) + load<f64>(q + f));
        }
        removeSession(slot, last);
      }
      store<f64>(at(slot, first, START), start);
      store<f64>(at(slot, first, END), end);
      target = first;
    }
    const p = at(slot, target, 0);
    store<f64>(p, load<f64>(p, COUNT << 3) + 1, COUNT << 3);
    store<f64>(p, load<f64>(p, SUM << 3) + v, SUM << 3);
    store<f64>(p, min(load<f64>(p, MIN << 3), v), MIN << 3);
    store<f64>(p, max(load<f64>(p, MAX << 3), v), MAX << 3);
    store<f64>(p, v, LAST << 3);
    if (category >= 0 && category < categories) {
      const f = p + (<usize>(SESSION_FIELDS + category) << 3);
      store<f64>(f, load<f64>(f) + 1);
    }
    touch(slot);
    writeUpdate(r, key, slot, target, false);
  }
  // Keys whose sessions changed, once each: their sessions now, or none (the slot goes then).
  for (let j = 0; j < changedSlotCount; j++) {
    const slot = changedSlots.i32At(j);
    if (table.state(slot) != LIVE || table.epoch(slot) != s.epoch) continue;
    table.setEpoch(slot, -1);
    writeKey(changedCount++, slot);
    if (count(slot) == 0) table.remove(slot);
  }
  return updateCount;
}

/** Writes a key's sessions as changed row `row`. */
function writeKey(row: i32, slot: i32): void {
  changed.fit(row);
  const n = count(slot);
  changed.setF64(row, 0, <f64>table.keyOf(slot));
  changed.setF64(row, 1, <f64>n);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < width; f++) changed.setF64(row, 2 + i * width + f, load<f64>(at(slot, i, f)));
  }
  clearFrom(row, n);
}

/** Zeros the places of a changed row after its first `n` sessions. */
function clearFrom(row: i32, n: i32): void {
  const from = 2 + n * width;
  const to = 2 + current.perKey * width;
  for (let f = from; f < to; f++) changed.setF64(row, f, 0);
}

/** Makes room to load `n` keys' sessions into store `id`; returns where to write their rows. */
export function prepareLoad(id: i32, n: i32): usize {
  use(id);
  loads.reserve(n);
  if (table.ensure(n)) rebuildExpiry();
  return loads.ptr;
}

/** Loads `n` keys' sessions written as changed rows into store `id` (a restart). */
export function loadSessions(id: i32, n: i32): void {
  const s = use(id);
  for (let r = 0; r < n; r++) {
    const key = <i32>loads.f64At(r, 0);
    const sessions = <i32>loads.f64At(r, 1);
    if (sessions > s.perKey) unreachable();
    let slot = table.find(key, 0);
    if (slot < 0) slot = table.insert(key, 0);
    else s.live -= count(slot);
    setCount(slot, sessions);
    s.live += sessions;
    for (let i = 0; i < sessions; i++) {
      for (let f = 0; f < width; f++) store<f64>(at(slot, i, f), loads.f64At(r, 2 + i * width + f));
      expiry.push(closeOf(slot, i), slot);
    }
  }
}

let dumpNext: i32 = 0;

/** Writes up to `max` keys' sessions of store `id`, from slot `from` on; returns how many. */
export function dump(id: i32, from: i32, max: i32): i32 {
  use(id);
  changed.reserve(max);
  changedCount = 0;
  let slot = from;
  for (; slot < table.capacity && changedCount < max; slot++) {
    if (table.state(slot) != LIVE) continue;
    writeKey(changedCount++, slot);
  }
  dumpNext = slot < table.capacity ? slot : -1;
  return changedCount;
}

export function dumpedTo(): i32 { return dumpNext; }
