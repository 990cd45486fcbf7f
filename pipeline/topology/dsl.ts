import type { ZodType } from "zod";
import type { Windowed } from "../record.ts";
import type { KeyValueStore } from "../state/key_value_store.ts";
import type { FraudScoringRules } from "../wasm/fraud_kernel.ts";
import type { FraudScoringStore } from "../wasm/fraud_scoring_store.ts";
import type { OperatorMode } from "../wasm/window_kernel.ts";
import type {
  JoinWindowSpec,
  SessionWindowSpec,
  SlidingWindowSpec,
  TimeWindowSpec,
} from "../windows.ts";
import {
  AggregateNode,
  type Aggregation,
  type EmitStrategy,
  type RetractStrategy,
  SessionWindowAggregateNode,
  SlidingWindowAggregateNode,
  TimeWindowAggregateNode,
} from "./aggregate_nodes.ts";
import type { TopologyGraph } from "./graph.ts";
import { StreamStreamJoinSideNode, StreamTableJoinNode } from "./join_nodes.ts";
import {
  type AnyRecord,
  BranchNode,
  FunctionNode,
  PassThroughNode,
  type ProcessorNode,
} from "./node.ts";
import { SinkNode, SourceNode, TableSourceNode } from "./source_sink_nodes.ts";
import { SessionStatsNode } from "./session_stats_node.ts";
import { StatsWindowAggregateNode, type WindowStatsOf } from "./stats_window_node.ts";
import { FraudScoringNode, type PaymentFields, type ScoredValue } from "./fraud_scoring_node.ts";
import { ProcessValuesNode, type StoreRef, type ValueProcessor } from "./process_values_node.ts";

/** A key and value pair returned by `map` and `flatMap`. */
export interface KeyValue<K, V> {
  readonly key: K;
  readonly value: V;
}

/** Record metadata passed as the last argument of DSL callbacks. */
export interface RecordMeta {
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** Options of `stream` and `table`. */
export interface SourceOptions<V> {
  /** Values that fail it go to the dead-letter topic with the reason. */
  readonly schema?: ZodType<V>;
  /** A value field the record key must equal (the topic is partitioned by it). */
  readonly keyField?: string;
}

/** Options of a stateful step: its store name is required. */
export interface StoreOptions {
  readonly store: string;
}

/** Options of a windowed aggregation. */
export interface WindowedStoreOptions extends StoreOptions {
  /** "update" (default) emits every change; "close" emits each window once, when it closes. */
  readonly emit?: EmitStrategy;
}

/** Options of windowed statistics. */
export interface StatsOptions<V> extends WindowedStoreOptions {
  /**
   * The category a record falls in (an activity type, say): each window also counts its
   * records per category (`counts`). Categories need not be known in advance.
   */
  readonly category?: (value: V) => string;
}

/** Options of a session-windowed aggregation. */
export interface SessionStoreOptions extends WindowedStoreOptions {
  /** Which replaced sessions get a null value downstream (default "all", as Kafka Streams). */
  readonly retract?: RetractStrategy;
}

/** Options of session statistics. */
export interface SessionStatsOptions<V> extends SessionStoreOptions {
  /** The category a record falls in: each session also counts its records per category. */
  readonly category?: (value: V) => string;
}

/** Options of a stream–stream join. */
export interface StreamJoinOptions {
  readonly window: JoinWindowSpec;
  /** Base name of the two buffer stores (`<store>-left`, `<store>-right`). */
  readonly store: string;
}

/** Builds one plugin's part of the processor graph. `build` functions only describe; no I/O. */
export class StreamsBuilder {
  constructor(
    readonly graph: TopologyGraph,
    readonly plugin: string,
    /** Which implementation runs the plugin's hot operators. */
    readonly operators: OperatorMode = "wasm",
  ) {}

  /** Declares a key-value store for `processValues` steps; names are unique per application. */
  keyValueStore<V>(name: string): StoreRef<KeyValueStore<V>> {
    this.graph.addStore({ name, kind: "kv", plugin: this.plugin });
    return { name };
  }

