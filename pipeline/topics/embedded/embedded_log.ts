import {
  blobDeletes,
  blobMutations,
  listBlobs,
  type Mutation,
  readBlobs,
  type StoredBlob,
  storedOf,
} from "../../kv/blob.ts";
import type { KvCommitter } from "../../kv/committer.ts";
import { type LogRecord, type NewRecord, serializedValue } from "../../record.ts";
import { Partitioner } from "../partitioner.ts";
import { type RecordPosition, type TopicSpec, UnknownTopicError } from "../topic_log.ts";
import {
  decodePage,
  decodePageIndexEntry,
  decodeSegmentIndex,
  encodePage,
  encodeSegmentIndex,
  NO_HEADERS,
  type Page,
  pageIndexKey,
  pageKey,
  pageOf,
  SEGMENT_INDEXES,
  segmentIndexKey,
  type SegmentPage,
  splitIntoPages,
} from "./page_codec.ts";
import { type MemoryBounds, PartitionLog } from "./partition_log.ts";
import { type PartitionStart, PartitionStarts } from "./partition_starts.ts";

const decoder = new TextDecoder();

/** Default retention: one million records per partition. */
export const DEFAULT_RETENTION_RECORDS = 1_000_000;
/** Default number of a partition's newest records kept in memory. */
export const DEFAULT_MEMORY_RECORDS = 20_000;
/** Default bytes of a partition's records kept in memory: large records are not held 20 000 deep. */
export const DEFAULT_MEMORY_BYTES = 8 * 1024 * 1024;

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

interface QueuedAppend {
  readonly topic: string;
  readonly records: readonly NewRecord[];
  readonly resolve: (positions: RecordPosition[]) => void;
  readonly reject: (error: unknown) => void;
}

