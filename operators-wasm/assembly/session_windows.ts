// Session windows with their state in linear memory: per key, its live sessions (sorted by
// start, at most `perKey`), each with count, sum, min, max and last value and a count per
// category. A record within `gap` of a key's sessions extends them, or merges the two it
// bridges; a session closes once stream time passes end + gap + grace. One call per batch:
// the host writes the batch as columns (key ids, event times, values, categories, the task's
// stream time at each record) and reads back, in record order, every session update and
// retraction, the sessions closed, the late records and the keys whose sessions changed.

import { Column, ExpiryHeap, findSlot, LIVE, SLOT_FIELDS, SlotTable, Stores } from "./layout";

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

/**
 * Writes an update (or a retraction, whose statistics are zeros) of the session at `session` as
 * the next row of `rows` (the update column, whose room `prepare` made).
 */
@inline function writeUpdate(
  rows: usize,
  record: i32,
  key: i32,
  session: usize,
  retraction: bool,
): void {
  const row = rows + <usize>(updateCount++) * <usize>updates.width;
  store<f64>(row, <f64>record);
  store<f64>(row, retraction ? 1 : 0, 8);
  store<f64>(row, <f64>key, 16);
  for (let f = 0; f < width; f++) {
    const v = retraction && f > END ? 0 : load<f64>(session + (<usize>f << 3));
    store<f64>(row + (<usize>(3 + f) << 3), v);
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
  const keys = inKeys.ptr;
  const times = inTimes.ptr;
  const vals = inValues.ptr;
  const cats = inCategories.ptr;
  const streams = inStreamTimes.ptr;
  const rows = updates.ptr;
  // The table does not move during a batch (`prepare` made room): its address lives in locals,
  // or the compiler reloads it after every store to memory.
  const base = table.ptr;
  const slotBytes = <usize>table.slotBytes;
  const mask = table.capacity - 1;
  const sessionBytes = <usize>width << 3;
  for (let r = 0; r < n; r++) {
    const streamTime = load<f64>(streams + (<usize>r << 3));
    if (expiry.peek() <= streamTime) closeUpTo(streamTime, r);
    const key = load<i32>(keys + (<usize>r << 2));
    const t = load<f64>(times + (<usize>r << 3));
    const v = load<f64>(vals + (<usize>r << 3));
    const category = categories > 0 ? load<i32>(cats + (<usize>r << 2)) : -1;
    let slot = findSlot(base, slotBytes, mask, key, 0);
    // The slot's first session; session i is i × sessionBytes further.
    let first0 = base + <usize>slot * slotBytes + SLOT_FIELDS + (<usize>SESSIONS << 3);
    // The sessions within gap of t: at most two, consecutive.
    let first = -1;
    let last = -1;
    const sessions = slot < 0 ? 0 : count(slot);
    for (let i = 0; i < sessions; i++) {
      const q = first0 + <usize>i * sessionBytes;
      if (load<f64>(q, START << 3) <= t + gap && load<f64>(q, END << 3) >= t - gap) {
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
      first0 = base + <usize>slot * slotBytes + SLOT_FIELDS + (<usize>SESSIONS << 3);
    }
    let target: i32;
    if (first < 0) {
      // A new session, in start order.
      const n0 = count(slot);
      if (n0 == s.perKey) unreachable();
      let i = 0;
      while (i < n0 && load<f64>(first0 + <usize>i * sessionBytes, START << 3) < t) i++;
      const q = first0 + <usize>i * sessionBytes;
      if (i < n0) memory.copy(q + sessionBytes, q, <usize>(n0 - i) * sessionBytes);
      memory.fill(q, 0, sessionBytes);
      store<f64>(q, t, START << 3);
      store<f64>(q, t, END << 3);
      store<f64>(q, Infinity, MIN << 3);
      store<f64>(q, -Infinity, MAX << 3);
      setCount(slot, n0 + 1);
      s.live++;
      target = i;
      expiry.push(t + gap + grace, slot);
    } else {
      // Extend the first; a bridged second is merged into it, and retracted.
      const p = first0 + <usize>first * sessionBytes;
      const q = first0 + <usize>last * sessionBytes;
      const oldStart = load<f64>(p, START << 3);
      const oldEnd = load<f64>(p, END << 3);
      const start = min(t, oldStart);
      const end = max(t, load<f64>(q, END << 3));
      if (oldStart != start || (s.retractAll && oldEnd != end)) {
        writeUpdate(rows, r, key, p, true);
      }
      if (last != first) {
        writeUpdate(rows, r, key, q, true);
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
      store<f64>(p, start, START << 3);
      store<f64>(p, end, END << 3);
      target = first;
    }
    const p = first0 + <usize>target * sessionBytes;
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
    writeUpdate(rows, r, key, p, false);
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

/** Writes a key's sessions as changed row `row`, places after its last session zeros. */
function writeKey(row: i32, slot: i32): void {
  changed.fit(row);
  const n = count(slot);
  const dst = changed.ptr + <usize>row * <usize>changed.width;
  store<f64>(dst, <f64>table.keyOf(slot));
  store<f64>(dst, <f64>n, 8);
  const used = <usize>(n * width) << 3;
  memory.copy(dst + 16, at(slot, 0, 0), used);
  memory.fill(dst + 16 + used, 0, (<usize>(current.perKey * width) << 3) - used);
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
