import { type AnyRecord, type ProcessorContext, ProcessorNode } from "./node.ts";

/**
 * A store a plugin declares for `processValues` (`builder.keyValueStore(name)`,
 * `builder.fraudScoringStore(name, rules)`).
 */
export interface StoreRef<S> {
  readonly name: string;
  /** Only carries the store's type. */
  readonly _store?: S;
}

/** What a `processValues` step gets besides the value and key. */
export interface ValueProcessorContext {
  /** Event time of the record. */
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
  /** One of the step's stores, for this task's partition. */
  store<S>(ref: StoreRef<S>): S;
}

/** `(value, key, ctx)` → the values to emit for this record, under its key (none: nothing). */
export type ValueProcessor<V, VR> = (
  value: V,
  key: string,
  ctx: ValueProcessorContext,
) => Iterable<VR> | undefined | void;

/**
 * Runs a plugin's function per record with access to named stores, and forwards what it returns
 * at once, under the record's key (as Kafka Streams' `processValues`). Its outputs follow every
 * event: no record cache holds them back.
 */
export class ProcessValuesNode extends ProcessorNode implements ValueProcessorContext {
  #ctx: ProcessorContext | null = null;
  #record: AnyRecord | null = null;

  constructor(
    name: string,
    plugin: string,
    readonly storeNames: readonly string[],
    // deno-lint-ignore no-explicit-any
    readonly fn: ValueProcessor<any, unknown>,
  ) {
    super(name, plugin);
    this.stores.push(...storeNames);
  }

  get timestamp(): number {
    return this.#record!.timestamp;
  }

  get headers(): Readonly<Record<string, string>> {
    return this.#record!.headers;
  }

  store<S>(ref: StoreRef<S>): S {
    if (!this.storeNames.includes(ref.name)) {
      throw new Error(
        `Cannot use store '${ref.name}' in ${this.name} as it is not one of its stores (${
          this.storeNames.join(", ")
        }): list it in processValues`,
      );
    }
    return this.#ctx!.store<S>(ref.name);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (!this.hasStringKey(record, ctx, `processValues '${this.name}'`)) return;
    this.#ctx = ctx;
    this.#record = record;
    const out = this.fn(record.value, record.key, this);
    if (!out) return;
    for (const value of out) this.forward({ ...record, value }, ctx);
  }
}
