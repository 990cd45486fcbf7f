import {
  blobDeletes,
  blobMutations,
  listBlobs,
  type Mutation,
  PART_BYTES,
  sameKey,
} from "../kv/blob.ts";
import type { KvCommitter } from "../kv/committer.ts";
import { partitionForKey } from "../murmur2.ts";
import { type Headers, type LogRecord, type NewRecord, serializedValue } from "../record.ts";

/** How a topic is laid out and how long it keeps records. */
export interface TopicSpec {
  readonly partitions: number;
  /** Oldest records beyond either bound are deleted; both are per partition. */
  readonly retention?: { readonly records?: number; readonly ms?: number };
}

/** Where an appended record landed. */
export interface RecordPosition {
  readonly partition: number;
  readonly offset: number;
}

/** Default retention: one million records per partition. */
export const DEFAULT_RETENTION_RECORDS = 1_000_000;
/** Default number of a partition's newest records kept in memory. */
export const DEFAULT_MEMORY_RECORDS = 20_000;
/** Default bytes of a partition's records kept in memory: large records are not held 20 000 deep. */
export const DEFAULT_MEMORY_BYTES = 8 * 1024 * 1024;
/**
 * Present once every page has an entry in the page index (["logpage", topic, partition, base]:
 * its size and newest timestamp), so opening reads the index and no page.
 */
const PAGE_INDEX_FORMAT: Deno.KvKey = ["logformat", "page-index"];

/** Records per KV page; a page also stays under ~60 KB of text in the common case. */
const PAGE_RECORDS = 256;
/** A page is closed once its records reach this many bytes of text (large records). */
const PAGE_BYTES = 512 * 1024;

/** Options of `EmbeddedLog.open`. */
export interface EmbeddedLogOptions {
  /**
   * A partition's newest records kept in memory (whole pages); older ones are read back from KV
   * by `prefetch`, and at most as many of those are cached per partition.
   */
  readonly memoryRecords?: number;
  /** The same bound in bytes of record text (default 8 MiB); whichever is reached first holds. */
  readonly memoryBytes?: number;
  /**
   * The same for topics marked output-only (`markOutputOnly`: no task of this process reads
   * them); default 0, as their readers are consumers over HTTP or Kafka, served from KV.
   */
  readonly outputMemoryRecords?: number;
}

interface Page {
  readonly base: number;
  readonly count: number;
  readonly parts: number;
  /** Largest record timestamp in the page (for time retention). */
  readonly maxTimestamp: number;
  /** Size of the page's text, for the memory bounds. */
  readonly bytes: number;
}

/**
 * A partition: every retained page is described in `pages` and stored in KV; the newest are
 * also in `records`, older ones in `loaded` while cached. start <= memBase <= end.
 */
interface PartitionLog {
  /** Oldest retained offset. */
  start: number;
  /** Offset of records[0]; always a page boundary. */
  memBase: number;
  records: LogRecord[];
  pages: Page[];
  /** Older pages read back from KV, by base offset, oldest read first. */
  loaded: Map<number, LogRecord[]>;
}

interface TopicLog {
  spec: TopicSpec;
  /** Newest records per partition kept in memory, and loaded pages cached. */
  memoryRecords: number;
  partitions: PartitionLog[];
  nextRoundRobin: number;
  persisted: boolean;
}

/** Shared by records without headers (headers are read-only). */
const NO_HEADERS: Headers = Object.freeze({});

/** Per record in a page: key, timestamp, headers (0 when none), value length (-1: null). */
type PageMeta = [string | null, number, Headers | 0, number];

/**
 * The embedded topic log: Kafka-like topics with partitions and offsets, durable in Deno KV.
 *
 * Records are kept in memory for reads and in KV as pages of many records each (one KV value
 * per record would cap throughput). Appends are staged into a caller's commit so output
 * records land atomically with the state and input offsets they came from.
 */
export class EmbeddedLog {
  readonly #topics = new Map<string, TopicLog>();
  readonly #listeners = new Set<() => void>();
  #pendingMutations: Mutation[] = [];
  #seq = 0;

  private constructor(
    readonly committer: KvCommitter,
    readonly now: () => number,
    readonly memoryRecords: number,
    readonly outputMemoryRecords: number,
    readonly memoryBytes: number,
  ) {}

