import type { FraudScoringStore, PaymentRisk } from "../wasm/fraud_scoring_store.ts";
import {
  type AnyRecord,
  type DeferredRecord,
  type DeferringNode,
  type ProcessorContext,
  ProcessorNode,
} from "./node.ts";

/** What the fraud-scoring operator reads of a payment besides its customer (the key) and time. */
export interface PaymentFields {
  readonly paymentId: string;
  readonly amount: number;
  readonly failed: boolean;
}

/** A payment with what the fraud-scoring operator decided about it. */
export interface ScoredValue<V> {
  readonly payment: V;
  readonly risk: PaymentRisk;
}

/**
 * Scores payments with a fraud-scoring store, one operator call per batch: the payments are
 * held until the commit (with the record cache on), written to the operator as columns, and
 * each is forwarded with its risk in input order, as of its own record.
 */
export class FraudScoringNode extends ProcessorNode implements DeferringNode<PaymentFields> {
  constructor(
    name: string,
    plugin: string,
    readonly storeName: string,
    // deno-lint-ignore no-explicit-any
    readonly fields: (value: any) => PaymentFields,
  ) {
    super(name, plugin);
    this.stores.push(storeName);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (!this.hasStringKey(record, ctx, `fraud scoring '${this.storeName}'`)) return;
    const f = this.fields(record.value);
    if (typeof f?.paymentId !== "string" || !Number.isFinite(f.amount)) {
      throw new TypeError(
        `fraud scoring '${this.storeName}' needs a string paymentId and a finite amount, got ${
          JSON.stringify(f)
        }`,
      );
    }
    ctx.defer(this, record, f);
  }

  flushDeferred(items: readonly DeferredRecord<PaymentFields>[], ctx: ProcessorContext): void {
    const store = ctx.store<FraudScoringStore>(this.storeName);
    const customers = items.map((i) => i.record.key as string);
    const payments = items.map((i) => ({
      paymentId: i.value.paymentId,
      time: i.record.timestamp,
      amount: i.value.amount,
      failed: i.value.failed === true,
    }));
    // A trap in the operator comes out of the store as an OperatorFailure.
    const risks = store.scoreAll(customers, payments);
    for (let i = 0; i < items.length; i++) {
      const record = items[i].record;
      const value: ScoredValue<unknown> = { payment: record.value, risk: risks[i] };
      ctx.within(items[i], () => this.forward({ ...record, value }, ctx));
    }
  }
}
