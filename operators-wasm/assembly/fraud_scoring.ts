// Fraud scoring with each customer's payment history in linear memory. The host interns
// customers (key ids) and payment ids (handles: the operator stores them, only the host knows
// the strings), writes a batch of payments as columns and calls `score` once for the batch; the
// payments are scored in column order, each with a row of results.
//
// Per customer (a slot keyed by key id): count and sum of all earlier payments, the burst flag,
// and three lists on the heap, each sorted by time except alerts (processing order):
// - recent payments within twice the rapid window of the latest one: (time f64, handle i32);
// - payments in the score window: (time f64, failed i32);
// - alerts in the score window: (time f64, type i32).
// Lists are pruned relative to each payment's own time, so a late payment sees what is left.

import { Column, LIVE, SlotTable, Stores } from "./layout";

export const RAPID: i32 = 1;
export const UNUSUAL: i32 = 2;

/** Slot fields (f64); field 0 is the table's tag (always 0). */
const COUNT = 1;
const SUM = 2;
const IN_BURST = 3;
const FAILURES = 4; // failed payments in the scored list
// Lists: pointer, first entry, end, capacity. Dropping from the front only moves the first.
const RECENT = 5;
const SCORED = 9;
const ALERTS = 13;
const FIELDS = 17;
const L_PTR = 0;
const L_FIRST = 1;
const L_END = 2;
const L_CAP = 3;

/** Every list entry: an f64 time and an i32 (handle, failed flag or alert type). */
const ENTRY: usize = 16;

/** Fields (f64) of a payment's result row. */
export const OUT_RAISE_RAPID: i32 = 0;
export const OUT_RAISE_UNUSUAL: i32 = 1;
export const OUT_SCORE: i32 = 2; // 0-100, unrounded, counting the alerts this payment raises
export const OUT_AVERAGE: i32 = 3; // of earlier payments when there were enough, else 0
export const OUT_EARLIER: i32 = 4; // earlier payments of the customer
export const OUT_SPAN_AT: i32 = 5; // where its rapid span's handles start in `span`, when raised
export const OUT_SPAN: i32 = 6; // payments in the rapid span
export const OUT_LENGTH: i32 = 7;

class Rules {
  constructor(
    readonly rapidWindowMs: f64,
    readonly rapidThreshold: f64,
    readonly unusualMultiplier: f64,
    readonly unusualMinHistory: f64,
    readonly scoreWindowMs: f64,
  ) {}
}

/** One store partition's customers. */
class Customers {
  readonly table: SlotTable = new SlotTable(FIELDS);
  constructor(readonly rules: Rules) {}
}

const stores = new Stores<Customers>();
let table: SlotTable = new SlotTable(FIELDS);

// Input columns of a batch.
const inKeys = new Column(4);
const inTimes = new Column(8);
const inAmounts = new Column(8);
const inFailed = new Column(4);
const inHandles = new Column(4);
/** A result row per payment. */
const out = new Column(8 * OUT_LENGTH);
/** The raised rapid spans' handles, back to back. */
const span = new Column(4);
let spanCount: i32 = 0;
/** Handles the batch dropped from recent lists: the host may forget them. */
const freed = new Column(4);
let freedCount: i32 = 0;
/** A customer's state as rows of f64, for dumps and loads (see `dumpCustomer`). */
const rows = new Column(8);

/** A new store with these rules; returns its id. */
export function create(
  rapidWindowMs: f64,
  rapidThreshold: f64,
  unusualMultiplier: f64,
  unusualMinHistory: f64,
  scoreWindowMs: f64,
): i32 {
  const customers = new Customers(
    new Rules(rapidWindowMs, rapidThreshold, unusualMultiplier, unusualMinHistory, scoreWindowMs),
  );
  return stores.add(customers);
}

/** Frees store `id`'s memory; its id may be given to a new store. */
export function release(id: i32): void {
  const t = stores.get(id).table;
  table = t;
  for (let i = 0; i < t.capacity; i++) {
    if (t.state(i) != LIVE) continue;
    freeList(i, RECENT);
    freeList(i, SCORED);
    freeList(i, ALERTS);
  }
  t.release();
  stores.release(id);
}