  /** Opens the log: the topics and their page index; records are read from KV on demand. */
  static async open(
    committer: KvCommitter,
    now: () => number = Date.now,
    options: EmbeddedLogOptions = {},
  ): Promise<EmbeddedLog> {
    const log = new EmbeddedLog(
      committer,
      now,
      options.memoryRecords ?? DEFAULT_MEMORY_RECORDS,
      options.outputMemoryRecords ?? 0,
      options.memoryBytes ?? DEFAULT_MEMORY_BYTES,
    );
    const kv = committer.kv;
    for await (const e of kv.list<number>({ prefix: ["topic"] })) {
      const name = e.key[1] as string;
      log.#topics.set(name, newTopic({ partitions: e.value }, true, log.memoryRecords));
    }
    const indexed = (await kv.get<number>(PAGE_INDEX_FORMAT)).value !== null;
    for (const [name, topic] of log.#topics) {
      for (let p = 0; p < topic.partitions.length; p++) {
        const part = topic.partitions[p];
        // With every page deleted, offsets go on from where the partition ended.
        const end = (await kv.get<number>(["logend", name, p])).value ?? 0;
        part.start = part.memBase = end;
        part.pages = indexed ? await log.#readPageIndex(name, p) : await log.#scanPages(name, p);
        if (part.pages.length > 0) {
          // No record is kept in memory: reads load them from KV (`prefetch`).
          const last = part.pages[part.pages.length - 1];
          part.start = part.pages[0].base;
          part.memBase = last.base + last.count;
        }
      }
    }
    if (!indexed) {
      // A log written before page indexes: index every page once, then open the fast way.
      const mutations: Mutation[] = [{ key: PAGE_INDEX_FORMAT, value: 1 }];
      for (const [name, topic] of log.#topics) {
        topic.partitions.forEach((part, p) => {
          for (const page of part.pages) mutations.push(pageIndexEntry(name, p, page));
        });
      }
      await committer.serialize(() => committer.write(mutations));
    }
    return log;
  }

