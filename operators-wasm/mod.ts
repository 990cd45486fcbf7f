/**
 * Typed bindings to the hot-path operators written in AssemblyScript (`assembly/`), compiled to
 * WebAssembly in `build/` by `deno task build:wasm`. The built modules are committed, so running
 * the pipeline needs no compiler; tests/wasm_build_test.ts checks they match the sources.
 */
import * as fraudWasm from "./build/fraud_scoring.wasm";
/** A Float64Array over a module's whole memory, made again only when the memory grows. */
function memoryView(memory: WebAssembly.Memory): () => Float64Array {
  let view = new Float64Array(memory.buffer);
  return () => view.buffer === memory.buffer ? view : (view = new Float64Array(memory.buffer));
}
const fraudMemory = memoryView(fraudWasm.memory);

export type FraudAlertType = "RAPID_PAYMENTS" | "UNUSUAL_AMOUNT";

export interface FraudScoringRules {
  readonly rapidWindowMs: number;
  readonly rapidThreshold: number;
  readonly unusualMultiplier: number;
  readonly unusualMinHistory: number;
  readonly scoreWindowMs: number;
}

/** One customer's history as the scoring sees it; time lists ascending except alerts. */
export interface PaymentHistory {
  readonly recentTimes: readonly number[];
  readonly scoredTimes: readonly number[];
  readonly scoredFailed: readonly boolean[];
  readonly alerts: readonly (readonly [number, FraudAlertType])[];
  readonly count: number;
  readonly sum: number;
  readonly inBurst: boolean;
}

/** What one payment does to the history, as positions in the lists the host keeps. */
export interface FraudDecision {
  /** Recent payments kept: [recentFrom, end) of the old list; the new one goes at recentInsert. */
  readonly recentFrom: number;
  readonly recentInsert: number;
  /** Payments in the rapid window: [spanFrom, spanTo) of the new recent list. */
  readonly spanFrom: number;
  readonly spanTo: number;
  readonly scoredFrom: number;
  readonly scoredInsert: number;
  /** Alerts still in the score window, before this payment's. */
  readonly alerts: [number, FraudAlertType][];
  readonly raiseRapid: boolean;
  readonly raiseUnusual: boolean;
  readonly inBurst: boolean;
  /** Average of earlier payments when there were enough of them, else 0. */
  readonly average: number;
  /** 0-100, unrounded, counting the alerts this payment raises. */
  readonly score: number;
}

/** Exported constants: Deno's Wasm imports hand out their values (others give a Global). */
const slot = (g: unknown) => (g instanceof WebAssembly.Global ? g.value : g) as number;
const OUT = {
  recentFrom: slot(fraudWasm.OUT_RECENT_FROM),
  recentInsert: slot(fraudWasm.OUT_RECENT_INSERT),
  spanFrom: slot(fraudWasm.OUT_SPAN_FROM),
  spanTo: slot(fraudWasm.OUT_SPAN_TO),
  scoredFrom: slot(fraudWasm.OUT_SCORED_FROM),
  scoredInsert: slot(fraudWasm.OUT_SCORED_INSERT),
  alertsKept: slot(fraudWasm.OUT_ALERTS_KEPT),
  raiseRapid: slot(fraudWasm.OUT_RAISE_RAPID),
  raiseUnusual: slot(fraudWasm.OUT_RAISE_UNUSUAL),
  inBurst: slot(fraudWasm.OUT_IN_BURST),
  average: slot(fraudWasm.OUT_AVERAGE),
  score: slot(fraudWasm.OUT_SCORE),
  length: slot(fraudWasm.OUT_LENGTH),
};
const ALERT_CODE: Record<FraudAlertType, number> = {
  RAPID_PAYMENTS: slot(fraudWasm.RAPID),
  UNUSUAL_AMOUNT: slot(fraudWasm.UNUSUAL),
};
const ALERT_TYPE = new Map<number, FraudAlertType>(
  Object.entries(ALERT_CODE).map(([type, code]) => [code, type as FraudAlertType]),
);

/** Scores one payment at event time `time` against a customer's history. */
export function scorePayment(
  history: PaymentHistory,
  payment: { readonly time: number; readonly amount: number; readonly failed: boolean },
  rules: FraudScoringRules,
): FraudDecision {
  const nRecent = history.recentTimes.length;
  const nScored = history.scoredTimes.length;
  const nAlerts = history.alerts.length;
  const length = nRecent + 2 * nScored + 2 * nAlerts + OUT.length;
  const base = fraudWasm.reserve(length) / 8; // may grow the memory: take the view after it
  const mem = fraudMemory();
  let i = base;
  for (const t of history.recentTimes) mem[i++] = t;
  for (const t of history.scoredTimes) mem[i++] = t;
  for (const f of history.scoredFailed) mem[i++] = f ? 1 : 0;
  for (const [t] of history.alerts) mem[i++] = t;
  for (const [, type] of history.alerts) mem[i++] = ALERT_CODE[type];
  let out = fraudWasm.evaluate(
    nRecent,
    nScored,
    nAlerts,
    payment.time,
    payment.amount,
    payment.failed ? 1 : 0,
    history.count,
    history.sum,
    history.inBurst ? 1 : 0,
    rules.rapidWindowMs,
    rules.rapidThreshold,
    rules.unusualMultiplier,
    rules.unusualMinHistory,
    rules.scoreWindowMs,
  );
  const alertTimes = base + nRecent + 2 * nScored;
  out += base;
  const kept = mem[out + OUT.alertsKept];
  const alerts: [number, FraudAlertType][] = [];
  for (let a = 0; a < kept; a++) {
    alerts.push([mem[alertTimes + a], ALERT_TYPE.get(mem[alertTimes + nAlerts + a])!]);
  }
  return {
    recentFrom: mem[out + OUT.recentFrom],
    recentInsert: mem[out + OUT.recentInsert],
    spanFrom: mem[out + OUT.spanFrom],
    spanTo: mem[out + OUT.spanTo],
    scoredFrom: mem[out + OUT.scoredFrom],
    scoredInsert: mem[out + OUT.scoredInsert],
    alerts,
    raiseRapid: mem[out + OUT.raiseRapid] === 1,
    raiseUnusual: mem[out + OUT.raiseUnusual] === 1,
    inBurst: mem[out + OUT.inBurst] === 1,
    average: mem[out + OUT.average],
    score: mem[out + OUT.score],
  };
}