  /**
   * Declares a store of customers' payment histories, scored by the fraud-scoring operator with
   * `rules` in `KStream.scorePayments` steps (one operator call per batch); `processValues`
   * steps may read it (`store.get(customerId)`).
   */
  fraudScoringStore(name: string, rules: FraudScoringRules): StoreRef<FraudScoringStore> {
    const r = {
      rapidWindowMs: rules.rapidWindowMs,
      rapidThreshold: rules.rapidThreshold,
      unusualMultiplier: rules.unusualMultiplier,
      unusualMinHistory: rules.unusualMinHistory,
      scoreWindowMs: rules.scoreWindowMs,
    };
    this.graph.addStore({
      name,
      kind: "fraud",
      plugin: this.plugin,
      rules: r,
      operators: this.operators,
    });
    return { name };
  }

  /**
   * A record stream read from `topic`. Values failing `schema`, and records whose key is not the
   * value's `keyField`, go to the dead-letter topic with the reason.
   */
  stream<V = unknown>(topic: string, options: SourceOptions<V> = {}): KStream<string | null, V> {
    const node = this.graph.addSource(
      new SourceNode(
        this.graph.uniqueName(this.plugin, "SOURCE"),
        this.plugin,
        topic,
        options.schema,
        options.keyField,
      ),
    );
    return new KStream(this, node, false);
  }

  /** A table of the latest value per key of `topic`, materialized in `store`; null deletes. */
  table<V = unknown>(
    topic: string,
    options: SourceOptions<V> & { store: string },
  ): KTable<string, V> {
    this.graph.addStore({ name: options.store, kind: "kv", plugin: this.plugin });
    const node = this.graph.addSource(
      new TableSourceNode(
        this.graph.uniqueName(this.plugin, "TABLE-SOURCE"),
        this.plugin,
        topic,
        options.store,
        options.schema,
        options.keyField,
      ),
    );
    return new KTable(this, node, options.store, [topic]);
  }

  /** Adds a node that runs `fn` for every record, below `parents`. */
  node(
    kind: string,
    parents: ProcessorNode[],
    fn: (r: AnyRecord, emit: (r: AnyRecord) => void) => void,
  ) {
    return this.graph.add(
      new FunctionNode(this.graph.uniqueName(this.plugin, kind), this.plugin, fn),
      parents,
    );
  }

  /** The input topics upstream of a node, for sizing repartition topics. */
  upstreamTopics(node: ProcessorNode): string[] {
    const parents = new Map<ProcessorNode, ProcessorNode[]>();
    for (const n of this.graph.nodes) {
      for (const c of n.children) parents.set(c, [...(parents.get(c) ?? []), n]);
    }
    const topics = new Set<string>();
    const seen = new Set<ProcessorNode>();
    const visit = (n: ProcessorNode) => {
      if (seen.has(n)) return;
      seen.add(n);
      if (n instanceof SourceNode) {
        const rp = this.graph.repartitions.get(n.topic);
        if (rp) rp.partitionsLike.forEach((t) => topics.add(t));
        else topics.add(n.topic);
      }
      for (const p of parents.get(n) ?? []) visit(p);
    };
    visit(node);
    return [...topics];
  }
}

/** A stream of records, as Kafka Streams' `KStream`. Operations return new streams. */
export class KStream<K, V> {
  constructor(
    readonly builder: StreamsBuilder,
    readonly node: ProcessorNode,
    /** True once the key may have changed: stateful steps then repartition first. */
    readonly rekeyed: boolean,
  ) {}

  #derive<K2, V2>(
    kind: string,
    rekeyed: boolean,
    fn: (r: AnyRecord, emit: (r: AnyRecord) => void) => void,
  ): KStream<K2, V2> {
    return new KStream(
      this.builder,
      this.builder.node(kind, [this.node], fn),
      this.rekeyed || rekeyed,
    );
  }