  /**
   * A partition's pages from its page index alone: opening costs the same however much the log
   * holds.
   */
  async #readPageIndex(name: string, p: number): Promise<Page[]> {
    const pages: Page[] = [];
    for await (const e of this.committer.kv.list<string>({ prefix: pageIndexKey(name, p) })) {
      const [count, parts, maxTimestamp, bytes] = JSON.parse(e.value) as number[];
      pages.push({
        base: e.key[3] as number,
        count,
        parts,
        maxTimestamp,
        bytes: bytes ?? parts * PART_BYTES,
      });
    }
    return pages;
  }

  /** A partition's pages by reading every page (logs written before page indexes). */
  async #scanPages(name: string, p: number): Promise<Page[]> {
    const pages: Page[] = [];
    for await (const blob of listBlobs(this.committer.kv, ["log", name, p])) {
      const base = blob.key[3] as number;
      pages.push(pageOf(decodePage(blob.text, name, p, base), blob.parts, blob.text.length));
    }
    return pages;
  }

  /**
   * Declares a topic. An existing topic keeps its records; asking for a different partition
   * count is an error, since keys would no longer map to the partitions that hold them.
   */
  ensureTopic(name: string, spec: TopicSpec): void {
    const existing = this.#topics.get(name);
    if (!existing) {
      this.#topics.set(name, newTopic(spec, false, this.memoryRecords));
      return;
    }
    if (existing.partitions.length !== spec.partitions) {
      throw new Error(
        `Cannot use topic '${name}' with ${spec.partitions} partitions: it already exists with ${existing.partitions.length}. ` +
          `Keep its partition count, or clean up the state directory to start over.`,
      );
    }
    existing.spec = { ...spec };
  }

  /**
   * Keeps only `outputMemoryRecords` of the topic's records in memory, beyond the newest
   * commit's: for topics no task of this process reads. Their records then die young instead of
   * filling the old generation, and readers get older ones from KV through `prefetch`.
   */
  markOutputOnly(name: string): void {
    const topic = this.#topic(name);
    topic.memoryRecords = this.outputMemoryRecords;
    for (const p of topic.partitions) this.#trimMemory(p, topic.memoryRecords);
  }

  hasTopic(name: string): boolean {
    return this.#topics.has(name);
  }

  topicNames(): string[] {
    return [...this.#topics.keys()].sort();
  }

  partitions(topic: string): number {
    return this.#topic(topic).partitions.length;
  }

  /** The offset the next record appended to this partition gets. */
  endOffset(topic: string, partition: number): number {
    const p = this.#topic(topic).partitions[partition];
    return p.memBase + p.records.length;
  }

  /** The oldest offset still kept. */
  startOffset(topic: string, partition: number): number {
    return this.#topic(topic).partitions[partition].start;
  }

  /**
   * Up to `max` records from `offset` on (an offset below the start reads from the start), and
   * no more than about `maxBytes` of record text (at least one record). Records older than the
   * in-memory tail are returned only once `prefetch` has loaded them: call `needsPrefetch` first
   * when reading far behind the end.
   */
  read(
    topic: string,
    partition: number,
    offset: number,
    max: number,
    maxBytes = Infinity,
  ): LogRecord[] {
    const p = this.#topic(topic).partitions[partition];
    let from = Math.max(offset, p.start);
    const out: LogRecord[] = [];
    let bytes = 0;
    const take = (r: LogRecord) => {
      out.push(r);
      bytes += recordBytes(r);
      return out.length < max && bytes < maxBytes;
    };
    for (let i = pageIndex(p.pages, from); from < p.memBase; i++) {
      const page = p.pages[i];
      const records = p.loaded.get(page.base);
      if (!records) return out;
      for (let at = from - page.base; at < records.length; at++) {
        if (!take(records[at])) return out;
      }
      from = page.base + page.count;
    }
    for (let i = from - p.memBase; i < p.records.length; i++) {
      if (!take(p.records[i])) return out;
    }
    return out;
  }

  /** Whether `read(topic, partition, offset, max, maxBytes)` needs records first loaded from KV. */
  needsPrefetch(
    topic: string,
    partition: number,
    offset: number,
    max = 1,
    maxBytes = Infinity,
  ): boolean {
    const p = this.#topic(topic).partitions[partition];
    // Every page the read would touch, so that a read returns all it may or up to the end.
    return pagesToRead(p, offset, max, maxBytes).some((page) => !p.loaded.has(page.base));
  }

  /** Loads from KV the pages the same `read` needs that are not in memory. */
  async prefetch(
    topic: string,
    partition: number,
    offset: number,
    max: number,
    maxBytes = Infinity,
  ): Promise<void> {
    const t = this.#topic(topic);
    const p = t.partitions[partition];
    const needed = pagesToRead(p, offset, max, maxBytes);
    const missing = needed.filter((page) => !p.loaded.has(page.base));
    if (missing.length > 0) {
      // One range read for every missing page.
      const range = {
        start: ["log", topic, partition, missing[0].base],
        end: ["log", topic, partition, missing[missing.length - 1].base + 1],
      };
      const wantedBases = new Set(missing.map((page) => page.base));
      for await (const blob of listBlobs(this.committer.kv, range)) {
        const base = blob.key[3] as number;
        // A page deleted by retention meanwhile is simply not cached.
        if (!wantedBases.has(base) || p.pages[pageIndex(p.pages, base)]?.base !== base) continue;
        p.loaded.set(base, decodePage(blob.text, topic, partition, base));
      }
    }
    const keep = new Set(needed.map((page) => page.base));
    // Bound the cache, oldest loaded first, but keep what this read needs.
    let cached = 0;
    let cachedBytes = 0;
    for (const page of p.pages) {
      if (!p.loaded.has(page.base)) continue;
      cached += page.count;
      cachedBytes += page.bytes;
    }
    for (const base of p.loaded.keys()) {
      if (cached <= t.memoryRecords && cachedBytes <= this.memoryBytes) break;
      if (keep.has(base)) continue;
      const page = p.pages[pageIndex(p.pages, base)];
      p.loaded.delete(base);
      cached -= page.count;
      cachedBytes -= page.bytes;
    }
  }

  /** Appends records durably: resolves once they are committed to KV. */
  append(topic: string, records: readonly NewRecord[]): Promise<RecordPosition[]> {
    return this.committer.serialize(async () => {
      const staged = this.stage(new Map([[topic, records]]));
      await this.committer.write(staged.mutations);
      return staged.publish().get(topic) ?? [];
    });
  }

  /**
   * Assigns partitions and offsets to records and returns the KV mutations that store them,
   * plus `publish` to make them readable once those mutations are committed. Must run inside
   * the committer's `serialize`, so offsets are assigned and published in commit order.
   *
   * Records of `consumed` topics are read in the same commit that appends them (re-keyed records
   * handed straight to their reader): where their partition holds no other record, only its end
   * offset moves and nothing is stored; elsewhere they are stored as usual and truncated later.
   */
  stage(
    appends: ReadonlyMap<string, readonly NewRecord[]>,
    consumed: ReadonlySet<string> = new Set(),
  ): {
    mutations: Mutation[];
    publish: () => Map<string, RecordPosition[]>;
  } {
    const mutations = this.#pendingMutations;
    this.#pendingMutations = [];
    const staged: {
      topic: string;
      records: LogRecord[][];
      pages: Page[][];
      positions: RecordPosition[];
      /** Per partition, records passed over without being stored (consumed topics). */
      skipped: number[];
    }[] = [];
    const now = this.now();
    for (const [name, all] of appends) {
      if (all.length === 0) continue;
      let records = all;
      const topic = this.#topic(name);
      if (!topic.persisted) {
        mutations.push({ key: ["topic", name], value: topic.partitions.length });
      }
      const skipped = topic.partitions.map(() => 0);
      const positions: RecordPosition[] = [];
      if (consumed.has(name)) {
        const empty = topic.partitions.map((p) => p.pages.length === 0);
        const kept: NewRecord[] = [];
        for (const r of records) {
          const partition = r.partition ?? this.#choosePartition(topic, r.key);
          if (!empty[partition]) {
            kept.push({ ...r, partition });
            continue;
          }
          positions.push({
            partition,
            offset: topic.partitions[partition].memBase + skipped[partition]++,
          });
        }
        skipped.forEach((n, partition) => {
          if (n === 0) return;
          // Offsets must go on from here after a reopen, as after a truncation.
          const end = topic.partitions[partition].memBase + n;
          const key = ["logend", name, partition];
          // A truncation staged earlier may have set it too: one write per key per commit.
          const earlier = mutations.findIndex((m) => sameKey(m.key, key));
          if (earlier >= 0) mutations.splice(earlier, 1);
          mutations.push({ key, value: end });
        });
        if (kept.length === 0) {
          staged.push({ topic: name, records: [], pages: [], positions, skipped });
          continue;
        }
        records = kept;
      }
      const perPartition: LogRecord[][] = topic.partitions.map(() => []);
      for (const r of records) {
        const partition = r.partition ?? this.#choosePartition(topic, r.key);
        if (!Number.isInteger(partition) || partition < 0 || partition >= topic.partitions.length) {
          throw new RangeError(
            `Cannot append to '${name}' as partition must be 0..${
              topic.partitions.length - 1
            }: current value is ${partition}`,
          );
        }
        const p = topic.partitions[partition];
        const offset = p.memBase + p.records.length + perPartition[partition].length;
        perPartition[partition].push({
          topic: name,
          partition,
          offset,
          key: r.key,
          value: serializedValue(r),
          timestamp: r.timestamp ?? now,
          headers: r.headers ?? NO_HEADERS,
          seq: ++this.#seq,
          appendedAt: now,
          parsed: r.parsed,
        });
        positions.push({ partition, offset });
      }
      const pages = perPartition.map((recs, partition) => {
        const metas: Page[] = [];
        for (const page of splitIntoPages(recs)) {
          const text = encodePage(page);
          const blob = blobMutations(["log", name, partition, page[0].offset], text);
          const meta = pageOf(page, blob.length, text.length);
          mutations.push(...blob, pageIndexEntry(name, partition, meta));
          metas.push(meta);
        }
        return metas;
      });
      staged.push({ topic: name, records: perPartition, pages, positions, skipped });
    }
    const publish = () => {
      const result = new Map<string, RecordPosition[]>();
      for (const s of staged) {
        const topic = this.#topics.get(s.topic)!;
        topic.persisted = true;
        s.skipped.forEach((n, partition) => {
          const p = topic.partitions[partition];
          if (n > 0) p.start = p.memBase = p.memBase + n;
        });
        s.records.forEach((recs, partition) => {
          const p = topic.partitions[partition];
          // Trimmed before the append, so the newest commit's records are always in memory
          // for listeners (output-only topics keep no more).
          this.#trimMemory(p, topic.memoryRecords);
          p.pages.push(...s.pages[partition]);
          for (const r of recs) p.records.push(r);
          this.#applyRetention(s.topic, topic, partition);
        });
        result.set(s.topic, s.positions);
      }
      if (staged.length > 0) { for (const l of this.#listeners) l(); }
      return result;
    };
    return { mutations, publish };
  }

  /** Calls `listener` after every publish that added records. */
  onAppend(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #applyRetention(name: string, topic: TopicLog, partition: number): void {
    const p = topic.partitions[partition];
    const maxRecords = topic.spec.retention?.records ?? DEFAULT_RETENTION_RECORDS;
    let drop = Math.max(0, p.memBase + p.records.length - p.start - maxRecords);
    const maxAge = topic.spec.retention?.ms;
    if (maxAge !== undefined) {
      // Whole pages whose newest record is older than the retention.
      const oldest = this.now() - maxAge;
      let aged = 0;
      for (const page of p.pages) {
        if (page.maxTimestamp >= oldest) break;
        aged += page.count;
      }
      drop = Math.max(drop, aged);
    }
    this.#dropPages(name, p, partition, drop);
  }

  /**
   * Deletes the records below `offset` that fill whole pages: for internal topics, once every
   * reader has committed past them.
   */
  truncateBefore(topic: string, partition: number, offset: number): void {
    const p = this.#topic(topic).partitions[partition];
    this.#dropPages(topic, p, partition, offset - p.start);
  }

  // Only whole pages are deleted, so the log start moves page by page.
  #dropPages(name: string, p: PartitionLog, partition: number, drop: number): void {
    let pagesDropped = 0;
    let recordsDropped = 0;
    while (pagesDropped < p.pages.length && recordsDropped + p.pages[pagesDropped].count <= drop) {
      const page = p.pages[pagesDropped];
      this.#pendingMutations.push(
        ...blobDeletes(["log", name, partition, page.base], page.parts),
        { key: pageIndexKey(name, partition, page.base), value: null },
      );
      p.loaded.delete(page.base);
      recordsDropped += page.count;
      pagesDropped++;
    }
    if (pagesDropped === 0) return;
    p.pages.splice(0, pagesDropped);
    p.start += recordsDropped;
    // Offsets must not restart at 0 after a reopen even when no page is left.
    this.#pendingMutations.push({ key: ["logend", name, partition], value: p.start });
    if (p.memBase < p.start) {
      p.records.splice(0, p.start - p.memBase);
      p.memBase = p.start;
    }
  }

  /**
   * Drops a partition's oldest in-memory pages while it holds more than `limit` records (plus
   * part of a page) or more than `memoryBytes` of record text.
   */
  #trimMemory(p: PartitionLog, limit: number): void {
    if (p.records.length === 0) return;
    const first = pageIndex(p.pages, p.memBase);
    let bytes = 0;
    for (let i = first; i < p.pages.length; i++) bytes += p.pages[i].bytes;
    if (p.records.length <= limit && bytes <= this.memoryBytes) return;
    let drop = 0;
    for (let i = first; i < p.pages.length; i++) {
      const page = p.pages[i];
      const recordsOver = p.records.length - drop - page.count >= limit;
      if (!recordsOver && bytes <= this.memoryBytes) break;
      drop += page.count;
      bytes -= page.bytes;
    }
    if (drop === 0) return;
    p.records.splice(0, drop);
    p.memBase += drop;
  }

  #choosePartition(topic: TopicLog, key: string | null): number {
    const n = topic.partitions.length;
    if (key === null) return topic.nextRoundRobin++ % n;
    return partitionForKey(key, n);
  }

  #topic(name: string): TopicLog {
    const t = this.#topics.get(name);
    if (!t) throw new UnknownTopicError(name);
    return t;
  }
}

