/**
 * Fraud scoring per customer (the rules of shared/spec/events-and-rules.md) with the payment
 * histories kept by the operator, in two implementations behind one interface: the WebAssembly
 * operator, whose histories live in linear memory, and a TypeScript reference. Customers are
 * key ids and payments are handles: the strings stay with the caller.
 */
import * as wasm from "../../operators-wasm/build/fraud_scoring.wasm";
import { MemoryViews } from "./memory_views.ts";
import type { OperatorMode } from "./window_kernel.ts";

export type FraudAlertType = "RAPID_PAYMENTS" | "UNUSUAL_AMOUNT";

/** The codes alerts have in a dump's alert list. */
export const ALERT_CODES: Readonly<Record<FraudAlertType, number>> = {
  RAPID_PAYMENTS: 1,
  UNUSUAL_AMOUNT: 2,
};

export interface FraudScoringRules {
  readonly rapidWindowMs: number;
  readonly rapidThreshold: number;
  readonly unusualMultiplier: number;
  readonly unusualMinHistory: number;
  readonly scoreWindowMs: number;
}

/** A batch of payments as columns, filled by the caller before `score`. */
export interface FraudColumns {
  readonly keys: Int32Array;
  readonly times: Float64Array;
  readonly amounts: Float64Array;
  /** 1 for a FAILED payment, else 0. */
  readonly failed: Int32Array;
  /** The payments' handles: the kernel stores them, only the caller knows the ids. */
  readonly handles: Int32Array;
}

/** Fields of a payment's result row (f64 each), SCORE_ROW of them. */
export const SCORE = {
  raiseRapid: 0,
  raiseUnusual: 1,
  /** 0-100, unrounded, counting the alerts this payment raises. */
  score: 2,
  /** Average of the earlier payments when there were enough of them, else 0. */
  average: 3,
  /** The customer's earlier payments. */
  earlier: 4,
  /** Where the payment's rapid span starts in `spans`, and how many handles it has (0: none). */
  spanAt: 5,
  span: 6,
} as const;
export const SCORE_ROW = 7;

/** What a batch did (views valid until the next call). */
export interface FraudResults {
  /** A row of SCORE_ROW per payment, in column order. */
  readonly rows: Float64Array;
  /** The handles of every raised rapid span, by time within a span, back to back. */
  readonly spans: Int32Array;
  /** Handles the customers' recent lists dropped: the caller may forget them. */
  readonly freed: Int32Array;
}

/**
 * A customer's state as f64s: count, sum, in burst (0/1), the lengths of the recent, scored and
 * alert lists, then each list's entries as (time, value): a payment handle, failed (0/1), an
 * alert code.
 */
export const DUMP_HEADER = 6;

/** A store partition of customers' payment histories. */
export interface FraudKernel {
  /** Columns for a batch of `n` payments (views valid until the next call). */
  prepare(n: number): FraudColumns;
  /** Scores the `n` payments of the columns in order, adding each to its customer's history. */
  score(n: number): FraudResults;
  /** The customer's state (view valid until the next call), or null when unknown. */
  dump(key: number): Float64Array | null;
  /** Sets a customer's state from a dump. */
  load(key: number, rows: Float64Array): void;
  readonly customers: number;
  /** Frees its memory; unusable after. */
  release(): void;
}

export function fraudKernel(mode: OperatorMode, rules: FraudScoringRules): FraudKernel {
  return mode === "wasm" ? new WasmFraudKernel(rules) : new TsFraudKernel(rules);
}

/** Exported constants: Deno's Wasm imports hand out their values (others give a Global). */
const constant = (g: unknown) => (g instanceof WebAssembly.Global ? g.value : g) as number;
const wasmRow = [
  [SCORE.raiseRapid, wasm.OUT_RAISE_RAPID],
  [SCORE.raiseUnusual, wasm.OUT_RAISE_UNUSUAL],
  [SCORE.score, wasm.OUT_SCORE],
  [SCORE.average, wasm.OUT_AVERAGE],
  [SCORE.earlier, wasm.OUT_EARLIER],
  [SCORE.spanAt, wasm.OUT_SPAN_AT],
  [SCORE.span, wasm.OUT_SPAN],
  [SCORE_ROW, wasm.OUT_LENGTH],
];
if (wasmRow.some(([field, g]) => constant(g) !== field)) {
  throw new Error("fraud_scoring.wasm lays out its result rows differently: rebuild it");
}

const views = new MemoryViews(wasm.memory);
/** The WebAssembly operator: one store of the shared module. */
export class WasmFraudKernel implements FraudKernel {
  readonly #id: number;

