/**
 * Order enrichment: every order event is left-joined with the customer's latest info and
 * written to the enriched topic (`customer: null` when the customer is unknown); new orders
 * above the threshold go to the high-value topic; per region, new orders are counted, summed and
 * averaged in 1-hour tumbling windows. Region: the customer's, else the order's, else UNKNOWN.
 */
import { definePlugin, events, TimeWindows, z } from "../../pipeline/mod.ts";

const Options = z.strictObject({
  ordersTopic: z.string().default("bss.order.events"),
  customersTopic: z.string().default("bss.customer.info"),
  enrichedTopic: z.string().default("bss.orders.enriched"),
  highValueTopic: z.string().default("bss.orders.highvalue"),
  regionTrendTopic: z.string().default("bss.orders.region.trend"),
  highValueThreshold: z.number().nonnegative().default(1000),
  /** Order statuses that count as a new order for high-value detection and trends. */
  countStatuses: z.array(z.enum(["CREATED", "PAID", "CANCELLED"])).default(["CREATED"]),
  trendWindowMs: z.number().int().positive().default(3_600_000),
  trendGraceMs: z.number().int().nonnegative().default(300_000),
});

export default definePlugin({
  name: "order_enrichment",
  options: Options,
  build(b, o) {
    const customers = b.table(o.customersTopic, {
      store: "customer-info",
      schema: events.CustomerInfo,
      keyField: "customerId",
    });
    const enriched = b.stream(o.ordersTopic, { schema: events.OrderEvent, keyField: "orderId" })
      .selectKey((_k, order) => order.customerId)
      .leftJoin(customers, (order, c) => ({
        ...order,
        customer: c
          ? {
            customerId: c.customerId,
            tier: c.tier,
            region: c.region,
            name: c.name ?? null,
            segment: c.segment ?? null,
          }
          : null,
        region: c?.region ?? order.region ?? "UNKNOWN",
        eventIds: [order.orderId],
      }))
      .selectKey((_k, e) => e.orderId);
    enriched.to(o.enrichedTopic);

    const counted = enriched.filter((_k, e) => o.countStatuses.includes(e.status));
    // A high-value order is the enriched order itself (with `customer`, null when unknown).
    counted.filter((_k, e) => e.totalAmount > o.highValueThreshold).to(o.highValueTopic);

    // Only what the trend needs crosses the repartition topic.
    counted.map((_k, e) => ({
      key: e.region,
      value: { orderId: e.orderId, totalAmount: e.totalAmount },
    }))
      .groupByKey()
      .windowedBy(TimeWindows.ofSizeAndGrace(o.trendWindowMs, o.trendGraceMs))
      .stats((e) => e.totalAmount, { store: "region-trend-1h" })
      .toStream()
      .map((wk, t) => ({
        key: wk.key,
        value: {
          region: wk.key,
          windowStart: wk.window.start,
          windowEnd: wk.window.end,
          orderCount: t.count,
          totalValue: round2(t.sum),
          averageValue: round2(t.sum / t.count),
          eventIds: t.event ? [t.event.orderId] : [],
        },
      }))
      .to(o.regionTrendTopic);
  },
});

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