/** Raised for a topic the log does not have. */
export class UnknownTopicError extends Error {
  constructor(readonly topic: string) {
    super(`Unknown topic '${topic}'`);
  }
}

function newTopic(spec: TopicSpec, persisted: boolean, memoryRecords: number): TopicLog {
  return {
    spec,
    memoryRecords,
    partitions: Array.from(
      { length: spec.partitions },
      () => ({ start: 0, memBase: 0, records: [], pages: [], loaded: new Map() }),
    ),
    nextRoundRobin: 0,
    persisted,
  };
}

/**
 * A page is the JSON array of every record's metadata, a newline, then the values back to back:
 * values (usually JSON text themselves) are stored as they are, not escaped inside JSON.
 */
function encodePage(records: readonly LogRecord[]): string {
  const meta: PageMeta[] = [];
  let values = "";
  for (const r of records) {
    const hasHeaders = !isEmpty(r.headers);
    meta.push([
      r.key,
      r.timestamp,
      hasHeaders ? r.headers : 0,
      r.value === null ? -1 : r.value.length,
    ]);
    if (r.value !== null) values += r.value;
  }
  return JSON.stringify(meta) + "\n" + values;
}

function isEmpty(headers: Headers): boolean {
  for (const _ in headers) return false;
  return true;
}