  constructor(r: FraudScoringRules) {
    this.#id = wasm.create(
      r.rapidWindowMs,
      r.rapidThreshold,
      r.unusualMultiplier,
      r.unusualMinHistory,
      r.scoreWindowMs,
    );
  }

  prepare(n: number): FraudColumns {
    // May grow the memory: every view is taken after it.
    wasm.prepare(n);
    const f64 = views.f64;
    const i32 = views.i32;
    return {
      keys: i32.subarray(wasm.keysPtr() / 4, wasm.keysPtr() / 4 + n),
      times: f64.subarray(wasm.timesPtr() / 8, wasm.timesPtr() / 8 + n),
      amounts: f64.subarray(wasm.amountsPtr() / 8, wasm.amountsPtr() / 8 + n),
      failed: i32.subarray(wasm.failedPtr() / 4, wasm.failedPtr() / 4 + n),
      handles: i32.subarray(wasm.handlesPtr() / 4, wasm.handlesPtr() / 4 + n),
    };
  }

  score(n: number): FraudResults {
    wasm.score(this.#id, n);
    const f64 = views.f64;
    const i32 = views.i32;
    const rows = f64.subarray(wasm.outPtr() / 8, wasm.outPtr() / 8 + n * SCORE_ROW);
    let spans = 0;
    for (let at = 0; at < rows.length; at += SCORE_ROW) spans += rows[at + SCORE.span];
    return {
      rows,
      spans: i32.subarray(wasm.spanPtr() / 4, wasm.spanPtr() / 4 + spans),
      freed: i32.subarray(wasm.freedPtr() / 4, wasm.freedPtr() / 4 + wasm.freedHandles()),
    };
  }

  dump(key: number): Float64Array | null {
    const n = wasm.dumpCustomer(this.#id, key);
    if (n === 0) return null;
    const at = wasm.rowsPtr() / 8;
    return views.f64.subarray(at, at + n);
  }

  load(key: number, rows: Float64Array): void {
    const at = wasm.prepareLoad(rows.length) / 8;
    views.f64.set(rows, at);
    wasm.loadCustomer(this.#id, key);
  }

  get customers(): number {
    return wasm.customers(this.#id);
  }

  release(): void {
    wasm.release(this.#id);
  }
}

/** One customer as the reference keeps it: parallel arrays, lists sorted by time but alerts. */
interface History {
  count: number;
  sum: number;
  inBurst: boolean;
  recentTimes: number[];
  recentHandles: number[];
  scoredTimes: number[];
  scoredFailed: number[];
  alertTimes: number[];
  alertCodes: number[];
}

/** The TypeScript reference: the same rules over plain arrays, written to be read. */
class TsFraudKernel implements FraudKernel {
  readonly #customers = new Map<number, History>();
  #columns: FraudColumns = columnsOf(0);
  /** The last payment's rapid span (when raised) and the handles it freed. */
  #span: number[] = [];
  #freed: number[] = [];

  constructor(readonly rules: FraudScoringRules) {}

  prepare(n: number): FraudColumns {
    if (this.#columns.keys.length < n) this.#columns = columnsOf(n);
    return this.#columns;
  }

  score(n: number): FraudResults {
    const c = this.#columns;
    const rows = new Float64Array(n * SCORE_ROW);
    const spans: number[] = [];
    const freed: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = rows.subarray(i * SCORE_ROW, (i + 1) * SCORE_ROW);
      this.#scoreOne(c.keys[i], c.times[i], c.amounts[i], c.failed[i] === 1, c.handles[i], row);
      const span = this.#span;
      row[SCORE.spanAt] = spans.length;
      row[SCORE.span] = span.length;
      spans.push(...span);
      freed.push(...this.#freed);
    }
    return { rows, spans: Int32Array.from(spans), freed: Int32Array.from(freed) };
  }

  #scoreOne(
    key: number,
    time: number,
    amount: number,
    failed: boolean,
    handle: number,
    out: Float64Array,
  ): void {
    const r = this.rules;
    let h = this.#customers.get(key);
    if (!h) {
      h = {
        count: 0,
        sum: 0,
        inBurst: false,
        recentTimes: [],
        recentHandles: [],
        scoredTimes: [],
        scoredFailed: [],
        alertTimes: [],
        alertCodes: [],
      };
      this.#customers.set(key, h);
    }
    // Recent payments within twice the rapid window are kept (for late arrivals).
    const dropped = countUpTo(h.recentTimes, time - 2 * r.rapidWindowMs);
    h.recentTimes.splice(0, dropped);
    const freed = h.recentHandles.splice(0, dropped);
    const at = insertAfter(h.recentTimes, time);
    h.recentHandles.splice(at, 0, handle);
    let from = at;
    while (from > 0 && h.recentTimes[from - 1] >= time - r.rapidWindowMs) from--;
    const inSpan = at - from + 1;

    const expired = countUpTo(h.scoredTimes, time - r.scoreWindowMs);
    h.scoredTimes.splice(0, expired);
    h.scoredFailed.splice(0, expired);
    h.scoredFailed.splice(insertAfter(h.scoredTimes, time), 0, failed ? 1 : 0);
    const failures = h.scoredFailed.reduce((a, b) => a + b, 0);

    const keep = h.alertTimes.map((t) => t > time - r.scoreWindowMs);
    h.alertTimes = h.alertTimes.filter((_, i) => keep[i]);
    h.alertCodes = h.alertCodes.filter((_, i) => keep[i]);

    let raiseRapid = false;
    if (inSpan > r.rapidThreshold) {
      raiseRapid = !h.inBurst;
      h.inBurst = true;
    } else h.inBurst = false;
    const average = h.count >= r.unusualMinHistory && h.count > 0 ? h.sum / h.count : 0;
    const raiseUnusual = h.count >= r.unusualMinHistory && h.count > 0 &&
      amount > r.unusualMultiplier * average;
    if (raiseRapid) {
      h.alertTimes.push(time);
      h.alertCodes.push(ALERT_CODES.RAPID_PAYMENTS);
    }
    if (raiseUnusual) {
      h.alertTimes.push(time);
      h.alertCodes.push(ALERT_CODES.UNUSUAL_AMOUNT);
    }
    const rapid = h.alertCodes.includes(ALERT_CODES.RAPID_PAYMENTS);
    const unusual = h.alertCodes.includes(ALERT_CODES.UNUSUAL_AMOUNT);
    out[SCORE.raiseRapid] = raiseRapid ? 1 : 0;
    out[SCORE.raiseUnusual] = raiseUnusual ? 1 : 0;
    out[SCORE.score] = Math.min(
      100,
      (rapid ? 50 : 0) + (unusual ? 30 : 0) + 20 * (failures / h.scoredTimes.length),
    );
    out[SCORE.average] = average;
    out[SCORE.earlier] = h.count;
    this.#span = raiseRapid ? h.recentHandles.slice(from, at + 1) : [];
    this.#freed = freed;
    h.count++;
    h.sum += amount;
  }

  dump(key: number): Float64Array | null {
    const h = this.#customers.get(key);
    if (!h) return null;
    const pairs = (times: number[], values: number[]) => times.flatMap((t, i) => [t, values[i]]);
    return Float64Array.from([
      h.count,
      h.sum,
      h.inBurst ? 1 : 0,
      h.recentTimes.length,
      h.scoredTimes.length,
      h.alertTimes.length,
      ...pairs(h.recentTimes, h.recentHandles),
      ...pairs(h.scoredTimes, h.scoredFailed),
      ...pairs(h.alertTimes, h.alertCodes),
    ]);
  }

  load(key: number, rows: Float64Array): void {
    const list = (from: number, n: number): [number[], number[]] => {
      const times: number[] = [];
      const values: number[] = [];
      for (let i = 0; i < n; i++) {
        times.push(rows[from + 2 * i]);
        values.push(rows[from + 2 * i + 1]);
      }
      return [times, values];
    };
    const [nRecent, nScored, nAlerts] = [rows[3], rows[4], rows[5]];
    const recent = list(DUMP_HEADER, nRecent);
    const scored = list(DUMP_HEADER + 2 * nRecent, nScored);
    const alerts = list(DUMP_HEADER + 2 * (nRecent + nScored), nAlerts);
    this.#customers.set(key, {
      count: rows[0],
      sum: rows[1],
      inBurst: rows[2] === 1,
      recentTimes: recent[0],
      recentHandles: recent[1],
      scoredTimes: scored[0],
      scoredFailed: scored[1],
      alertTimes: alerts[0],
      alertCodes: alerts[1],
    });
  }

  get customers(): number {
    return this.#customers.size;
  }

  release(): void {
    this.#customers.clear();
  }
}

function columnsOf(n: number): FraudColumns {
  return {
    keys: new Int32Array(n),
    times: new Float64Array(n),
    amounts: new Float64Array(n),
    failed: new Int32Array(n),
    handles: new Int32Array(n),
  };
}

/** How many of the sorted `times` are <= `upTo`. */
function countUpTo(times: readonly number[], upTo: number): number {
  let k = 0;
  while (k < times.length && times[k] <= upTo) k++;
  return k;
}

/** Inserts `time` after the times at or before it; returns its index. */
function insertAfter(times: number[], time: number): number {
  let i = times.length;
  while (i > 0 && times[i - 1] > time) i--;
  times.splice(i, 0, time);
  return i;
}