/** Makes room for a batch of `n` payments; call before filling the columns. */
export function prepare(n: i32): void {
  inKeys.reserve(n);
  inTimes.reserve(n);
  inAmounts.reserve(n);
  inFailed.reserve(n);
  inHandles.reserve(n);
  out.reserve(n);
}

export function keysPtr(): usize { return inKeys.ptr; }
export function timesPtr(): usize { return inTimes.ptr; }
export function amountsPtr(): usize { return inAmounts.ptr; }
export function failedPtr(): usize { return inFailed.ptr; }
export function handlesPtr(): usize { return inHandles.ptr; }
export function outPtr(): usize { return out.ptr; }
export function spanPtr(): usize { return span.ptr; }
export function freedPtr(): usize { return freed.ptr; }
export function freedHandles(): i32 { return freedCount; }
export function rowsPtr(): usize { return rows.ptr; }
export function customers(id: i32): i32 { return stores.get(id).table.live; }

@inline function field(slot: i32, f: i32): i32 {
  return <i32>table.field(slot, f);
}
@inline function setField(slot: i32, f: i32, v: i32): void {
  table.setField(slot, f, <f64>v);
}
/** Where entry `i` (from the list's first) of a list is. */
@inline function entry(slot: i32, list: i32, i: i32): usize {
  return <usize>table.field(slot, list + L_PTR) + <usize>(field(slot, list + L_FIRST) + i) * ENTRY;
}
@inline function listLength(slot: i32, list: i32): i32 {
  return field(slot, list + L_END) - field(slot, list + L_FIRST);
}
@inline function timeOf(p: usize): f64 {
  return load<f64>(p);
}
@inline function valueOf(p: usize): i32 {
  return load<i32>(p + 8);
}
@inline function setEntry(p: usize, time: f64, value: i32): void {
  store<f64>(p, time);
  store<i32>(p + 8, value);
}

function freeList(slot: i32, list: i32): void {
  const p = <usize>table.field(slot, list + L_PTR);
  if (p != 0) heap.free(p);
}

/** Room for one more entry at the list's end: moves the entries to the front, or grows. */
function fitOne(slot: i32, list: i32): void {
  const end = field(slot, list + L_END);
  const capacity = field(slot, list + L_CAP);
  if (end < capacity) return;
  const first = field(slot, list + L_FIRST);
  const n = end - first;
  const p = <usize>table.field(slot, list + L_PTR);
  if (capacity > 0 && first * 2 >= capacity) {
    memory.copy(p, p + <usize>first * ENTRY, <usize>n * ENTRY);
  } else {
    const size = max(4, capacity * 2);
    const q = heap.alloc(<usize>size * ENTRY);
    if (p != 0) {
      memory.copy(q, p + <usize>first * ENTRY, <usize>n * ENTRY);
      heap.free(p);
    }
    table.setField(slot, list + L_PTR, <f64>q);
    setField(slot, list + L_CAP, size);
  }
  setField(slot, list + L_FIRST, 0);
  setField(slot, list + L_END, n);
}

/**
 * Drops the entries with time <= `upTo` from the front of a sorted list; returns how many.
 * Their values are written to `freed` when `freeing`; their sum is in `droppedSum`.
 */
let droppedSum: i32 = 0;
function dropUpTo(slot: i32, list: i32, upTo: f64, freeing: bool): i32 {
  const n = listLength(slot, list);
  let k = 0;
  droppedSum = 0;
  while (k < n) {
    const p = entry(slot, list, k);
    if (timeOf(p) > upTo) break;
    if (freeing) {
      freed.fit(freedCount);
      freed.setI32(freedCount++, valueOf(p));
    }
    droppedSum += valueOf(p);
    k++;
  }
  if (k == n) {
    setField(slot, list + L_FIRST, 0);
    setField(slot, list + L_END, 0);
  } else if (k > 0) {
    setField(slot, list + L_FIRST, field(slot, list + L_FIRST) + k);
  }
  return k;
}