function decodePage(text: string, topic: string, partition: number, base: number): LogRecord[] {
  const nl = text.indexOf("\n");
  const meta = JSON.parse(text.slice(0, nl)) as PageMeta[];
  let at = nl + 1;
  return meta.map(([key, timestamp, headers, length], i) => {
    const value = length < 0 ? null : text.slice(at, at += length);
    return {
      topic,
      partition,
      offset: base + i,
      key,
      value,
      timestamp,
      headers: headers || NO_HEADERS,
    };
  });
}

/** A page's key in the page index; without `base`, the prefix of the partition's entries. */
function pageIndexKey(topic: string, partition: number, base?: number): Deno.KvKey {
  return base === undefined ? ["logpage", topic, partition] : ["logpage", topic, partition, base];
}

function pageIndexEntry(topic: string, partition: number, page: Page): Mutation {
  return {
    key: pageIndexKey(topic, partition, page.base),
    value: JSON.stringify([page.count, page.parts, page.maxTimestamp, page.bytes]),
  };
}

function pageOf(records: readonly LogRecord[], parts: number, bytes: number): Page {
  let maxTimestamp = -Infinity;
  for (const r of records) if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
  return { base: records[0].offset, count: records.length, parts, maxTimestamp, bytes };
}

/** Approximate bytes a record takes in memory and in a page. */
function recordBytes(r: LogRecord): number {
  return 48 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
}

