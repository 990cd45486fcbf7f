/** What the benchmarks run: the five plugins over the traffic model's BSS events. */
import type { PluginDefinition } from "../pipeline/plugin.ts";
import customerActivity from "../plugins/customer_activity/mod.ts";
import dynamicPricing from "../plugins/dynamic_pricing/mod.ts";
import fraudDetection from "../plugins/fraud_detection/mod.ts";
import orderEnrichment from "../plugins/order_enrichment/mod.ts";
import recommendations from "../plugins/recommendations/mod.ts";
import { TrafficModel } from "../plugins/traffic_simulator/traffic_model.ts";

export const TOPICS = {
  customers: "bss.customer.info",
  activity: "bss.customer.events",
  orders: "bss.order.events",
  payments: "bss.payment.events",
  views: "bss.product.views",
};

export const FIVE_PLUGINS: readonly PluginDefinition[] = [
  customerActivity,
  orderEnrichment,
  fraudDetection,
  recommendations,
  dynamicPricing,
];

/** The events: bursts, unusual amounts, demand spikes and a few malformed records. */
export function trafficModel(seed: number, customers: number, products: number): TrafficModel {
  return new TrafficModel({
    seed,
    customers,
    products,
    fraudBurstChance: 0.01,
    unusualAmountShare: 0.01,
    demandSpikeChance: 0.002,
    malformedShare: 0.002,
    topics: TOPICS,
  });
}