/** Inserts (time, value) after the entries at or before `time`; returns its index. */
function insertByTime(slot: i32, list: i32, time: f64, value: i32): i32 {
  fitOne(slot, list);
  const n = listLength(slot, list);
  let i = n;
  while (i > 0 && timeOf(entry(slot, list, i - 1)) > time) i--;
  const p = entry(slot, list, i);
  if (i < n) memory.copy(p + ENTRY, p, <usize>(n - i) * ENTRY);
  setEntry(p, time, value);
  setField(slot, list + L_END, field(slot, list + L_END) + 1);
  return i;
}

/** The customer's slot, made when new. */
function slotOf(key: i32): i32 {
  let s = table.find(key, 0);
  if (s < 0) {
    table.ensure(1);
    s = table.insert(key, 0);
  }
  return s;
}

/**
 * Scores the batch's `n` payments of store `id` in column order: payment `handles[i]` of
 * customer `keys[i]` at event time `times[i]`, writing result row i. Rules: more than
 * `rapidThreshold` payments within `rapidWindowMs` ending at this one raises RAPID_PAYMENTS
 * once per burst; an amount over `unusualMultiplier` × the average of at least
 * `unusualMinHistory` earlier payments raises UNUSUAL_AMOUNT. Score (0-100): 50 if a
 * rapid-payments alert and 30 if an unusual-amount alert lies in the score window, plus 20 ×
 * the share of failed payments in it.
 */
export function score(id: i32, n: i32): void {
  const c = stores.get(id);
  table = c.table;
  spanCount = 0;
  freedCount = 0;
  for (let i = 0; i < n; i++) {
    scoreOne(
      c.rules,
      i,
      inKeys.i32At(i),
      inTimes.f64At(i, 0),
      inAmounts.f64At(i, 0),
      inFailed.i32At(i),
      inHandles.i32At(i),
    );
  }
}

function scoreOne(r: Rules, row: i32, key: i32, time: f64, amount: f64, failed: i32, handle: i32): void {
  const s = slotOf(key);

  // Recent payments: those within twice the rapid window are kept (for late arrivals).
  dropUpTo(s, RECENT, time - r.rapidWindowMs * 2, true);
  const at = insertByTime(s, RECENT, time, handle);
  // The span is the payments with time - rapidWindowMs <= t <= time: those just before it.
  let from = at;
  while (from > 0 && timeOf(entry(s, RECENT, from - 1)) >= time - r.rapidWindowMs) from--;
  const inSpan = at - from + 1;

  dropUpTo(s, SCORED, time - r.scoreWindowMs, false);
  const failures = field(s, FAILURES) - droppedSum + failed;
  setField(s, FAILURES, failures);
  insertByTime(s, SCORED, time, failed);
  const nScored = listLength(s, SCORED);

  // Alerts are in processing order, not time order: filter them all.
  const nAlerts = listLength(s, ALERTS);
  let kept = 0;
  let hasRapid = false;
  let hasUnusual = false;
  for (let i = 0; i < nAlerts; i++) {
    const p = entry(s, ALERTS, i);
    const t = timeOf(p);
    if (t > time - r.scoreWindowMs) {
      const type = valueOf(p);
      setEntry(entry(s, ALERTS, kept++), t, type);
      if (type == RAPID) hasRapid = true;
      if (type == UNUSUAL) hasUnusual = true;
    }
  }
  setField(s, ALERTS + L_END, field(s, ALERTS + L_FIRST) + kept);

  let raiseRapid = false;
  if (<f64>inSpan > r.rapidThreshold) {
    raiseRapid = table.field(s, IN_BURST) == 0;
    table.setField(s, IN_BURST, 1);
  } else {
    table.setField(s, IN_BURST, 0);
  }
  const count = table.field(s, COUNT);
  const sum = table.field(s, SUM);
  let average: f64 = 0;
  let raiseUnusual = false;
  if (count >= r.unusualMinHistory && count > 0) {
    average = sum / count;
    raiseUnusual = amount > r.unusualMultiplier * average;
  }
  const spanAt = spanCount;
  if (raiseRapid) {
    hasRapid = true;
    span.fit(spanCount + inSpan - 1);
    for (let i = 0; i < inSpan; i++) span.setI32(spanCount++, valueOf(entry(s, RECENT, from + i)));
    appendAlert(s, time, RAPID);
  }
  if (raiseUnusual) {
    hasUnusual = true;
    appendAlert(s, time, UNUSUAL);
  }
  table.setField(s, COUNT, count + 1);
  table.setField(s, SUM, sum + amount);

  out.setF64(row, OUT_RAISE_RAPID, raiseRapid ? 1 : 0);
  out.setF64(row, OUT_RAISE_UNUSUAL, raiseUnusual ? 1 : 0);
  out.setF64(
    row,
    OUT_SCORE,
    min<f64>(100, (hasRapid ? 50 : 0) + (hasUnusual ? 30 : 0) + 20 * (<f64>failures / <f64>nScored)),
  );
  out.setF64(row, OUT_AVERAGE, average);
  out.setF64(row, OUT_EARLIER, count);
  out.setF64(row, OUT_SPAN_AT, <f64>spanAt);
  out.setF64(row, OUT_SPAN, raiseRapid ? <f64>inSpan : 0);
}