/** Consecutive records as pages of at most PAGE_RECORDS records and about PAGE_BYTES. */
function* splitIntoPages(records: readonly LogRecord[]): Generator<LogRecord[]> {
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    bytes += recordBytes(records[i]);
    if (i + 1 - start >= PAGE_RECORDS || bytes >= PAGE_BYTES || i === records.length - 1) {
      yield records.slice(start, i + 1);
      start = i + 1;
      bytes = 0;
    }
  }
}

/**
 * The pages a read of up to `max` records and about `maxBytes` from `offset` touches, below the
 * in-memory records.
 */
function pagesToRead(p: PartitionLog, offset: number, max: number, maxBytes: number): Page[] {
  const pages: Page[] = [];
  let from = Math.max(offset, p.start);
  let wanted = 0;
  let bytes = 0;
  for (
    let i = pageIndex(p.pages, from);
    from < p.memBase && wanted < max && bytes < maxBytes;
    i++
  ) {
    const page = p.pages[i];
    pages.push(page);
    const records = page.base + page.count - from;
    wanted += records;
    // The share of the page the read takes.
    bytes += page.bytes * records / page.count;
    from = page.base + page.count;
  }
  return pages;
}

/** Index of the page holding `offset` (pages ascending and contiguous). */
function pageIndex(pages: readonly Page[], offset: number): number {
  let lo = 0;
  let hi = pages.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (pages[mid].base <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
