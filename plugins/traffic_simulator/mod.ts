/**
 * Traffic simulator: a seeded, realistic generator of customer info, activity, orders, payments
 * and product views — with fraud bursts, unusual amounts, demand spikes and a small share of
 * malformed records — so a fresh install shows every topology working. Switch it off with
 * `"enabled": false` in the config.
 */
import { definePlugin, type ProducedRecord, z } from "../../pipeline/mod.ts";
import { TrafficModel } from "./traffic_model.ts";

const Options = z.strictObject({
  seed: z.number().int().default(42),
  eventsPerSecond: z.number().positive().max(1_000_000).default(200),
  customers: z.number().int().positive().default(2_000),
  products: z.number().int().positive().default(300),
  /** Chance per tick of a fraud burst (a customer paying 15 times within a minute). */
  fraudBurstChance: z.number().min(0).max(1).default(0.01),
  unusualAmountShare: z.number().min(0).max(1).default(0.01),
  demandSpikeChance: z.number().min(0).max(1).default(0.005),
  malformedShare: z.number().min(0).max(1).default(0.005),
  tickMs: z.number().int().positive().default(100),
  topics: z.strictObject({
    customers: z.string().default("bss.customer.info"),
    activity: z.string().default("bss.customer.events"),
    orders: z.string().default("bss.order.events"),
    payments: z.string().default("bss.payment.events"),
    views: z.string().default("bss.product.views"),
  }).default({
    customers: "bss.customer.info",
    activity: "bss.customer.events",
    orders: "bss.order.events",
    payments: "bss.payment.events",
    views: "bss.product.views",
  }),
});

export default definePlugin({
  name: "traffic_simulator",
  options: Options,
  build() {
    // Produces only; no topology.
  },
  async produce(ctx, o) {
    const model = new TrafficModel(o);
    const send = async (batch: Map<string, ProducedRecord[]>) => {
      for (const [topic, records] of batch) {
        if (records.length > 0) await ctx.produce(topic, records);
      }
    };
    // Reference data first, so orders find their customers.
    for (const chunk of model.customerInfo(ctx.now())) await send(chunk);
    let owed = 0;
    while (!ctx.signal.aborted) {
      const started = ctx.now();
      owed += (o.eventsPerSecond * o.tickMs) / 1000;
      const n = Math.floor(owed);
      owed -= n;
      await send(model.tick(n, started));
      const wait = Math.max(0, o.tickMs - (ctx.now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  },
});