  filter(predicate: (key: K, value: V, meta: RecordMeta) => boolean): KStream<K, V> {
    return this.#derive("FILTER", false, (r, emit) => {
      if (predicate(r.key, r.value, r)) emit(r);
    });
  }

  filterNot(predicate: (key: K, value: V, meta: RecordMeta) => boolean): KStream<K, V> {
    return this.filter((k, v, m) => !predicate(k, v, m));
  }

  map<K2, V2>(fn: (key: K, value: V, meta: RecordMeta) => KeyValue<K2, V2>): KStream<K2, V2> {
    return this.#derive("MAP", true, (r, emit) => {
      const kv = fn(r.key, r.value, r);
      emit({ ...r, key: kv.key, value: kv.value });
    });
  }

  mapValues<V2>(fn: (value: V, key: K, meta: RecordMeta) => V2): KStream<K, V2> {
    return this.#derive(
      "MAPVALUES",
      false,
      (r, emit) => emit({ ...r, value: fn(r.value, r.key, r) }),
    );
  }

  flatMap<K2, V2>(
    fn: (key: K, value: V, meta: RecordMeta) => Iterable<KeyValue<K2, V2>>,
  ): KStream<K2, V2> {
    return this.#derive("FLATMAP", true, (r, emit) => {
      for (const kv of fn(r.key, r.value, r)) emit({ ...r, key: kv.key, value: kv.value });
    });
  }

  flatMapValues<V2>(fn: (value: V, key: K, meta: RecordMeta) => Iterable<V2>): KStream<K, V2> {
    return this.#derive("FLATMAPVALUES", false, (r, emit) => {
      for (const value of fn(r.value, r.key, r)) emit({ ...r, value });
    });
  }

  selectKey<K2>(fn: (key: K, value: V, meta: RecordMeta) => K2): KStream<K2, V> {
    return this.#derive(
      "KEY-SELECT",
      true,
      (r, emit) => emit({ ...r, key: fn(r.key, r.value, r) }),
    );
  }

  peek(fn: (key: K, value: V, meta: RecordMeta) => void): KStream<K, V> {
    return this.#derive("PEEK", false, (r, emit) => {
      fn(r.key, r.value, r);
      emit(r);
    });
  }

  /** Routes each record to the first branch whose predicate holds (records matching none are dropped). */
  branch(...predicates: ((key: K, value: V, meta: RecordMeta) => boolean)[]): KStream<K, V>[] {
    const g = this.builder.graph;
    const plugin = this.builder.plugin;
    const brancher = g.add(new BranchNode(g.uniqueName(plugin, "BRANCH"), plugin, predicates), [
      this.node,
    ]);
    return predicates.map((_, i) => {
      const out = g.add(new PassThroughNode(g.uniqueName(plugin, `BRANCH-${i}`), plugin), [
        brancher,
      ]);
      return new KStream<K, V>(this.builder, out, this.rekeyed);
    });
  }

  /** Named branches, as Kafka Streams' `split()`: `split().branch(p, "a").defaultBranch("rest")`. */
  split(): BranchedStream<K, V> {
    return new BranchedStream(this);
  }

  merge(other: KStream<K, V>): KStream<K, V> {
    const node = this.builder.graph.add(
      new PassThroughNode(
        this.builder.graph.uniqueName(this.builder.plugin, "MERGE"),
        this.builder.plugin,
      ),
      [this.node, other.node],
    );
    return new KStream(this.builder, node, this.rekeyed || other.rekeyed);
  }

  /** Groups by the current key; after a re-key the records first pass a repartition topic. */
  groupByKey(): KGroupedStream<K, V> {
    return new KGroupedStream(this);
  }

  /**
   * Runs `fn` for every record with access to `stores` and emits what it returns under the
   * record's key, at once (as Kafka Streams' `processValues`): for outputs that must follow
   * every event while keeping state. After a re-key the records first pass a repartition topic,
   * so each key's state is in one task.
   *
   * @example
   * ```ts
   * const seen = b.keyValueStore<number>("payments-seen");
   * b.stream<{ amount: number }>("payments").processValues([seen], (p, key, ctx) => {
   *   const n = (ctx.store(seen).get(key) ?? 0) + 1;
   *   ctx.store(seen).put(key, n);
   *   return n === 1 ? [{ first: p.amount }] : [];
   * }).to("first-payments");
   * ```
   */
  processValues<VR>(
    stores: readonly StoreRef<unknown>[],
    fn: ValueProcessor<V, VR>,
  ): KStream<K, VR> {
    const b = this.builder;
    const names = stores.map((s) => s.name);
    return this.#keyedStep(
      names[0] ?? "process-values",
      new ProcessValuesNode(b.graph.uniqueName(b.plugin, "PROCESS-VALUES"), b.plugin, names, fn),
    );
  }

  /**
   * Scores each record as a payment of the customer its key names with the fraud-scoring
   * operator of `store`, and emits it with the verdict, `{ payment, risk }`, in input order. The
   * operator runs once per batch: with the record cache on, the payments are held until the
   * commit (their outputs are committed then either way). `fields` picks what it reads from the
   * value; a value without a string paymentId and a finite amount is dead-lettered. After a
   * re-key the records first pass a repartition topic.
   */
  scorePayments(
    store: StoreRef<FraudScoringStore>,
    fields: (value: V) => PaymentFields,
  ): KStream<K, ScoredValue<V>> {
    const b = this.builder;
    return this.#keyedStep(
      store.name,
      new FraudScoringNode(
        b.graph.uniqueName(b.plugin, "FRAUD-SCORING"),
        b.plugin,
        store.name,
        fields,
      ),
    );
  }

  /**
   * Adds a step keeping state per key: after a re-key the records first pass a repartition
   * topic (named after `store`), so that each key's state is in one task.
   */
  #keyedStep<V2>(store: string, node: ProcessorNode): KStream<K, V2> {
    const input = this.rekeyed ? this.repartition(store) : this;
    return new KStream(this.builder, this.builder.graph.add(node, [input.node]), false);
  }

  /** Joins with a table (inner) or, given join window options, with another stream (inner, windowed). */
  join<VT, VR>(
    table: KTable<string, VT>,
    joiner: (value: V, tableValue: VT, key: string) => VR,
  ): KStream<K, VR>;
  join<VO, VR>(
    other: KStream<K, VO>,
    joiner: (value: V, otherValue: VO, key: string) => VR,
    options: StreamJoinOptions,
  ): KStream<K, VR>;
  join<VO, VR>(
    other: KTable<string, VO> | KStream<K, VO>,
    joiner: (value: V, otherValue: VO, key: string) => VR,
    options?: StreamJoinOptions,
  ): KStream<K, VR> {
    if (other instanceof KTable) return this.#tableJoin(other, joiner, false);
    if (!options) throw new Error("Cannot join two streams without options { window, store }");
    return this.#streamJoin(other, joiner, options);
  }

  /** Joins with a table, keeping records with no match (the joiner then gets null). */
  leftJoin<VT, VR>(
    table: KTable<string, VT>,
    joiner: (value: V, tableValue: VT | null, key: string) => VR,
  ): KStream<K, VR> {
    return this.#tableJoin(table, joiner, true);
  }

  #tableJoin<VT, VR>(
    table: KTable<string, VT>,
    joiner: (value: V, tableValue: VT, key: string) => VR,
    left: boolean,
  ): KStream<K, VR> {
    if (!table.storeName || table.windowed) {
      throw new Error("Cannot join with a table that has no key-value store");
    }
    const input = this.rekeyed ? this.repartition(`${table.storeName}-join`, table.topics) : this;
    const node = this.builder.graph.add(
      new StreamTableJoinNode(
        this.builder.graph.uniqueName(this.builder.plugin, left ? "LEFTJOIN" : "JOIN"),
        this.builder.plugin,
        table.storeName,
        joiner,
        left,
      ),
      [input.node],
    );
    return new KStream(this.builder, node, false);
  }

  #streamJoin<VO, VR>(
    other: KStream<K, VO>,
    joiner: (value: V, otherValue: VO, key: string) => VR,
    options: StreamJoinOptions,
  ): KStream<K, VR> {
    const g = this.builder.graph;
    const plugin = this.builder.plugin;
    const leftStore = `${options.store}-left`;
    const rightStore = `${options.store}-right`;
    g.addStore({ name: leftStore, kind: "window", plugin });
    g.addStore({ name: rightStore, kind: "window", plugin });
    const like = [
      ...this.builder.upstreamTopics(this.node),
      ...this.builder.upstreamTopics(other.node),
    ];
    const l = this.rekeyed ? this.repartition(`${leftStore}`, like) : this;
    const r = other.rekeyed ? other.repartition(`${rightStore}`, like) : other;
    const leftNode = g.add(
      new StreamStreamJoinSideNode(
        g.uniqueName(plugin, "JOINTHIS"),
        plugin,
        leftStore,
        rightStore,
        options.window,
        true,
        joiner,
      ),
      [l.node],
    );
    const rightNode = g.add(
      new StreamStreamJoinSideNode(
        g.uniqueName(plugin, "JOINOTHER"),
        plugin,
        rightStore,
        leftStore,
        options.window,
        false,
        joiner,
      ),
      [r.node],
    );
    const merged = g.add(new PassThroughNode(g.uniqueName(plugin, "JOIN-MERGE"), plugin), [
      leftNode,
      rightNode,
    ]);
    return new KStream(this.builder, merged, false);
  }

  /** Writes every record to `topic` (value as JSON, windowed keys as `key@start-end`). */
  to(topic: string): void {
    this.builder.graph.addSink(topic, this.builder.plugin);
    this.builder.graph.add(
      new SinkNode(
        this.builder.graph.uniqueName(this.builder.plugin, "SINK"),
        this.builder.plugin,
        topic,
      ),
      [this.node],
    );
  }

  /** Sends records through an internal topic keyed by their current key. */
  repartition(name: string, partitionsLike?: readonly string[]): KStream<K, V> {
    const b = this.builder;
    const app = b.graph.applicationId;
    let topic = `${app}-${name}-repartition`;
    for (let n = 2; b.graph.repartitions.has(topic); n++) topic = `${app}-${name}-${n}-repartition`;
    b.graph.repartitions.set(topic, {
      topic,
      plugin: b.plugin,
      partitionsLike: partitionsLike ?? b.upstreamTopics(this.node),
    });
    b.graph.add(new SinkNode(b.graph.uniqueName(b.plugin, "REPARTITION-SINK"), b.plugin, topic), [
      this.node,
    ]);
    const source = b.graph.addSource(
      new SourceNode(b.graph.uniqueName(b.plugin, "REPARTITION-SOURCE"), b.plugin, topic),
    );
    return new KStream(b, source, false);
  }
}

