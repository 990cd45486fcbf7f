/**
 * A store partition of customers' payment histories kept by the fraud-scoring operator
 * (WebAssembly linear memory, or the TypeScript reference). Customer and payment ids are
 * interned here; the operator holds numbers. It persists as binary pages of the customers a
 * commit changed (ChangelogPages: a delta per commit, snapshots dumped from the operator), and
 * its changelog topic carries each customer's history as JSON.
 */
import type { Mutation } from "../kv/blob.ts";
import { ByteReader, ByteWriter } from "../state/byte_codec.ts";
import { applyEntries, BinarySnapshots } from "../state/binary_pages.ts";
import { ChangelogPages } from "../state/changelog_pages.ts";
import type { PersistedState } from "../state/persistent_map.ts";
import { OperatorFailure } from "../task.ts";
import { KeyIds } from "./key_ids.ts";
import {
  ALERT_CODES,
  DUMP_HEADER,
  type FraudAlertType,
  type FraudKernel,
  fraudKernel,
  type FraudScoringRules,
  SCORE,
  SCORE_ROW,
} from "./fraud_kernel.ts";
import type { OperatorMode } from "./window_kernel.ts";

/** A customer's history as queries, tests and the changelog topic see it. */
export interface PaymentHistory {
  /** Earlier payments, all time. */
  readonly count: number;
  readonly sum: number;
  readonly inBurst: boolean;
  /** Payments within twice the rapid window: [time, paymentId], by time. */
  readonly recent: [number, string][];
  /** Payments in the score window: [time, failed], by time. */
  readonly scored: [number, boolean][];
  /** Alerts in the score window: [time, type], as raised. */
  readonly alerts: [number, FraudAlertType][];
}

/** A payment as the scoring reads it. */
export interface ScoredPayment {
  readonly paymentId: string;
  readonly time: number;
  readonly amount: number;
  readonly failed: boolean;
}

/** What one payment raised, and the customer's score with it. */
export interface PaymentRisk {
  readonly raiseRapid: boolean;
  readonly raiseUnusual: boolean;
  /** 0-100, unrounded, counting the alerts this payment raises. */
  readonly score: number;
  /** Average of the earlier payments when there were enough of them, else 0. */
  readonly average: number;
  readonly earlierPayments: number;
  /** The payments within the rapid window, by time, when `raiseRapid` (else empty). */
  readonly rapidPayments: readonly string[];
}

const ALERT_TYPES = new Map<number, FraudAlertType>(
  Object.entries(ALERT_CODES).map(([type, code]) => [code, type as FraudAlertType]),
);

/** Customers per snapshot page. */
const SNAPSHOT_PAGE_CUSTOMERS = 1000;
/** Bytes a changed customer is reckoned to add to a commit. */
const CHANGED_CUSTOMER_BYTES = 200;

export class FraudScoringStore implements PersistedState {
  readonly #kernel: FraudKernel;
  readonly #customers = new KeyIds();
  /** Payment ids by handle; freed handles are reused. */
  readonly #payments: (string | undefined)[] = [];
  readonly #freeHandles: number[] = [];
  /** Customers read from KV or a changelog topic, until `open` hands them to the kernel. */
  #loading: Map<string, PaymentHistory> | null = new Map();
  /** Customers changed since the last commit, by key id. */
  #changed = new Set<number>();
  /**
   * Changes applied from a changelog topic, persisted to KV with the next commit (not written
   * back to the changelog, which has them).
   */
  #restored: [string, PaymentHistory | null][] = [];
  #pages!: ChangelogPages;
  #snapshots!: BinarySnapshots;

  private constructor(
    readonly name: string,
    /** The plugin whose store it is, named when its operator fails. */
    readonly plugin: string,
    rules: FraudScoringRules,
    mode: OperatorMode,
  ) {
    this.#kernel = fraudKernel(mode, rules);
  }

  /** Reads the store's pages under `prefix`; `open` must follow (after any restore). */
  static async load(
    kv: Deno.Kv,
    prefix: Deno.KvKey,
    name: string,
    plugin: string,
    rules: FraudScoringRules,
    mode: OperatorMode,
  ): Promise<FraudScoringStore> {
    const store = new FraudScoringStore(name, plugin, rules, mode);
    store.#pages = await ChangelogPages.load(
      kv,
      prefix,
      (bytes) => applyEntries(store.#loading!, decodeEntries(bytes)),
    );
    store.#snapshots = new BinarySnapshots(store.#pages, SNAPSHOT_PAGE_CUSTOMERS);
    return store;
  }

  /** Loads the customers read so far into the kernel. */
  open(): this {
    const loading = this.#loading!;
    this.#loading = null;
    for (const [customer, h] of loading) {
      this.#kernel.load(this.#customers.intern(customer), this.#rows(h));
    }
    return this;
  }

  /** What the runner persists at each commit: the store itself. */
  get map(): PersistedState {
    return this;
  }

