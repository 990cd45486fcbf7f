import type { ZodType } from "zod";
import type { KeyValueStore } from "../state/key_value_store.ts";
import { type FastAccept, fastAccept } from "./fast_accept.ts";
import { type AnyRecord, type ProcessorContext, ProcessorNode } from "./node.ts";

/** Reads a topic for one plugin: validates the parsed value, then forwards it. */
export class SourceNode extends ProcessorNode {
  /** Accepts most valid values without zod (which then has nothing to change in them). */
  readonly #accept: FastAccept | null;

  constructor(
    name: string,
    plugin: string,
    readonly topic: string,
    readonly schema?: ZodType,
    /** Value field the record key must equal (records are partitioned by it). */
    readonly keyField?: string,
  ) {
    super(name, plugin);
    this.#accept = schema ? fastAccept(schema) : null;
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    if (this.schema && !this.isTombstone(record) && !this.#accept?.(record.value)) {
      const result = validate(this.schema, record);
      if (!result.success) {
        ctx.deadLetter(this.plugin, describeIssues(result.error.issues));
        return;
      }
      record = { ...record, value: result.data };
    }
    if (this.keyField && record.value !== null) {
      const expected = (record.value as Record<string, unknown>)[this.keyField];
      if (record.key !== expected) {
        ctx.deadLetter(
          this.plugin,
          `key: the record key ${JSON.stringify(record.key)} must equal ${this.keyField} ${
            JSON.stringify(expected)
          }`,
        );
        return;
      }
    }
    this.forward(record, ctx);
  }

  /**
   * A stream record's value is an event: with a schema, null fails it like any other value
   * (plugin code would otherwise meet a null it cannot read). Tables override this.
   */
  protected isTombstone(_record: AnyRecord): boolean {
    return false;
  }
}

/** Materializes a topic as a table: the latest value per key; a null value deletes the key. */
export class TableSourceNode extends SourceNode {
  constructor(
    name: string,
    plugin: string,
    topic: string,
    readonly storeName: string,
    schema?: ZodType,
    keyField?: string,
  ) {
    super(name, plugin, topic, schema, keyField);
    this.stores.push(storeName);
  }

  override process(record: AnyRecord, ctx: ProcessorContext): void {
    if (this.hasStringKey(record, ctx, `table '${this.storeName}'`)) super.process(record, ctx);
  }

  /** A null value deletes the key. */
  protected override isTombstone(record: AnyRecord): boolean {
    return record.value === null;
  }

  protected override forward(record: AnyRecord, ctx: ProcessorContext): void {
    const store = ctx.store<KeyValueStore>(this.storeName);
    if (record.value === null) store.delete(record.key);
    else store.put(record.key, record.value);
    super.forward(record, ctx);
  }
}

/** Writes records to a topic (user output or an internal repartition topic). */
export class SinkNode extends ProcessorNode {
  constructor(name: string, plugin: string, readonly topic: string) {
    super(name, plugin);
  }

  process(record: AnyRecord, ctx: ProcessorContext): void {
    ctx.send(this.topic, record);
  }
}

// Plugins reading the same topic often share a schema: validate each record once per schema.
let lastRecord: AnyRecord | null = null;
const lastResults = new Map<ZodType, ReturnType<ZodType["safeParse"]>>();

function validate(schema: ZodType, record: AnyRecord): ReturnType<ZodType["safeParse"]> {
  if (record !== lastRecord) {
    lastRecord = record;
    lastResults.clear();
  }
  let result = lastResults.get(schema);
  if (!result) lastResults.set(schema, result = schema.safeParse(record.value));
  return result;
}

/** One readable sentence from schema issues, naming each failing field. */
export function describeIssues(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): string {
  return issues
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join(".") : "value"}: ${i.message}`)
    .join("; ");
}