/** Builder of named branches returned by `KStream.split()`. */
export class BranchedStream<K, V> {
  readonly #branches: {
    name: string;
    predicate: (key: K, value: V, meta: RecordMeta) => boolean;
  }[] = [];

  constructor(readonly stream: KStream<K, V>) {}

  branch(
    predicate: (key: K, value: V, meta: RecordMeta) => boolean,
    name: string,
  ): BranchedStream<K, V> {
    this.#branches.push({ name, predicate });
    return this;
  }

  /** Finishes the split; records matching no predicate go to the default branch if named. */
  defaultBranch(name?: string): Record<string, KStream<K, V>> {
    const predicates = this.#branches.map((b) => b.predicate);
    if (name !== undefined) predicates.push(() => true);
    const streams = this.stream.branch(...predicates);
    const out: Record<string, KStream<K, V>> = {};
    this.#branches.forEach((b, i) => out[b.name] = streams[i]);
    if (name !== undefined) out[name] = streams[streams.length - 1];
    return out;
  }
}

const countAgg: Aggregation<unknown, number> = {
  init: () => 0,
  add: (_k, _v, n) => n + 1,
  merge: (_k, a, b) => a + b,
};

function reduceAgg<V>(reducer: (a: V, b: V) => V): Aggregation<V, V | null> {
  return {
    init: () => null,
    add: (_k, v, acc) => acc === null ? v : reducer(acc, v),
    merge: (_k, a, b) => a === null ? b : b === null ? a : reducer(a, b),
  };
}

