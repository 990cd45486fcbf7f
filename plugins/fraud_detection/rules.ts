/** The fraud rules as a pure state transition per payment (no I/O), so they are easy to test. */
import {
  type events,
  type FraudAlertType,
  type FraudScoringRules,
  scorePayment,
} from "../../pipeline/mod.ts";

/** The rules' thresholds are exactly what the scoring operator takes. */
export type FraudRules = FraudScoringRules;

export interface FraudAlert {
  alertId: string;
  customerId: string;
  type: FraudAlertType;
  severity: "HIGH" | "MEDIUM";
  reason: string;
  fraudScore: number;
  paymentId: string;
  eventIds: string[];
  timestamp: number;
}

/** What is kept per customer. Lists are pruned to the spans the rules look at. */
export interface FraudState {
  /** Payments in the rapid window: [time, paymentId], by time. */
  recent: [number, string][];
  inBurst: boolean;
  /** All earlier payments: count and sum (for the average). */
  count: number;
  sum: number;
  /** Payments in the score window: [time, failed]. */
  scored: [number, boolean][];
  /** Alerts in the score window: [time, type]. */
  alerts: [number, FraudAlertType][];
}

export function initialFraudState(): FraudState {
  return { recent: [], inBurst: false, count: 0, sum: 0, scored: [], alerts: [] };
}

/**
 * Applies one payment (at event time `time`): the new state, and the alerts it raises. The
 * windowed counting and the score run in the WebAssembly fraud-scoring operator; this keeps
 * the payment ids and words the alerts.
 */
export function evaluatePayment(
  state: FraudState,
  payment: events.PaymentEvent,
  time: number,
  rules: FraudRules,
): { state: FraudState; alerts: FraudAlert[] } {
  const failed = payment.status === "FAILED";
  const d = scorePayment(
    {
      recentTimes: state.recent.map(([t]) => t),
      scoredTimes: state.scored.map(([t]) => t),
      scoredFailed: state.scored.map(([, failed]) => failed),
      alerts: state.alerts,
      count: state.count,
      sum: state.sum,
      inBurst: state.inBurst,
    },
    { time, amount: payment.amount, failed },
    rules,
  );
  const recent = insertAt<[number, string]>(state.recent, d.recentFrom, d.recentInsert, [
    time,
    payment.paymentId,
  ]);
  const scored = insertAt<[number, boolean]>(state.scored, d.scoredFrom, d.scoredInsert, [
    time,
    failed,
  ]);
  const raised: Omit<FraudAlert, "fraudScore">[] = [];
  if (d.raiseRapid) {
    const inSpan = recent.slice(d.spanFrom, d.spanTo);
    raised.push({
      alertId: `${payment.paymentId}:RAPID_PAYMENTS`,
      customerId: payment.customerId,
      type: "RAPID_PAYMENTS",
      severity: "HIGH",
      reason: `${inSpan.length} payments within ${
        rules.rapidWindowMs / 1000
      } s (more than ${rules.rapidThreshold})`,
      paymentId: payment.paymentId,
      eventIds: inSpan.map(([, id]) => id),
      timestamp: time,
    });
  }
  if (d.raiseUnusual) {
    raised.push({
      alertId: `${payment.paymentId}:UNUSUAL_AMOUNT`,
      customerId: payment.customerId,
      type: "UNUSUAL_AMOUNT",
      severity: "MEDIUM",
      reason: `amount ${payment.amount} is more than ${rules.unusualMultiplier} × the average ${
        round2(d.average)
      } of ${state.count} earlier payments`,
      paymentId: payment.paymentId,
      eventIds: [payment.paymentId],
      timestamp: time,
    });
  }
  const alerts = d.alerts;
  for (const a of raised) alerts.push([time, a.type]);
  return {
    state: {
      recent,
      inBurst: d.inBurst,
      count: state.count + 1,
      sum: state.sum + payment.amount,
      scored,
      alerts,
    },
    alerts: raised.map((a) => ({ ...a, fraudScore: round2(d.score) })),
  };
}

/** list[from..] with `item` inserted at index `at` of the list (at >= from). */
function insertAt<T>(list: readonly T[], from: number, at: number, item: T): T[] {
  const out = list.slice(from, at);
  out.push(item);
  for (let i = at; i < list.length; i++) out.push(list[i]);
  return out;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
