/** The fraud rules as a pure state transition per payment (no I/O), so they are easy to test. */
import type { events } from "../../pipeline/mod.ts";

export interface FraudRules {
  readonly rapidWindowMs: number;
  readonly rapidThreshold: number;
  readonly unusualMultiplier: number;
  readonly unusualMinHistory: number;
  readonly scoreWindowMs: number;
}

export interface FraudAlert {
  alertId: string;
  customerId: string;
  type: "RAPID_PAYMENTS" | "UNUSUAL_AMOUNT";
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
  alerts: [number, FraudAlert["type"]][];
  /** Alerts raised by the latest payment (emitted downstream). */
  emitted: FraudAlert[];
}

export function initialFraudState(): FraudState {
  return { recent: [], inBurst: false, count: 0, sum: 0, scored: [], alerts: [], emitted: [] };
}

/** Applies one payment (at event time `time`) and returns the new state with any alerts. */
export function evaluatePayment(
  state: FraudState,
  payment: events.PaymentEvent,
  time: number,
  rules: FraudRules,
): FraudState {
  const recent = insertByTime(state.recent.filter(([t]) => t > time - rules.rapidWindowMs * 2), [
    time,
    payment.paymentId,
  ]);
  // Payments within the span of rapidWindowMs ending at this payment.
  const inSpan = recent.filter(([t]) => t >= time - rules.rapidWindowMs && t <= time);
  const scored = insertByTime(state.scored.filter(([t]) => t > time - rules.scoreWindowMs), [
    time,
    payment.status === "FAILED",
  ]);
  const alerts = state.alerts.filter(([t]) => t > time - rules.scoreWindowMs);
  const raised: Omit<FraudAlert, "fraudScore">[] = [];
  let inBurst = state.inBurst;
  if (inSpan.length > rules.rapidThreshold) {
    if (!inBurst) {
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
    inBurst = true;
  } else {
    inBurst = false;
  }
  if (state.count >= rules.unusualMinHistory && state.count > 0) {
    const average = state.sum / state.count;
    if (payment.amount > rules.unusualMultiplier * average) {
      raised.push({
        alertId: `${payment.paymentId}:UNUSUAL_AMOUNT`,
        customerId: payment.customerId,
        type: "UNUSUAL_AMOUNT",
        severity: "MEDIUM",
        reason: `amount ${payment.amount} is more than ${rules.unusualMultiplier} × the average ${
          round2(average)
        } of ${state.count} earlier payments`,
        paymentId: payment.paymentId,
        eventIds: [payment.paymentId],
        timestamp: time,
      });
    }
  }
  for (const a of raised) alerts.push([time, a.type]);
  const failedShare = scored.filter(([, failed]) => failed).length / scored.length;
  const score = Math.min(
    100,
    (alerts.some(([, t]) => t === "RAPID_PAYMENTS") ? 50 : 0) +
      (alerts.some(([, t]) => t === "UNUSUAL_AMOUNT") ? 30 : 0) +
      20 * failedShare,
  );
  return {
    recent,
    inBurst,
    count: state.count + 1,
    sum: state.sum + payment.amount,
    scored,
    alerts,
    emitted: raised.map((a) => ({ ...a, fraudScore: round2(score) })),
  };
}

function insertByTime<T extends [number, unknown]>(list: T[], item: T): T[] {
  const out = [...list];
  let i = out.length;
  while (i > 0 && out[i - 1][0] > item[0]) i--;
  out.splice(i, 0, item);
  return out;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
