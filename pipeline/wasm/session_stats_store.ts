/**
 * A store partition of session statistics whose sessions live in a session kernel (WebAssembly
 * linear memory, or the TypeScript reference), persisted as binary pages of the keys whose
 * sessions changed and loaded back into the kernel on start (see CountingStore).
 */
import { ByteReader, type ByteWriter } from "../state/byte_codec.ts";
import { applyEntries } from "../state/binary_pages.ts";
import type { SessionWindowSpec } from "../windows.ts";
import { type Categories, readCounts, writeCounts } from "./categories.ts";
import { byKeyAndStart, CountingStore } from "./counting_store.ts";
import type { KeyIds } from "./key_ids.ts";
import {
  SESSION_FIELDS,
  type SessionColumns,
  type SessionKernel,
  sessionKernel,
  type SessionResult,
  sessionsPerKey,
} from "./session_kernel.ts";
import type { StatsWindow } from "./stats_window_store.ts";
import type { OperatorMode } from "./window_kernel.ts";

/** A session as stored: start, end, count, sum, min, max, last, and its counts by category. */
interface StoredSession {
  readonly fields: Float64Array;
  readonly counts: ReadonlyMap<string, number>;
}

/** Keys per snapshot page. */
const SNAPSHOT_PAGE_KEYS = 1000;

export class SessionStatsStore extends CountingStore<SessionKernel> {
  protected kernel: SessionKernel;
  /** Each key's sessions read from KV or a changelog topic, until `open` loads the kernel. */
  #loading: Map<string, StoredSession[]> | null = new Map();

  private constructor(
    readonly name: string,
    readonly spec: SessionWindowSpec,
    readonly retractAll: boolean,
    readonly mode: OperatorMode,
  ) {
    super();
    this.kernel = this.#newKernel(0, sessionsPerKey(spec.gap, spec.grace));
  }

