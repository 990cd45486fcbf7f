// Fraud scoring for one payment of one customer. The host writes the customer's recent history
// (times sorted ascending) into the scratch area, calls `evaluate`, and reads the decisions back.
//
// Scratch layout, f64 each: recent payment times [nRecent], scored payment times [nScored],
// their failed flags (0/1) [nScored], alert times [nAlerts], alert types [nAlerts]
// (1 = rapid payments, 2 = unusual amount), then OUT_LENGTH results (see OUT_* below).

export const RAPID: f64 = 1;
export const UNUSUAL: f64 = 2;

/** Result slots, after the inputs. */
export const OUT_RECENT_FROM: i32 = 0; // first recent payment kept
export const OUT_RECENT_INSERT: i32 = 1; // where the new payment goes among the kept ones
export const OUT_SPAN_FROM: i32 = 2; // payments in the rapid window, as [from, to) of the new list
export const OUT_SPAN_TO: i32 = 3;
export const OUT_SCORED_FROM: i32 = 4;
export const OUT_SCORED_INSERT: i32 = 5;
export const OUT_ALERTS_KEPT: i32 = 6; // alerts still in the score window, compacted in place
export const OUT_RAISE_RAPID: i32 = 7;
export const OUT_RAISE_UNUSUAL: i32 = 8;
export const OUT_IN_BURST: i32 = 9;
export const OUT_AVERAGE: i32 = 10;
export const OUT_SCORE: i32 = 11;
export const OUT_LENGTH: i32 = 12;

let scratchPtr: usize = 0;
let scratchLength: i32 = 0;

/** Makes room for `length` f64 values; returns the scratch area (it moves when it grows). */
export function reserve(length: i32): usize {
  if (length > scratchLength) {
    const size = max(length, scratchLength * 2);
    scratchPtr = heap.alloc(<usize>size << 3);
    scratchLength = size;
  }
  return scratchPtr;
}

@inline function at(i: i32): f64 {
  return load<f64>(scratchPtr + (<usize>i << 3));
}

@inline function set(i: i32, v: f64): void {
  store<f64>(scratchPtr + (<usize>i << 3), v);
}

/** First index in [from, to) whose time is > `after` (times ascending), else `to`. */
function firstAfter(from: i32, to: i32, after: f64): i32 {
  let i = from;
  while (i < to && at(i) <= after) i++;
  return i;
}

/**
 * Applies a payment at event time `time`. Rules: more than `rapidThreshold` payments within
 * `rapidWindowMs` ending at this one raises RAPID_PAYMENTS once per burst; an amount over
 * `unusualMultiplier` × the average of at least `unusualMinHistory` earlier payments raises
 * UNUSUAL_AMOUNT. Score (0-100): 50 if a rapid-payments alert and 30 if an unusual-amount
 * alert lies in the score window, plus 20 × the share of failed payments in it.
 * Returns the offset of the results in the scratch area.
 */
export function evaluate(
  nRecent: i32,
  nScored: i32,
  nAlerts: i32,
  time: f64,
  amount: f64,
  failed: bool,
  count: f64,
  sum: f64,
  inBurst: bool,
  rapidWindowMs: f64,
  rapidThreshold: f64,
  unusualMultiplier: f64,
  unusualMinHistory: f64,
  scoreWindowMs: f64,
): i32 {
  const recent = 0;
  const scoredTimes = nRecent;
  const scoredFailed = scoredTimes + nScored;
  const alertTimes = scoredFailed + nScored;
  const alertTypes = alertTimes + nAlerts;
  const out = alertTypes + nAlerts;

  // Recent payments: those within twice the rapid window are kept (for late arrivals).
  const recentFrom = firstAfter(recent, recent + nRecent, time - rapidWindowMs * 2);
  // Insert after payments at the same time, as they arrived first.
  let insert = recentFrom;
  while (insert < recent + nRecent && at(insert) <= time) insert++;
  // The new list is kept[recentFrom, insert) + time + kept[insert, end): the rapid span is the
  // payments with time - rapidWindowMs <= t <= time, contiguous around the new one.
  const spanStart = time - rapidWindowMs;
  // Kept payments after the insert point are later than `time`, so the span ends with it.
  let spanFrom = insert;
  while (spanFrom > recentFrom && at(spanFrom - 1) >= spanStart) spanFrom--;
  const inSpan = insert - spanFrom + 1;

  const scoredFrom = firstAfter(scoredTimes, scoredTimes + nScored, time - scoreWindowMs);
  let scoredInsert = scoredFrom;
  while (scoredInsert < scoredTimes + nScored && at(scoredInsert) <= time) scoredInsert++;
  let failures: f64 = failed ? 1 : 0;
  for (let i = scoredFrom; i < scoredTimes + nScored; i++) failures += at(scoredFailed + i - scoredTimes);
  const scoredCount = <f64>(scoredTimes + nScored - scoredFrom + 1);

  // Alerts arrive in processing order, not time order: filter them all.
  let alertsKept = 0;
  let hasRapid = false;
  let hasUnusual = false;
  for (let i = 0; i < nAlerts; i++) {
    const t = at(alertTimes + i);
    if (t > time - scoreWindowMs) {
      const type = at(alertTypes + i);
      set(alertTimes + alertsKept, t);
      set(alertTypes + alertsKept, type);
      alertsKept++;
      if (type == RAPID) hasRapid = true;
      if (type == UNUSUAL) hasUnusual = true;
    }
  }

  let raiseRapid = false;
  if (<f64>inSpan > rapidThreshold) {
    raiseRapid = !inBurst;
    inBurst = true;
  } else {
    inBurst = false;
  }
  let average: f64 = 0;
  let raiseUnusual = false;
  if (count >= unusualMinHistory && count > 0) {
    average = sum / count;
    raiseUnusual = amount > unusualMultiplier * average;
  }
  if (raiseRapid) hasRapid = true;
  if (raiseUnusual) hasUnusual = true;
  const score = min<f64>(
    100,
    (hasRapid ? 50 : 0) + (hasUnusual ? 30 : 0) + 20 * (failures / scoredCount),
  );

  set(out + OUT_RECENT_FROM, <f64>(recentFrom - recent));
  set(out + OUT_RECENT_INSERT, <f64>(insert - recent));
  set(out + OUT_SPAN_FROM, <f64>(spanFrom - recentFrom));
  set(out + OUT_SPAN_TO, <f64>(insert - recentFrom + 1));
  set(out + OUT_SCORED_FROM, <f64>(scoredFrom - scoredTimes));
  set(out + OUT_SCORED_INSERT, <f64>(scoredInsert - scoredTimes));
  set(out + OUT_ALERTS_KEPT, <f64>alertsKept);
  set(out + OUT_RAISE_RAPID, raiseRapid ? 1 : 0);
  set(out + OUT_RAISE_UNUSUAL, raiseUnusual ? 1 : 0);
  set(out + OUT_IN_BURST, inBurst ? 1 : 0);
  set(out + OUT_AVERAGE, average);
  set(out + OUT_SCORE, score);
  return out;
}
