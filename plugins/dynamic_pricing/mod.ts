/**
 * Dynamic pricing per product: new orders in 15-minute tumbling windows;
 * demandFactor = orders / expectedOrders, recommendedPrice = basePrice × (1 + (demandFactor − 1)
 * × sensitivity), clamped to ±maxChange of basePrice and rounded to cents. basePrice is the
 * latest unitPrice seen for the product unless `basePrices` overrides it.
 */
import { definePlugin, events, TimeWindows, z } from "../../pipeline/mod.ts";

const Options = z.strictObject({
  ordersTopic: z.string().default("bss.order.events"),
  pricingTopic: z.string().default("bss.pricing.recommendations"),
  windowMs: z.number().int().positive().default(900_000),
  graceMs: z.number().int().nonnegative().default(60_000),
  expectedOrders: z.number().positive().default(50),
  /** Per-product expected orders per window. */
  expectedOrdersByProduct: z.record(z.string(), z.number().positive()).default({}),
  /** Per-product base prices; otherwise the latest unitPrice. */
  basePrices: z.record(z.string(), z.number().nonnegative()).default({}),
  sensitivity: z.number().nonnegative().default(0.1),
  maxChange: z.number().min(0).max(1).default(0.1),
  countStatuses: z.array(z.enum(["CREATED", "PAID", "CANCELLED"])).default(["CREATED"]),
  emit: z.enum(["update", "close"]).default("update"),
});

export default definePlugin({
  name: "dynamic_pricing",
  options: Options,
  build(b, o) {
    b.stream(o.ordersTopic, { schema: events.OrderEvent, keyField: "orderId" })
      .filter((_k, order) => o.countStatuses.includes(order.status))
      // Only what demand needs crosses the repartition topic.
      .map((_k, order) => ({
        key: order.productId,
        value: { orderId: order.orderId, unitPrice: order.unitPrice },
      }))
      .groupByKey()
      .windowedBy(TimeWindows.ofSizeAndGrace(o.windowMs, o.graceMs))
      // Orders counted, and the latest unit price as `last`.
      .stats((order) => order.unitPrice, { store: "product-demand-15m", emit: o.emit })
      .toStream()
      .map((wk, d) => {
        const productId = wk.key;
        const expected = o.expectedOrdersByProduct[productId] ?? o.expectedOrders;
        const basePrice = o.basePrices[productId] ?? d.last;
        const demandFactor = d.count / expected;
        const raw = basePrice * (1 + (demandFactor - 1) * o.sensitivity);
        const clamped = Math.min(
          basePrice * (1 + o.maxChange),
          Math.max(basePrice * (1 - o.maxChange), raw),
        );
        const recommendedPrice = Math.round(clamped * 100) / 100;
        return {
          key: productId,
          value: {
            productId,
            windowStart: wk.window.start,
            windowEnd: wk.window.end,
            orders: d.count,
            expectedOrders: expected,
            demandFactor: Math.round(demandFactor * 10_000) / 10_000,
            basePrice,
            recommendedPrice,
            changePercent: basePrice === 0
              ? 0
              : Math.round((recommendedPrice / basePrice - 1) * 10_000) / 100,
            // A window's result on close follows no single order.
            eventIds: d.event ? [d.event.orderId] : [],
          },
        };
      })
      .to(o.pricingTopic);
  },
});