/** A stream grouped by key, ready to aggregate. */
export class KGroupedStream<K, V> {
  constructor(readonly stream: KStream<K, V>) {}

  /** The stream to aggregate: repartitioned by key first if the key changed upstream. */
  input(store: string): KStream<K, V> {
    return this.stream.rekeyed ? this.stream.repartition(store) : this.stream;
  }

  count(options: StoreOptions): KTable<K, number> {
    return this.aggregateWith(countAgg, options);
  }

  reduce(reducer: (aggregate: V, value: V) => V, options: StoreOptions): KTable<K, V> {
    return this.aggregateWith(reduceAgg(reducer), options) as KTable<K, V>;
  }

  aggregate<A>(
    init: () => A,
    add: (key: string, value: V, aggregate: A) => A,
    options: StoreOptions,
  ): KTable<K, A> {
    return this.aggregateWith({ init, add }, options);
  }

  aggregateWith<A>(agg: Aggregation<V, A>, options: StoreOptions): KTable<K, A> {
    const b = this.stream.builder;
    b.graph.addStore({ name: options.store, kind: "kv", plugin: b.plugin });
    const input = this.input(options.store);
    const node = b.graph.add(
      new AggregateNode(b.graph.uniqueName(b.plugin, "AGGREGATE"), b.plugin, options.store, agg),
      [input.node],
    );
    return new KTable(b, node, options.store, b.upstreamTopics(input.node));
  }

