import type { LogRecord, StreamRecord } from "../record.ts";

// deno-lint-ignore no-explicit-any
export type AnyRecord = StreamRecord<any, any>;

/** What the task gives an operator while it processes one record. */
export interface ProcessorContext {
  /** The input partition this task owns. */
  readonly partition: number;
  /** Largest event time this task has seen. */
  readonly streamTime: number;
  /** The input record being processed (for dead-letter and late reports). */
  readonly input: LogRecord;
  /** A state store of this task, by its name. */
  store<S>(name: string): S;
  /** Writes a record to a topic as part of the current commit. */
  send(topic: string, record: AnyRecord): void;
  /** Reports a record that arrived after its windows closed. */
  late(plugin: string, store: string, record: AnyRecord, reason: string): void;
  /** Sends the current input record to the dead-letter topic. */
  deadLetter(plugin: string, reason: string): void;
  /**
   * Emits an aggregation's result through the task's record cache: held, with later results
   * under the same `cacheKey` replacing it, until the commit (or an eviction) forwards it.
   */
  emitCached(node: CachingNode, cacheKey: string, record: AnyRecord): void;
  /**
   * Holds a record for a node that processes its records as one batch before the commit
   * (`DeferringNode.flushDeferred`), with `value` what it extracted from it. With the record
   * cache off, the node gets it back at once, as a batch of one.
   */
  defer<T>(node: DeferringNode<T>, record: AnyRecord, value: T): void;
  /**
   * Runs `fn` as of a deferred record: outputs, dead letters and late reports are its own, and
   * so is a failure of the plugin's code in `fn` (the record is dead-lettered, the others go on).
   */
  within(item: DeferredRecord<unknown>, fn: () => void): void;
  /** True when results are coalesced until the commit (the record cache is on). */
  readonly coalesces: boolean;
}

/** A record a deferring node got, held until the commit with what it needs then. */
export interface DeferredRecord<T = number> {
  readonly record: AnyRecord;
  readonly value: T;
  /** The task's stream time when the record arrived. */
  readonly streamTime: number;
}

/** A node that processes the records of a batch in one go, before the commit. */
export interface DeferringNode<T = number> {
  readonly plugin: string;
  flushDeferred(items: readonly DeferredRecord<T>[], ctx: ProcessorContext): void;
}

/** A node whose results the record cache may hold back until the commit. */
export interface CachingNode {
  readonly plugin: string;
  /** Forwards a result the cache held, as the node would have at once. */
  flushCached(record: AnyRecord, ctx: ProcessorContext): void;
}

/** A node of the processor graph. Nodes are built once and shared by every task. */
export abstract class ProcessorNode {
  readonly children: ProcessorNode[] = [];
  /** Stores this node reads or writes; nodes sharing a store run in the same task. */
  readonly stores: string[] = [];

  constructor(readonly name: string, readonly plugin: string) {}

  abstract process(record: AnyRecord, ctx: ProcessorContext): void;

  /** Called when the task's stream time has advanced, before the next record is processed. */
  advance?(ctx: ProcessorContext): void;

  /** True for a string key; otherwise dead-letters the record, naming the step that needed one. */
  protected hasStringKey(record: AnyRecord, ctx: ProcessorContext, step: string): boolean {
    if (typeof record.key === "string") return true;
    ctx.deadLetter(this.plugin, `${step} needs a string key: the record has ${record.key}`);
    return false;
  }

  protected forward(record: AnyRecord, ctx: ProcessorContext): void {
    const children = this.children;
    for (let i = 0; i < children.length; i++) children[i].process(record, ctx);
  }
}

/** A node that applies a function and forwards what it returns. */
export class FunctionNode extends ProcessorNode {
  constructor(
    name: string,
    plugin: string,
    readonly fn: (record: AnyRecord, emit: (r: AnyRecord) => void) => void,
  ) {
    super(name, plugin);
  }

  /** The context of the call in progress (graphs are acyclic: a node is never re-entered). */
  #ctx: ProcessorContext | null = null;
  /** One emit function for every record, instead of a closure per record. */
  readonly #emit = (r: AnyRecord) => this.forward(r, this.#ctx!);

  process(record: AnyRecord, ctx: ProcessorContext): void {
    this.#ctx = ctx;
    this.fn(record, this.#emit);
  }
}

/** A node that only forwards (used where streams merge). */
export class PassThroughNode extends ProcessorNode {
  process(record: AnyRecord, ctx: ProcessorContext): void {
    this.forward(record, ctx);
  }
}

/** Sends each record to the child of the first predicate that holds. */
export class BranchNode extends ProcessorNode {
  constructor(
    name: string,
    plugin: string,
    // deno-lint-ignore no-explicit-any
    readonly predicates: ((key: any, value: any, meta: AnyRecord) => boolean)[],
  ) {
    super(name, plugin);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    for (let i = 0; i < this.predicates.length; i++) {
      if (this.predicates[i](record.key, record.value, record)) {
        this.children[i].process(record, ctx);
        return;
      }
    }
  }
}
