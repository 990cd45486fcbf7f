/**
 * The pipeline's public API: the only module plugins import.
 *
 * @example
 * ```ts
 * import { definePlugin, z } from "../../pipeline/mod.ts";
 * export default definePlugin({
 *   name: "big_orders",
 *   options: z.object({ min: z.number().default(1000) }),
 *   build(b, o) {
 *     b.stream<{ totalAmount: number }>("bss.order.events")
 *       .filter((_k, v) => v.totalAmount > o.min)
 *       .to("bss.orders.big");
 *   },
 * });
 * ```
 */
export { z } from "zod";
export {
  definePlugin,
  type PluginDefinition,
  type ProducedRecord,
  type ProducerContext,
} from "./plugin.ts";
export * as events from "./bss_events.ts";
export type { Headers, StreamRecord, Window, Windowed } from "./record.ts";
export {
  BranchedStream,
  type KeyValue,
  KGroupedStream,
  KStream,
  KTable,
  type RecordMeta,
  type SessionStatsOptions,
  type SessionStoreOptions,
  SessionWindowedStream,
  type SourceOptions,
  type StatsOptions,
  type StoreOptions,
  type StreamJoinOptions,
  StreamsBuilder,
  TimeWindowedStream,
  type WindowedStoreOptions,
} from "./topology/dsl.ts";
export type { Aggregation, EmitStrategy, RetractStrategy } from "./topology/aggregate_nodes.ts";
export type {
  StoreRef,
  ValueProcessor,
  ValueProcessorContext,
} from "./topology/process_values_node.ts";
export type { WindowStatsOf } from "./topology/stats_window_node.ts";
export type { PaymentFields, ScoredValue } from "./topology/fraud_scoring_node.ts";
export type { WindowStats } from "./wasm/stats_window_store.ts";
export type { OperatorMode } from "./wasm/window_kernel.ts";
export type { KeyValueStore } from "./state/key_value_store.ts";
export { JoinWindows, SessionWindows, SlidingWindows, TimeWindows } from "./windows.ts";
export type { FraudAlertType, FraudScoringRules } from "./wasm/fraud_kernel.ts";
export type {
  FraudScoringStore,
  PaymentHistory,
  PaymentRisk,
  ScoredPayment,
} from "./wasm/fraud_scoring_store.ts";