  windowedBy(spec: SessionWindowSpec): SessionWindowedStream<K, V>;
  windowedBy(spec: TimeWindowSpec | SlidingWindowSpec): TimeWindowedStream<K, V>;
  windowedBy(spec: TimeWindowSpec | SlidingWindowSpec | SessionWindowSpec) {
    return spec.kind === "session"
      ? new SessionWindowedStream(this, spec)
      : new TimeWindowedStream(this, spec);
  }
}

/** A grouped stream with tumbling, hopping or sliding windows. */
export class TimeWindowedStream<K, V> {
  constructor(
    readonly grouped: KGroupedStream<K, V>,
    readonly spec: TimeWindowSpec | SlidingWindowSpec,
  ) {}

  count(options: WindowedStoreOptions): KTable<Windowed<K>, number> {
    return this.aggregateWith(countAgg, options);
  }

  reduce(
    reducer: (aggregate: V, value: V) => V,
    options: WindowedStoreOptions,
  ): KTable<Windowed<K>, V> {
    return this.aggregateWith(reduceAgg(reducer), options) as KTable<Windowed<K>, V>;
  }

  aggregate<A>(
    init: () => A,
    add: (key: string, value: V, aggregate: A) => A,
    options: WindowedStoreOptions,
  ): KTable<Windowed<K>, A> {
    return this.aggregateWith({ init, add }, options);
  }

  /**
   * Count, sum, min, max and last of `measure(value)` per key and window, computed by the
   * window operator (WebAssembly, or the TypeScript reference: the plugin's `operators`) once per
   * commit over the batch, the windows kept in its memory. Each result carries the value of the
   * record that last updated it (`event`, null in results of closed windows). With the record
   * cache on, a window's result is forwarded once per commit; off, on every update. Tumbling and
   * hopping windows only. With `category`, each window also counts its records per category.
   */
  stats(
    measure: (value: V) => number,
    options: StatsOptions<V>,
  ): KTable<Windowed<K>, WindowStatsOf<V>> {
    const b = this.grouped.stream.builder;
    if (this.spec.kind !== "time") {
      throw new TypeError(
        `stats '${options.store}' needs tumbling or hopping windows (TimeWindows), not ${this.spec.kind} ones`,
      );
    }
    b.graph.addStore({
      name: options.store,
      kind: "stats",
      plugin: b.plugin,
      window: this.spec,
      operators: b.operators,
    });
    const input = this.grouped.input(options.store);
    const node = b.graph.add(
      new StatsWindowAggregateNode(
        b.graph.uniqueName(b.plugin, "WINDOW-STATS"),
        b.plugin,
        options.store,
        this.spec,
        measure,
        options.emit ?? "update",
        options.category ?? null,
      ),
      [input.node],
    );
    return new KTable(b, node, options.store, b.upstreamTopics(input.node), true);
  }