interface TopicLog {
  spec: TopicSpec;
  /** Bounds of each partition's in-memory records and cache of loaded pages. */
  memory: MemoryBounds;
  partitions: PartitionLog[];
  partitioner: Partitioner;
  persisted: boolean;
}

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
  /** The segment the next commit's pages go to. */
  #nextSegment = 0;
  /** Per segment with pages left: its index, and how many of its pages are not deleted. */
  readonly #segments = new Map<number, { index: StoredBlob; live: number }>();
  /** Appends waiting for their turn to commit, all in one (null: none waiting). */
  #queuedAppends: QueuedAppend[] | null = null;
  #seq = 0;
  readonly #memory: MemoryBounds;
  readonly #outputMemory: MemoryBounds;
  readonly #starts: PartitionStarts;

  private constructor(
    readonly committer: KvCommitter,
    readonly now: () => number,
    options: EmbeddedLogOptions,
  ) {
    this.#memory = {
      records: options.memoryRecords ?? DEFAULT_MEMORY_RECORDS,
      bytes: options.memoryBytes ?? DEFAULT_MEMORY_BYTES,
    };
    this.#outputMemory = { ...this.#memory, records: options.outputMemoryRecords ?? 0 };
    this.#starts = new PartitionStarts(committer.kv);
  }

  /** Opens the log: the topics and their page index; records are read from KV on demand. */
  static async open(
    committer: KvCommitter,
    now: () => number = Date.now,
    options: EmbeddedLogOptions = {},
  ): Promise<EmbeddedLog> {
    const log = new EmbeddedLog(committer, now, options);
    const kv = committer.kv;
    for await (const e of kv.list<number>({ prefix: ["topic"] })) {
      const topic = log.#newTopic({ partitions: e.value }, true);
      log.#topics.set(e.key[1] as string, topic);
    }
    // Per partition: where it starts once pages were deleted (or ended, with none left), and
    // its pages, those stored on their own by earlier versions first.
    const partitions = new Map<string, { start: number; pages: Page[] }[]>();
    await log.#starts.load();
    for (const [name, topic] of log.#topics) {
      const list = [];
      for (let p = 0; p < topic.partitions.length; p++) {
        const start = log.#starts.of(name, p);
        const pages: Page[] = [];
        for await (const e of kv.list<string>({ prefix: pageIndexKey(name, p) })) {
          pages.push(decodePageIndexEntry(e.key[3] as number, e.value));
        }
        list.push({ start, pages });
      }
      partitions.set(name, list);
    }
    for await (const blob of listBlobs(kv, SEGMENT_INDEXES)) {
      const segment = blob.key[1] as number;
      log.#nextSegment = Math.max(log.#nextSegment, segment + 1);
      let live = 0;
      for (const { topic, partition, page } of decodeSegmentIndex(segment, blob.text)) {
        const p = partitions.get(topic)?.[partition];
        // Below the partition's start: deleted, while others of its segment are not.
        if (!p || page.base < p.start) continue;
        p.pages.push(page);
        live++;
      }
      const index = storedOf(blob);
      if (live > 0) log.#segments.set(segment, { index, live });
      else log.#pendingMutations.push(...blobDeletes(index));
    }
    for (const [name, list] of partitions) {
      list.forEach(({ start, pages }, p) => {
        pages.sort((a, b) => a.base - b.base);
        log.#topic(name).partitions[p].reopen(start, pages);
      });
    }
    return log;
  }

  /**
   * Declares a topic. An existing topic keeps its records; asking for a different partition
   * count is an error, since keys would no longer map to the partitions that hold them.
   */
  ensureTopic(name: string, spec: TopicSpec): void {
    const existing = this.#topics.get(name);
    if (!existing) {
      this.#topics.set(name, this.#newTopic(spec, false));
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
    topic.memory = this.#outputMemory;
    for (const p of topic.partitions) p.trimMemory(topic.memory);
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
    return this.#topic(topic).partitions[partition].end;
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
    return this.#topic(topic).partitions[partition].read(offset, max, maxBytes);
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
    return p.pagesToRead(offset, max, maxBytes).some((page) => !p.loaded.has(page.base));
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
    const needed = p.pagesToRead(offset, max, maxBytes);
    const missing = needed.filter((page) => !p.loaded.has(page.base));
    if (missing.length > 0) {
      const blobs = await readBlobs(
        this.committer.kv,
        missing.map((page) => ({ key: pageKey(topic, partition, page), ...page })),
      );
      missing.forEach((page, i) => {
        const bytes = blobs[i];
        // A page deleted by retention meanwhile is simply not cached.
        if (bytes === null || !p.has(page)) return;
        p.loaded.set(page.base, decodePage(decoder.decode(bytes), topic, partition, page.base));
      });
    }
    p.boundCache(t.memory, new Set(needed.map((page) => page.base)));
  }

  /**
   * Appends records durably: resolves once they are committed to KV. Appends made while earlier
   * commits are still queued are committed together, in one KV write: concurrent producers
   * then cost one commit per turn, not one each.
   */
  append(topic: string, records: readonly NewRecord[]): Promise<RecordPosition[]> {
    return new Promise((resolve, reject) => {
      // A bad append fails alone, not the group it would join.
      this.#checkPartitions(topic, records);
      const append = { topic, records, resolve, reject };
      if (this.#queuedAppends) {
        this.#queuedAppends.push(append);
        return;
      }
      const group = this.#queuedAppends = [append];
      this.committer.serialize(async () => {
        // Appends from now on wait for the next turn.
        this.#queuedAppends = null;
        const appends = new Map<string, NewRecord[]>();
        for (const a of group) {
          const list = appends.get(a.topic);
          if (list) list.push(...a.records);
          else appends.set(a.topic, [...a.records]);
        }
        const staged = this.stage(appends);
        await this.committer.write(staged.mutations);
        const positions = staged.publish();
        // Each topic's positions follow its records: hand each append its own, in order.
        const taken = new Map<string, number>();
        for (const a of group) {
          const from = taken.get(a.topic) ?? 0;
          taken.set(a.topic, from + a.records.length);
          a.resolve((positions.get(a.topic) ?? []).slice(from, from + a.records.length));
        }
      }).catch((e) => {
        for (const a of group) a.reject(e);
      });
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
    const segment = this.#nextSegment;
    const segmentPages: SegmentPage[] = [];
    /** Where partitions passed over start once this commit lands. */
    const movedStarts = new Map<PartitionLog, number>();
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
          const partition = r.partition ?? topic.partitioner.partitionFor(r.key);
          if (!empty[partition]) {
            kept.push({ ...r, partition });
            continue;
          }
          positions.push({
            partition,
            offset: topic.partitions[partition].end + skipped[partition]++,
          });
        }
        skipped.forEach((n, partition) => {
          if (n === 0) return;
          // Offsets must go on from here after a reopen, as after a truncation.
          const p = topic.partitions[partition];
          movedStarts.set(p, p.end + n);
          this.#starts.moved();
        });
        if (kept.length === 0) {
          staged.push({ topic: name, records: [], pages: [], positions, skipped });
          continue;
        }
        records = kept;
      }
      const perPartition: LogRecord[][] = topic.partitions.map(() => []);
      for (const r of records) {
        const partition = r.partition ?? topic.partitioner.partitionFor(r.key);
        if (!Number.isInteger(partition) || partition < 0 || partition >= topic.partitions.length) {
          throw partitionError(name, topic.partitions.length, partition);
        }
        const offset = topic.partitions[partition].end + perPartition[partition].length;
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
          const blob = blobMutations(
            pageKey(name, partition, { base: page[0].offset, segment }),
            text,
          );
          const meta = pageOf(page, blob.stored, text.length, segment);
          mutations.push(...blob.mutations);
          segmentPages.push({ topic: name, partition, page: meta });
          metas.push(meta);
        }
        return metas;
      });
      staged.push({ topic: name, records: perPartition, pages, positions, skipped });
    }
    let index: StoredBlob | null = null;
    if (segmentPages.length > 0) {
      this.#nextSegment++;
      const blob = blobMutations(segmentIndexKey(segment), encodeSegmentIndex(segmentPages));
      mutations.push(...blob.mutations);
      index = blob.stored;
    }
    const starts = this.#starts.stage(() => this.#startsAfter(movedStarts));
    if (starts) mutations.push(...starts.mutations);
    const publish = () => {
      starts?.landed();
      if (index) this.#segments.set(segment, { index, live: segmentPages.length });
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
          p.trimMemory(topic.memory);
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

  /** Throws when the topic is unknown or a record names a partition it does not have. */
  #checkPartitions(name: string, records: readonly NewRecord[]): void {
    const count = this.#topic(name).partitions.length;
    for (const r of records) {
      const p = r.partition;
      if (p !== undefined && (!Number.isInteger(p) || p < 0 || p >= count)) {
        throw partitionError(name, count, p);
      }
    }
  }

  /** Calls `listener` after every publish that added records. */
  onAppend(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #applyRetention(name: string, topic: TopicLog, partition: number): void {
    const maxAge = topic.spec.retention?.ms;
    const drop = topic.partitions[partition].overRetention(
      topic.spec.retention?.records ?? DEFAULT_RETENTION_RECORDS,
      maxAge === undefined ? null : this.now() - maxAge,
    );
    this.#dropOldest(name, partition, drop);
  }

  /**
   * Deletes the records below `offset` that fill whole pages: for internal topics, once every
   * reader has committed past them.
   */
  truncateBefore(topic: string, partition: number, offset: number): void {
    this.#dropOldest(topic, partition, offset - this.startOffset(topic, partition));
  }

  // Only whole pages are deleted, so the log start moves page by page. The deletes go with the
  // next commit.
  #dropOldest(name: string, partition: number, count: number): void {
    const p = this.#topic(name).partitions[partition];
    const dropped = p.dropOldest(count);
    if (dropped.length === 0) return;
    for (const page of dropped) {
      this.#pendingMutations.push(...blobDeletes({ key: pageKey(name, partition, page), ...page }));
      if (page.segment === null) {
        this.#pendingMutations.push({ key: pageIndexKey(name, partition, page.base), value: null });
        continue;
      }
      // A segment's index goes with the last of its pages.
      const s = this.#segments.get(page.segment);
      if (s && --s.live === 0) {
        this.#pendingMutations.push(...blobDeletes(s.index));
        this.#segments.delete(page.segment);
      }
    }
    // Offsets must not restart at 0 after a reopen even when no page is left.
    this.#starts.moved();
  }

  /** Every partition's start above 0, `moved` ones where this commit moves them. */
  #startsAfter(moved: ReadonlyMap<PartitionLog, number>): PartitionStart[] {
    const starts: PartitionStart[] = [];
    for (const [name, topic] of this.#topics) {
      topic.partitions.forEach((p, partition) => {
        const start = moved.get(p) ?? p.start;
        if (start > 0) starts.push([name, partition, start]);
      });
    }
    return starts;
  }

  #newTopic(spec: TopicSpec, persisted: boolean): TopicLog {
    return {
      spec,
      memory: this.#memory,
      partitions: Array.from({ length: spec.partitions }, () => new PartitionLog()),
      partitioner: new Partitioner(spec.partitions),
      persisted,
    };
  }

  #topic(name: string): TopicLog {
    const t = this.#topics.get(name);
    if (!t) throw new UnknownTopicError(name);
    return t;
  }
}

function partitionError(topic: string, partitions: number, partition: number): RangeError {
  return new RangeError(
    `Cannot append to '${topic}' as partition must be 0..${
      partitions - 1
    }: current value is ${partition}`,
  );
}
