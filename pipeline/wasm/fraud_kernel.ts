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

/** What one payment did (one object per kernel, overwritten by the next call). */
export interface PaymentScore {
  raiseRapid: boolean;
  raiseUnusual: boolean;
  /** 0-100, unrounded, counting the alerts this payment raises. */
  score: number;
  /** Average of the earlier payments when there were enough of them, else 0. */
  average: number;
  /** The customer's earlier payments. */
  earlier: number;
  /** Handles of the payments in the rapid span, by time, when `raiseRapid`. */
  span: Int32Array;
  /** Handles the customer's recent list dropped: the caller may forget them. */
  freed: Int32Array;
}

/**
 * A customer's state as f64s: count, sum, in burst (0/1), the lengths of the recent, scored and
 * alert lists, then each list's entries as (time, value): a payment handle, failed (0/1), an
 * alert code.
 */
export const DUMP_HEADER = 6;

/** A store partition of customers' payment histories. */
export interface FraudKernel {
  /** Applies payment `handle` of customer `key` at event time `time`. */
  score(key: number, time: number, amount: number, failed: boolean, handle: number): PaymentScore;
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
const OUT = {
  raiseRapid: constant(wasm.OUT_RAISE_RAPID),
  raiseUnusual: constant(wasm.OUT_RAISE_UNUSUAL),
  score: constant(wasm.OUT_SCORE),
  average: constant(wasm.OUT_AVERAGE),
  earlier: constant(wasm.OUT_EARLIER),
  span: constant(wasm.OUT_SPAN),
  freed: constant(wasm.OUT_FREED),
};

const views = new MemoryViews(wasm.memory);
const NONE = new Int32Array(0);

/** The result object a kernel fills on each call. */
function emptyScore(): PaymentScore {
  return {
    raiseRapid: false,
    raiseUnusual: false,
    score: 0,
    average: 0,
    earlier: 0,
    span: NONE,
    freed: NONE,
  };
}

/** The WebAssembly operator: one store of the shared module. */
export class WasmFraudKernel implements FraudKernel {
  readonly #id: number;
  readonly #result = emptyScore();

  constructor(r: FraudScoringRules) {
    this.#id = wasm.create(
      r.rapidWindowMs,
      r.rapidThreshold,
      r.unusualMultiplier,
      r.unusualMinHistory,
      r.scoreWindowMs,
    );
  }

  score(key: number, time: number, amount: number, failed: boolean, handle: number): PaymentScore {
    wasm.score(this.#id, key, time, amount, failed ? 1 : 0, handle);
    const f64 = views.f64;
    const i32 = views.i32;
    const out = wasm.outPtr() / 8;
    const r = this.#result;
    r.raiseRapid = f64[out + OUT.raiseRapid] === 1;
    r.raiseUnusual = f64[out + OUT.raiseUnusual] === 1;
    r.score = f64[out + OUT.score];
    r.average = f64[out + OUT.average];
    r.earlier = f64[out + OUT.earlier];
    const span = r.raiseRapid ? f64[out + OUT.span] : 0;
    const freed = f64[out + OUT.freed];
    r.span = span === 0 ? NONE : i32.subarray(wasm.spanPtr() / 4, wasm.spanPtr() / 4 + span);
    r.freed = freed === 0 ? NONE : i32.subarray(wasm.freedPtr() / 4, wasm.freedPtr() / 4 + freed);
    return r;
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
  readonly #result = emptyScore();

  constructor(readonly rules: FraudScoringRules) {}

  score(key: number, time: number, amount: number, failed: boolean, handle: number): PaymentScore {
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
    const out = this.#result;
    out.raiseRapid = raiseRapid;
    out.raiseUnusual = raiseUnusual;
    out.score = Math.min(
      100,
      (rapid ? 50 : 0) + (unusual ? 30 : 0) + 20 * (failures / h.scoredTimes.length),
    );
    out.average = average;
    out.earlier = h.count;
    out.span = raiseRapid ? Int32Array.from(h.recentHandles.slice(from, at + 1)) : NONE;
    out.freed = freed.length === 0 ? NONE : Int32Array.from(freed);
    h.count++;
    h.sum += amount;
    return out;
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