  aggregateWith<A>(agg: Aggregation<V, A>, options: WindowedStoreOptions): KTable<Windowed<K>, A> {
    const b = this.grouped.stream.builder;
    const emit = options.emit ?? "update";
    b.graph.addStore({ name: options.store, kind: "window", plugin: b.plugin });
    const input = this.grouped.input(options.store);
    const name = b.graph.uniqueName(b.plugin, "WINDOW-AGGREGATE");
    let node: ProcessorNode;
    if (this.spec.kind === "sliding") {
      b.graph.addStore({ name: `${options.store}-records`, kind: "window", plugin: b.plugin });
      node = new SlidingWindowAggregateNode(name, b.plugin, options.store, agg, this.spec, emit);
    } else {
      node = new TimeWindowAggregateNode(name, b.plugin, options.store, agg, this.spec, emit);
    }
    b.graph.add(node, [input.node]);
    return new KTable(b, node, options.store, b.upstreamTopics(input.node), true);
  }
}

/** A grouped stream with session windows. */
export class SessionWindowedStream<K, V> {
  constructor(readonly grouped: KGroupedStream<K, V>, readonly spec: SessionWindowSpec) {}

  count(options: SessionStoreOptions): KTable<Windowed<K>, number> {
    return this.aggregateWith(countAgg, options);
  }

  reduce(
    reducer: (aggregate: V, value: V) => V,
    options: SessionStoreOptions,
  ): KTable<Windowed<K>, V> {
    return this.aggregateWith(reduceAgg(reducer), options) as KTable<Windowed<K>, V>;
  }

  /** `merge` combines the aggregates of two sessions a late record bridges. */
  aggregate<A>(
    init: () => A,
    add: (key: string, value: V, aggregate: A) => A,
    merge: (key: string, left: A, right: A) => A,
    options: SessionStoreOptions,
  ): KTable<Windowed<K>, A> {
    return this.aggregateWith({ init, add, merge }, options);
  }

  /**
   * Count, sum, min, max and last of `measure(value)` per key and session, and with `category`
   * a count per category, computed by the session operator (WebAssembly, or the TypeScript
   * reference: the plugin's `operators`) once per commit over the batch, the sessions kept in
   * its memory. Updates and retractions (null) follow the same rules as `aggregate`'s.
   */
  stats(
    measure: (value: V) => number,
    options: SessionStatsOptions<V>,
  ): KTable<Windowed<K>, WindowStatsOf<V>> {
    const b = this.grouped.stream.builder;
    const retract = options.retract ?? "all";
    b.graph.addStore({
      name: options.store,
      kind: "sessionStats",
      plugin: b.plugin,
      window: this.spec,
      retractAll: retract === "all",
      operators: b.operators,
    });
    const input = this.grouped.input(options.store);
    const node = b.graph.add(
      new SessionStatsNode(
        b.graph.uniqueName(b.plugin, "SESSION-STATS"),
        b.plugin,
        options.store,
        this.spec,
        measure,
        options.emit ?? "update",
        retract,
        options.category ?? null,
      ),
      [input.node],
    );
    return new KTable(b, node, options.store, b.upstreamTopics(input.node), true);
  }

  aggregateWith<A>(agg: Aggregation<V, A>, options: SessionStoreOptions): KTable<Windowed<K>, A> {
    const b = this.grouped.stream.builder;
    b.graph.addStore({ name: options.store, kind: "window", plugin: b.plugin });
    const input = this.grouped.input(options.store);
    const node = b.graph.add(
      new SessionWindowAggregateNode(
        b.graph.uniqueName(b.plugin, "SESSION-AGGREGATE"),
        b.plugin,
        options.store,
        agg,
        this.spec,
        options.emit ?? "update",
        options.retract ?? "all",
      ),
      [input.node],
    );
    return new KTable(b, node, options.store, b.upstreamTopics(input.node), true);
  }
}

/** A changelog of the latest value per key, as Kafka Streams' `KTable`. */
export class KTable<K, V> {
  constructor(
    readonly builder: StreamsBuilder,
    readonly node: ProcessorNode,
    readonly storeName: string,
    /** Input topics the table is partitioned like. */
    readonly topics: readonly string[],
    readonly windowed = false,
  ) {}

  /** The table's updates as a stream. */
  toStream(): KStream<K, V> {
    return new KStream(this.builder, this.node, false);
  }
}
