import type { FraudScoringRules } from "../wasm/fraud_kernel.ts";
import type { OperatorMode } from "../wasm/window_kernel.ts";
import type { SessionWindowSpec, TimeWindowSpec } from "../windows.ts";
import type { ProcessorNode } from "./node.ts";
import type { SourceNode } from "./source_sink_nodes.ts";

/** A state store a topology declares: every stateful step names its store. */
export type StoreSpec =
  | { readonly name: string; readonly kind: "kv" | "window"; readonly plugin: string }
  | {
    readonly name: string;
    /** Windowed statistics kept by a window kernel (`TimeWindowedStream.stats`). */
    readonly kind: "stats";
    readonly plugin: string;
    readonly window: TimeWindowSpec;
    readonly operators: OperatorMode;
  }
  | {
    readonly name: string;
    /** Session statistics kept by the session kernel (`SessionWindowedStream.stats`). */
    readonly kind: "sessionStats";
    readonly plugin: string;
    readonly window: SessionWindowSpec;
    readonly retractAll: boolean;
    readonly operators: OperatorMode;
  }
  | {
    readonly name: string;
    /** Customers' payment histories kept by the fraud-scoring operator. */
    readonly kind: "fraud";
    readonly plugin: string;
    readonly rules: FraudScoringRules;
    readonly operators: OperatorMode;
  };

/** An internal topic a re-key writes to, so records reach the partition owning their new key. */
export interface RepartitionSpec {
  readonly topic: string;
  readonly plugin: string;
  /** Topics whose partition count this topic takes (the largest of them). */
  readonly partitionsLike: readonly string[];
}

/** Every node, store and topic of the enabled plugins: the whole processor graph. */
export class TopologyGraph {
  readonly sources = new Map<string, SourceNode[]>();
  readonly stores = new Map<string, StoreSpec>();
  readonly nodes: ProcessorNode[] = [];
  readonly repartitions = new Map<string, RepartitionSpec>();
  /** Output topics, with the plugin that writes each. */
  readonly sinks = new Map<string, Set<string>>();
  #names = new Map<string, number>();

  /** `applicationId` prefixes the internal topics, as Kafka Streams names them. */
  constructor(readonly applicationId: string) {}

  /** Adds a node under its parents (none for a source). */
  add<N extends ProcessorNode>(node: N, parents: readonly ProcessorNode[]): N {
    for (const p of parents) p.children.push(node);
    this.nodes.push(node);
    return node;
  }

  addSource(node: SourceNode): SourceNode {
    const list = this.sources.get(node.topic) ?? [];
    list.push(node);
    this.sources.set(node.topic, list);
    return this.add(node, []);
  }

  addSink(topic: string, plugin: string): void {
    const plugins = this.sinks.get(topic) ?? new Set();
    plugins.add(plugin);
    this.sinks.set(topic, plugins);
  }

  addStore(spec: StoreSpec): void {
    const existing = this.stores.get(spec.name);
    if (existing) throw new DuplicateStoreError(spec.name, existing.plugin, spec.plugin);
    this.stores.set(spec.name, spec);
  }

  /** A unique node name with this prefix, like Kafka Streams' KSTREAM-FILTER-0000000003. */
  uniqueName(plugin: string, kind: string): string {
    const n = (this.#names.get(plugin) ?? 0) + 1;
    this.#names.set(plugin, n);
    return `${plugin}.${kind}-${String(n).padStart(4, "0")}`;
  }

  /** The topics the graph reads that are not internal repartition topics. */
  inputTopics(): string[] {
    return [...this.sources.keys()].filter((t) => !this.repartitions.has(t)).sort();
  }
}

/** Two stateful steps named the same store: store names are unique within an application. */
export class DuplicateStoreError extends Error {
  override name = "DuplicateStoreError";
  constructor(readonly store: string, readonly first: string, readonly second: string) {
    super(
      first === second
        ? `Cannot create store '${store}' twice in plugin '${first}': store names must be unique`
        : `Cannot create store '${store}' in plugin '${second}' as plugin '${first}' already uses the name: store names must be unique`,
    );
  }
}