function appendAlert(slot: i32, time: f64, type: i32): void {
  fitOne(slot, ALERTS);
  setEntry(entry(slot, ALERTS, listLength(slot, ALERTS)), time, type);
  setField(slot, ALERTS + L_END, field(slot, ALERTS + L_END) + 1);
}

/**
 * Writes customer `key`'s state into `rows` as f64: count, sum, in burst (0/1), the lengths of
 * the recent, scored and alert lists, then their entries as (time, value) pairs. Returns the
 * number of f64s, or 0 for a customer the store does not know.
 */
export function dumpCustomer(id: i32, key: i32): i32 {
  table = stores.get(id).table;
  const s = table.find(key, 0);
  if (s < 0) return 0;
  const nRecent = listLength(s, RECENT);
  const nScored = listLength(s, SCORED);
  const nAlerts = listLength(s, ALERTS);
  const n = 6 + 2 * (nRecent + nScored + nAlerts);
  rows.reserve(n);
  rows.setF64(0, 0, table.field(s, COUNT));
  rows.setF64(1, 0, table.field(s, SUM));
  rows.setF64(2, 0, table.field(s, IN_BURST));
  rows.setF64(3, 0, <f64>nRecent);
  rows.setF64(4, 0, <f64>nScored);
  rows.setF64(5, 0, <f64>nAlerts);
  let at = 6;
  at = dumpList(s, RECENT, nRecent, at);
  at = dumpList(s, SCORED, nScored, at);
  dumpList(s, ALERTS, nAlerts, at);
  return n;
}

function dumpList(slot: i32, list: i32, n: i32, at: i32): i32 {
  for (let i = 0; i < n; i++) {
    const p = entry(slot, list, i);
    rows.setF64(at++, 0, timeOf(p));
    rows.setF64(at++, 0, <f64>valueOf(p));
  }
  return at;
}

/** Room for a load of `n` f64s; returns where to write them. */
export function prepareLoad(n: i32): usize {
  rows.reserve(n);
  return rows.ptr;
}

/** Sets customer `key`'s state from `rows`, laid out as `dumpCustomer` writes it. */
export function loadCustomer(id: i32, key: i32): void {
  table = stores.get(id).table;
  const s = slotOf(key);
  table.setField(s, COUNT, rows.f64At(0, 0));
  table.setField(s, SUM, rows.f64At(1, 0));
  table.setField(s, IN_BURST, rows.f64At(2, 0));
  let at = 6;
  at = loadList(s, RECENT, <i32>rows.f64At(3, 0), at);
  at = loadList(s, SCORED, <i32>rows.f64At(4, 0), at);
  loadList(s, ALERTS, <i32>rows.f64At(5, 0), at);
}

function loadList(slot: i32, list: i32, n: i32, at: i32): i32 {
  setField(slot, list + L_FIRST, 0);
  setField(slot, list + L_END, 0);
  let failures = 0;
  for (let i = 0; i < n; i++) {
    fitOne(slot, list);
    const value = <i32>rows.f64At(at + 1, 0);
    setEntry(entry(slot, list, i), rows.f64At(at, 0), value);
    setField(slot, list + L_END, i + 1);
    failures += value;
    at += 2;
  }
  if (list == SCORED) setField(slot, FAILURES, failures);
  return at;
}
