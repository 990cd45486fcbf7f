/**
 * The fraud alerts a payment raises, worded from what the fraud-scoring store decided (the
 * windowed counting and the score run in the operator; this names the payments and words the
 * alerts).
 */
import type { events, FraudAlertType, FraudScoringRules, PaymentRisk } from "../../pipeline/mod.ts";

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

/** The alerts of one payment at event time `time`, rapid payments first. */
export function alertsFor(
  payment: events.PaymentEvent,
  risk: PaymentRisk,
  time: number,
  rules: FraudRules,
): FraudAlert[] {
  const alerts: FraudAlert[] = [];
  const fraudScore = round2(risk.score);
  if (risk.raiseRapid) {
    alerts.push({
      alertId: `${payment.paymentId}:RAPID_PAYMENTS`,
      customerId: payment.customerId,
      type: "RAPID_PAYMENTS",
      severity: "HIGH",
      reason: `${risk.rapidPayments.length} payments within ${
        rules.rapidWindowMs / 1000
      } s (more than ${rules.rapidThreshold})`,
      fraudScore,
      paymentId: payment.paymentId,
      eventIds: [...risk.rapidPayments],
      timestamp: time,
    });
  }
  if (risk.raiseUnusual) {
    alerts.push({
      alertId: `${payment.paymentId}:UNUSUAL_AMOUNT`,
      customerId: payment.customerId,
      type: "UNUSUAL_AMOUNT",
      severity: "MEDIUM",
      reason: `amount ${payment.amount} is more than ${rules.unusualMultiplier} × the average ${
        round2(risk.average)
      } of ${risk.earlierPayments} earlier payments`,
      fraudScore,
      paymentId: payment.paymentId,
      eventIds: [payment.paymentId],
      timestamp: time,
    });
  }
  return alerts;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
