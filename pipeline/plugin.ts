import type { z, ZodType } from "zod";
import type { NewRecord } from "./record.ts";
import type { OnError } from "./task.ts";
import type { OperatorMode } from "./wasm/window_kernel.ts";
import { StreamsBuilder } from "./topology/dsl.ts";
import { TopologyGraph } from "./topology/graph.ts";

/**
 * A plugin: one topology, with the schema of its options. `build` only describes the topology
 * (streams, tables, stores, output topics); it does no I/O.
 */
export interface PluginDefinition<S extends ZodType = ZodType> {
  readonly name: string;
  readonly options: S;
  build(builder: StreamsBuilder, options: z.output<S>): void;
  /**
   * Optional: produces input records while the pipeline runs (a traffic generator, a bridge).
   * It should return when `ctx.signal` aborts.
   */
  produce?(ctx: ProducerContext, options: z.output<S>): Promise<void>;
}

/** A record a producer writes: `value` is serialized as JSON, `raw` is written as is. */
export interface ProducedRecord {
  readonly key: string | null;
  readonly value?: unknown;
  readonly raw?: string;
  readonly timestamp?: number;
}

/** The log record for a produced record: `raw` as is, else the value as JSON (null: tombstone). */
export function toNewRecord(r: ProducedRecord): NewRecord {
  const value = r.raw !== undefined
    ? r.raw
    : r.value === null || r.value === undefined
    ? null
    : JSON.stringify(r.value);
  return { key: r.key, value, timestamp: r.timestamp };
}

/** What a plugin's producer may do. */
export interface ProducerContext {
  /** Appends records durably to a topic. */
  produce(topic: string, records: readonly ProducedRecord[]): Promise<void>;
  readonly signal: AbortSignal;
  now(): number;
}

/**
 * Declares a plugin; its module default-exports the result.
 *
 * @example
 * ```ts
 * export default definePlugin({
 *   name: "big_orders",
 *   options: z.object({ min: z.number().default(100) }),
 *   build(b, o) {
 *     b.stream<{ totalAmount: number }>("bss.order.events")
 *       .filter((_k, v) => v.totalAmount > o.min).to("bss.orders.big");
 *   },
 * });
 * ```
 */
export function definePlugin<S extends ZodType>(
  definition: PluginDefinition<S>,
): PluginDefinition<S> {
  return definition;
}

/** A plugin with options already validated against its schema. */
export interface ConfiguredPlugin {
  readonly definition: PluginDefinition;
  readonly options: unknown;
  /** The name the config gives it (its stores and topics are labelled with it). */
  readonly name: string;
  /** When its code throws for a record (default "dlq"). */
  readonly onError?: OnError;
  /** Which implementation runs its hot operators (default "wasm"). */
  readonly operators?: OperatorMode;
}

/** Each plugin's `onError`, as the runner takes it. */
export function errorPolicies(plugins: readonly ConfiguredPlugin[]): Map<string, OnError> {
  return new Map(plugins.map((p) => [p.name, p.onError ?? "dlq"]));
}

/** A plugin's `build` failed; `plugin` says which. */
export class TopologyError extends Error {
  override name = "TopologyError";
  constructor(readonly plugin: string, override readonly cause: unknown) {
    super(`plugin ${plugin}: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/** Builds the processor graph of the given plugins; a plugin whose build throws is named. */
export function buildGraph(
  plugins: readonly ConfiguredPlugin[],
  applicationId: string,
): TopologyGraph {
  const graph = new TopologyGraph(applicationId);
  for (const p of plugins) {
    try {
      p.definition.build(new StreamsBuilder(graph, p.name, p.operators), p.options);
    } catch (e) {
      throw new TopologyError(p.name, e);
    }
  }
  return graph;
}
