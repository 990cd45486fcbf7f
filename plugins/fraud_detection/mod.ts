/**
 * Fraud detection per customer (rules in shared/spec/events-and-rules.md):
 * - RAPID_PAYMENTS (HIGH): more than `rapidThreshold` payments within any `rapidWindowMs` span;
 *   one alert per burst — a new one needs the count to fall back to the threshold or below.
 * - UNUSUAL_AMOUNT (MEDIUM): amount > `unusualMultiplier` × the average of the customer's
 *   earlier payments, once there are at least `unusualMinHistory` of them.
 * - Fraud score with every alert: 50 if a RAPID_PAYMENTS alert in the last `scoreWindowMs`,
 *   + 30 if an UNUSUAL_AMOUNT alert, + 20 × the share of FAILED payments in that span; capped
 *   at 100. A score above `highRiskScore` writes the customer to the high-risk topic.
 */
import { definePlugin, events, z } from "../../pipeline/mod.ts";
import { alertsFor } from "./rules.ts";

const Options = z.strictObject({
  paymentsTopic: z.string().default("bss.payment.events"),
  alertsTopic: z.string().default("bss.fraud.alerts"),
  highRiskTopic: z.string().default("bss.fraud.high-risk"),
  rapidWindowMs: z.number().int().positive().default(300_000),
  rapidThreshold: z.number().int().positive().default(10),
  unusualMultiplier: z.number().positive().default(5),
  unusualMinHistory: z.number().int().nonnegative().default(3),
  scoreWindowMs: z.number().int().positive().default(3_600_000),
  highRiskScore: z.number().min(0).max(100).default(75),
});

export default definePlugin({
  name: "fraud_detection",
  options: Options,
  build(b, o) {
    // Each customer's payment history lives in the fraud-scoring operator (WebAssembly linear
    // memory by default), called once per batch with the payments in order. Alerts follow every
    // payment: no record cache holds them. Each payment's alerts travel together, so that one
    // payment writes the customer high-risk once.
    const histories = b.fraudScoringStore("fraud-state", o);
    const raised = b.stream(o.paymentsTopic, {
      schema: events.PaymentEvent,
      keyField: "customerId",
    })
      .scorePayments(histories, (p) => ({
        paymentId: p.paymentId,
        amount: p.amount,
        failed: p.status === "FAILED",
      }))
      .flatMapValues(({ payment, risk }, _customerId, m) => {
        const alerts = alertsFor(payment, risk, m.timestamp, o);
        return alerts.length > 0 ? [alerts] : [];
      });
    raised.flatMapValues((alerts) => alerts).to(o.alertsTopic);
    raised.flatMapValues((alerts) => alerts.filter((a) => a.fraudScore > o.highRiskScore).slice(-1))
      .mapValues((a) => ({
        customerId: a.customerId,
        fraudScore: a.fraudScore,
        reason: a.type,
        alertId: a.alertId,
        eventIds: a.eventIds,
        timestamp: a.timestamp,
      }))
      .to(o.highRiskTopic);
  },
});