  /** Frees the kernel's memory; the store is unusable after. */
  release(): void {
    this.#kernel.release();
  }

  /**
   * Scores payments in order (payment i of customer `customerIds[i]`), in one call of the
   * operator, and adds each to its customer's history.
   */
  scoreAll(customerIds: readonly string[], payments: readonly ScoredPayment[]): PaymentRisk[] {
    const n = payments.length;
    let r;
    try {
      const c = this.#kernel.prepare(n);
      for (let i = 0; i < n; i++) {
        const p = payments[i];
        const key = this.#customers.intern(customerIds[i]);
        c.keys[i] = key;
        c.times[i] = p.time;
        c.amounts[i] = p.amount;
        c.failed[i] = p.failed ? 1 : 0;
        c.handles[i] = this.#handle(p.paymentId);
        this.#changed.add(key);
      }
      r = this.#kernel.score(n);
    } catch (e) {
      // A trap leaves the operator's memory in doubt: the tasks holding it stop.
      throw new OperatorFailure("fraud_scoring", this.plugin, this.name, e);
    }
    const risks: PaymentRisk[] = [];
    for (let at = 0; at < n * SCORE_ROW; at += SCORE_ROW) {
      const row = r.rows;
      const span = row[at + SCORE.span];
      const rapidPayments: string[] = [];
      for (let i = row[at + SCORE.spanAt], end = i + span; i < end; i++) {
        rapidPayments.push(this.#payments[r.spans[i]]!);
      }
      risks.push({
        raiseRapid: row[at + SCORE.raiseRapid] === 1,
        raiseUnusual: row[at + SCORE.raiseUnusual] === 1,
        score: row[at + SCORE.score],
        average: row[at + SCORE.average],
        earlierPayments: row[at + SCORE.earlier],
        rapidPayments,
      });
    }
    // Only now: a span may name a payment the batch dropped afterwards.
    for (const h of r.freed) {
      this.#payments[h] = undefined;
      this.#freeHandles.push(h);
    }
    return risks;
  }

  /** A customer's history, or undefined. */
  get(customerId: string): PaymentHistory | undefined {
    if (this.#loading) return this.#loading.get(customerId);
    const key = this.#customers.idOf(customerId);
    return key === undefined ? undefined : this.#history(key);
  }

  get size(): number {
    return this.#loading ? this.#loading.size : this.#kernel.customers;
  }

  get dirtyBytes(): number {
    return (this.#changed.size + this.#restored.length) * CHANGED_CUSTOMER_BYTES +
      this.#snapshots.pendingBytes;
  }

  takeCommit(changelog: boolean): { mutations: Mutation[]; changes: [string, string | null][] } {
    const delta = new ByteWriter();
    const changes: [string, string | null][] = [];
    for (const [customer, h] of this.#restored) {
      if (h === null) encodeEntry(delta, customer, null, () => "");
      else {
        const { rows, ids } = historyRows(h);
        encodeEntry(delta, customer, rows, (i) => ids[i]);
      }
    }
    for (const key of this.#changed) {
      const d = this.#encode(delta, key)!;
      if (changelog) changes.push([this.#customers.keyOf(key), JSON.stringify(this.#historyOf(d))]);
    }
    this.#restored = [];
    this.#changed = new Set();
    const mutations: Mutation[] = [];
    if (delta.length > 0) mutations.push(...this.#pages.appendDelta(delta.take()));
    if (!this.#loading) mutations.push(...this.#snapshots.step(() => this.#snapshotEntries()));
    mutations.push(...this.#pages.takeGarbage(200));
    return { mutations, changes };
  }

  /**
   * Writes every customer's history into a snapshot's pages, a page per commit. Each is read
   * from the operator when its page is written (ids are never reused: no customer live at the
   * start is missed; a history changed since is in a later delta too).
   */
  #snapshotEntries(): (page: ByteWriter) => Iterator<unknown> {
    const customers = this.#customers.size;
    const encode = (page: ByteWriter, key: number) => this.#encode(page, key);
    return function* (page) {
      for (let key = 0; key < customers; key++) if (encode(page, key)) yield;
    };
  }

  applyChange(customer: string, text: string | null): void {
    const h = text === null ? null : JSON.parse(text) as PaymentHistory;
    if (h === null) this.#loading!.delete(customer);
    else this.#loading!.set(customer, h);
    this.#restored.push([customer, h]);
  }

  clear(): void {
    for (const customer of this.#loading!.keys()) this.#restored.push([customer, null]);
    this.#loading!.clear();
  }

  *entries(): Iterable<[string, PaymentHistory]> {
    if (this.#loading) {
      yield* this.#loading;
      return;
    }
    for (let key = 0; key < this.#customers.size; key++) {
      const h = this.#history(key);
      if (h) yield [this.#customers.keyOf(key), h];
    }
  }

  #handle(paymentId: string): number {
    const h = this.#freeHandles.pop() ?? this.#payments.length;
    this.#payments[h] = paymentId;
    return h;
  }

  /**
   * Writes a customer's stored entry straight from the kernel's dump, and returns the dump (a
   * view valid until the next kernel call); null when unknown.
   */
  #encode(w: ByteWriter, key: number): Float64Array | null {
    const d = this.#kernel.dump(key);
    if (d) encodeEntry(w, this.#customers.keyOf(key), d, (h) => this.#payments[h]!);
    return d;
  }

  /** A customer's history from the kernel's dump. */
  #history(key: number): PaymentHistory | undefined {
    const d = this.#kernel.dump(key);
    return d ? this.#historyOf(d) : undefined;
  }

  /** A customer's history from a dump of it. */
  #historyOf(d: Float64Array): PaymentHistory {
    const [nRecent, nScored, nAlerts] = [d[3], d[4], d[5]];
    const pairs = <T>(from: number, n: number, value: (v: number) => T): [number, T][] =>
      Array.from({ length: n }, (_, i) => [d[from + 2 * i], value(d[from + 2 * i + 1])]);
    return {
      count: d[0],
      sum: d[1],
      inBurst: d[2] === 1,
      recent: pairs(DUMP_HEADER, nRecent, (h) => this.#payments[h]!),
      scored: pairs(DUMP_HEADER + 2 * nRecent, nScored, (f) => f === 1),
      alerts: pairs(DUMP_HEADER + 2 * (nRecent + nScored), nAlerts, (c) => ALERT_TYPES.get(c)!),
    };
  }

  /** A history as the kernel loads it, its payment ids given handles. */
  #rows(h: PaymentHistory): Float64Array {
    const { rows, ids } = historyRows(h);
    for (let i = 0; i < ids.length; i++) {
      rows[DUMP_HEADER + 2 * i + 1] = this.#handle(ids[i]);
    }
    return rows;
  }
}

/**
 * A history in the kernel's dump layout, each recent payment's value being its index in `ids`.
 */
function historyRows(h: PaymentHistory): { rows: Float64Array; ids: string[] } {
  const rows = new Float64Array(
    DUMP_HEADER + 2 * (h.recent.length + h.scored.length + h.alerts.length),
  );
  rows.set([h.count, h.sum, h.inBurst ? 1 : 0, h.recent.length, h.scored.length, h.alerts.length]);
  let at = DUMP_HEADER;
  const pair = (t: number, v: number) => {
    rows[at++] = t;
    rows[at++] = v;
  };
  h.recent.forEach(([t], i) => pair(t, i));
  for (const [t, failed] of h.scored) pair(t, failed ? 1 : 0);
  for (const [t, type] of h.alerts) pair(t, ALERT_CODES[type]);
  return { rows, ids: h.recent.map(([, id]) => id) };
}

/**
 * Writes one customer, from rows in the kernel's dump layout (null: deleted; `idOf` names a
 * recent payment's value): key (u16 length, UTF-8), live flag (u8); when live, count and sum
 * (f64), in burst (u8), then the recent payments (u32 count; time f64 and id each), the scored
 * payments (u32 count; time f64, failed u8 each) and the alerts (u32 count; time f64, code u8).
 */
function encodeEntry(
  w: ByteWriter,
  customer: string,
  d: Float64Array | null,
  idOf: (value: number) => string,
): void {
  w.str(customer);
  w.u8(d ? 1 : 0);
  if (!d) return;
  w.f64(d[0]);
  w.f64(d[1]);
  w.u8(d[2]);
  let row = DUMP_HEADER;
  w.u32(d[3]);
  for (let i = 0; i < d[3]; i++, row += 2) {
    w.f64(d[row]);
    w.str(idOf(d[row + 1]));
  }
  for (const n of [d[4], d[5]]) {
    w.u32(n);
    for (let i = 0; i < n; i++, row += 2) {
      w.f64(d[row]);
      w.u8(d[row + 1]);
    }
  }
}

/** The customers of a page, as (customer, history or null for a deletion). */
function* decodeEntries(bytes: Uint8Array): Generator<[string, PaymentHistory | null]> {
  const r = new ByteReader(bytes);
  while (!r.done) {
    const customer = r.str();
    if (r.u8() === 0) {
      yield [customer, null];
      continue;
    }
    const count = r.f64();
    const sum = r.f64();
    const inBurst = r.u8() === 1;
    const recent: [number, string][] = [];
    for (let n = r.u32(); n > 0; n--) recent.push([r.f64(), r.str()]);
    const flagged = (): [number, number][] => {
      const list: [number, number][] = [];
      for (let n = r.u32(); n > 0; n--) list.push([r.f64(), r.u8()]);
      return list;
    };
    const scored = flagged().map(([t, f]): [number, boolean] => [t, f === 1]);
    const alerts = flagged().map(([t, c]): [number, FraudAlertType] => [t, ALERT_TYPES.get(c)!]);
    yield [customer, { count, sum, inBurst, recent, scored, alerts }];
  }
}