  #newKernel(categories: number, perKey: number): SessionKernel {
    const { gap, grace } = this.spec;
    return sessionKernel(this.mode, gap, grace, categories, this.retractAll, perKey);
  }

  /** Reads the store's pages under `prefix`; `open` must follow (after any restore). */
  static async load(
    kv: Deno.Kv,
    prefix: Deno.KvKey,
    name: string,
    spec: SessionWindowSpec,
    retractAll: boolean,
    mode: OperatorMode,
  ): Promise<SessionStatsStore> {
    const store = new SessionStatsStore(name, spec, retractAll, mode);
    await store.loadPages(
      kv,
      prefix,
      (bytes) => applyEntries(store.#loading!, decodeEntries(bytes)),
      SNAPSHOT_PAGE_KEYS,
    );
    return store;
  }

  /** Loads the sessions read so far into the kernel. */
  open(): this {
    const loading = [...this.#loading!];
    this.#loading = null;
    for (const [, sessions] of loading) {
      for (const s of sessions) for (const name of s.counts.keys()) this.names.intern(name);
    }
    // State written with a longer grace (or shorter gap) may hold more sessions per key.
    let perKey = sessionsPerKey(this.spec.gap, this.spec.grace);
    for (const [, sessions] of loading) perKey = Math.max(perKey, sessions.length);
    this.kernel.release();
    this.kernel = this.#newKernel(this.names.size, perKey);
    const { changed: width, session } = this.kernel.rows;
    const rows = new Float64Array(loading.length * width);
    loading.forEach(([key, sessions], i) => {
      const at = i * width;
      rows[at] = this.intern(key);
      rows[at + 1] = sessions.length;
      sessions.forEach((s, j) => {
        rows.set(s.fields, at + 2 + j * session);
        this.names.place(s.counts, rows, at + 2 + j * session + SESSION_FIELDS);
      });
    });
    this.kernel.load(rows);
    return this;
  }

  protected get loading(): boolean {
    return this.#loading !== null;
  }

  protected widen(categories: number): void {
    const old = this.kernel;
    const next = this.#newKernel(categories, old.perKey);
    const from = old.rows;
    const to = next.rows;
    for (const page of old.dump()) {
      const n = page.length / from.changed;
      const rows = new Float64Array(n * to.changed);
      for (let i = 0; i < n; i++) {
        const a = i * from.changed;
        const b = i * to.changed;
        rows[b] = page[a];
        rows[b + 1] = page[a + 1];
        for (let j = 0; j < page[a + 1]; j++) {
          const s = a + 2 + j * from.session;
          rows.set(page.subarray(s, s + from.session), b + 2 + j * to.session);
        }
      }
      next.load(rows);
    }
    old.release();
    this.kernel = next;
  }

  get rows() {
    return this.kernel.rows;
  }

  prepare(n: number): SessionColumns {
    return this.kernel.prepare(n);
  }

  /** Applies a prepared batch; the keys it changed are persisted with the next commit. */
  aggregate(n: number): SessionResult {
    const result = this.kernel.aggregate(n);
    const c = result.changed;
    const width = this.kernel.rows.changed;
    const { session, categories } = this.kernel.rows;
    for (let at = 0; at < c.length; at += width) {
      encodeRow(this.delta, c, at, session, categories, this.keys, this.names);
    }
    return result;
  }

  get size(): number {
    return this.#loading ? this.#loading.size : this.kernel.liveSessions;
  }

  protected changes(delta: Uint8Array): [string, string | null][] {
    return [...decodeEntries(delta)].map(([key, s]) => [key, s && changeText(s)]);
  }

  /** Every key's sessions now, copied from the kernel at once, encoded a page per commit. */
  protected snapshotEntries(): (page: ByteWriter) => Iterator<unknown> {
    const dumps = [...this.kernel.dump()];
    // As the rows were dumped: the kernel may be widened before the last page is written.
    const { changed: width, session, categories } = this.kernel.rows;
    const keys = this.keys;
    const names = this.names;
    return function* (page) {
      for (const dump of dumps) {
        for (let at = 0; at < dump.length; at += width) {
          encodeRow(page, dump, at, session, categories, keys, names);
          yield;
        }
      }
    };
  }

  applyChange(key: string, text: string | null): void {
    const sessions = text === null ? [] : (JSON.parse(text) as ChangedSession[]).map((s) => ({
      fields: Float64Array.from(s.slice(0, SESSION_FIELDS) as number[]),
      counts: new Map(Object.entries((s[SESSION_FIELDS] ?? {}) as Record<string, number>)),
    }));
    if (sessions.length === 0) this.#loading!.delete(key);
    else this.#loading!.set(key, sessions);
    encodeEntry(this.delta, key, sessions);
  }

  clear(): void {
    for (const key of this.#loading!.keys()) encodeEntry(this.delta, key, []);
    this.#loading!.clear();
  }

  /** Every key's sessions under the key, as the changelog names them. */
  *entries(): Iterable<[string, StatsWindow[]]> {
    const byKey = new Map<string, StatsWindow[]>();
    for (const s of this.all()) byKey.set(s.key, [...byKey.get(s.key) ?? [], s]);
    yield* byKey;
  }

  /** Every live session as (key, start, end, stats), for queries and tests. */
  all(): StatsWindow[] {
    const out: StatsWindow[] = [];
    const { changed: width, session } = this.kernel.rows;
    for (const dump of this.kernel.dump()) {
      for (let at = 0; at < dump.length; at += width) {
        for (let j = 0; j < dump[at + 1]; j++) {
          const s = at + 2 + j * session;
          out.push(this.window(dump, at, s, s + 2, s + SESSION_FIELDS));
        }
      }
    }
    return byKeyAndStart(out);
  }
}

/**
 * Writes a changed (or dumped) row as an entry, its sessions `session` f64s wide with
 * `categories` counts each: the key's sessions, or its deletion.
 */
function encodeRow(
  w: ByteWriter,
  row: Float64Array,
  at: number,
  session: number,
  categories: number,
  keys: KeyIds,
  names: Categories,
): void {
  const sessions: StoredSession[] = [];
  for (let j = 0; j < row[at + 1]; j++) {
    const s = at + 2 + j * session;
    sessions.push({
      fields: row.subarray(s, s + SESSION_FIELDS),
      counts: names.named(row, s + SESSION_FIELDS, categories),
    });
  }
  encodeEntry(w, keys.keyOf(row[at]), sessions);
}

/** A session in a changelog record: its seven fields, then its counts when it has any. */
type ChangedSession = (number | Record<string, number>)[];

function changeText(sessions: StoredSession[]): string {
  return JSON.stringify(sessions.map((s) => {
    const fields: ChangedSession = [...s.fields];
    if (s.counts.size > 0) fields.push(Object.fromEntries(s.counts));
    return fields;
  }));
}

/**
 * Writes one key: key (u16 length, UTF-8), its number of sessions (u8; 0: deleted), and per
 * session start, end, count, sum, min, max, last (f64 each) and its category counts.
 */
function encodeEntry(w: ByteWriter, key: string, sessions: readonly StoredSession[]): void {
  w.str(key);
  w.u8(sessions.length);
  for (const s of sessions) {
    for (let f = 0; f < SESSION_FIELDS; f++) w.f64(s.fields[f]);
    writeCounts(w, s.counts);
  }
}

function* decodeEntries(bytes: Uint8Array): Generator<[string, StoredSession[] | null]> {
  const r = new ByteReader(bytes);
  while (!r.done) {
    const key = r.str();
    const n = r.u8();
    const sessions: StoredSession[] = [];
    for (let j = 0; j < n; j++) {
      const fields = new Float64Array(SESSION_FIELDS);
      for (let f = 0; f < SESSION_FIELDS; f++) fields[f] = r.f64();
      sessions.push({ fields, counts: readCounts(r) });
    }
    yield [key, n === 0 ? null : sessions];
  }
}
