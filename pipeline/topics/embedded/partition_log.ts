/**
 * One partition of the embedded log in memory: every retained page is described in `pages` and
 * stored in KV; the newest are also held in `records`, and older ones read back from KV are
 * cached in `loaded`. Both are bounded by records and by bytes. start <= memBase <= end.
 */
import type { LogRecord } from "../../record.ts";
import { type Page, recordBytes } from "./page_codec.ts";

/** How much of a partition stays in memory. */
export interface MemoryBounds {
  readonly records: number;
  readonly bytes: number;
}

export class PartitionLog {
  /** Oldest retained offset. */
  start = 0;
  /** Offset of records[0]; always a page boundary. */
  memBase = 0;
  records: LogRecord[] = [];
  pages: Page[] = [];
  /** Older pages read back from KV, by base offset, oldest read first. */
  readonly loaded = new Map<number, LogRecord[]>();

  /** The offset the next record appended gets. */
  get end(): number {
    return this.memBase + this.records.length;
  }

  /** Starts the partition at `end` with `pages` stored in KV and none in memory. */
  reopen(end: number, pages: Page[]): void {
    this.pages = pages;
    this.start = this.memBase = end;
    if (pages.length > 0) {
      const last = pages[pages.length - 1];
      this.start = pages[0].base;
      this.memBase = last.base + last.count;
    }
  }

  /** Up to `max` records and about `maxBytes` (at least one) from `offset`, of what is in memory. */
  read(offset: number, max: number, maxBytes: number): LogRecord[] {
    let from = Math.max(offset, this.start);
    const out: LogRecord[] = [];
    let bytes = 0;
    const take = (r: LogRecord) => {
      out.push(r);
      bytes += recordBytes(r);
      return out.length < max && bytes < maxBytes;
    };
    for (let i = pageIndex(this.pages, from); from < this.memBase; i++) {
      const page = this.pages[i];
      const records = this.loaded.get(page.base);
      if (!records) return out;
      for (let at = from - page.base; at < records.length; at++) {
        if (!take(records[at])) return out;
      }
      from = page.base + page.count;
    }
    for (let i = from - this.memBase; i < this.records.length; i++) {
      if (!take(this.records[i])) return out;
    }
    return out;
  }

  /** The pages below the in-memory records that the same read touches. */
  pagesToRead(offset: number, max: number, maxBytes: number): Page[] {
    const pages: Page[] = [];
    let from = Math.max(offset, this.start);
    let wanted = 0;
    let bytes = 0;
    for (
      let i = pageIndex(this.pages, from);
      from < this.memBase && wanted < max && bytes < maxBytes;
      i++
    ) {
      const page = this.pages[i];
      pages.push(page);
      const records = page.base + page.count - from;
      wanted += records;
      // The share of the page the read takes.
      bytes += page.bytes * records / page.count;
      from = page.base + page.count;
    }
    return pages;
  }

  /** Whether `page` is still retained (retention may have dropped it meanwhile). */
  has(page: Page): boolean {
    return this.pages[pageIndex(this.pages, page.base)]?.base === page.base;
  }

  /** Evicts loaded pages, oldest loaded first, beyond `bounds`; `keep` stays. */
  boundCache(bounds: MemoryBounds, keep: ReadonlySet<number>): void {
    let records = 0;
    let bytes = 0;
    for (const page of this.pages) {
      if (!this.loaded.has(page.base)) continue;
      records += page.count;
      bytes += page.bytes;
    }
    for (const base of this.loaded.keys()) {
      if (records <= bounds.records && bytes <= bounds.bytes) break;
      if (keep.has(base)) continue;
      const page = this.pages[pageIndex(this.pages, base)];
      this.loaded.delete(base);
      records -= page.count;
      bytes -= page.bytes;
    }
  }

  /** Drops the oldest in-memory pages while memory holds more than `bounds`. */
  trimMemory(bounds: MemoryBounds): void {
    if (this.records.length === 0) return;
    const first = pageIndex(this.pages, this.memBase);
    let bytes = 0;
    for (let i = first; i < this.pages.length; i++) bytes += this.pages[i].bytes;
    if (this.records.length <= bounds.records && bytes <= bounds.bytes) return;
    let drop = 0;
    for (let i = first; i < this.pages.length; i++) {
      const page = this.pages[i];
      const recordsOver = this.records.length - drop - page.count >= bounds.records;
      if (!recordsOver && bytes <= bounds.bytes) break;
      drop += page.count;
      bytes -= page.bytes;
    }
    if (drop === 0) return;
    this.records.splice(0, drop);
    this.memBase += drop;
  }

  /** Deletes whole pages holding at most the `count` oldest records; returns those pages. */
  dropOldest(count: number): Page[] {
    let pages = 0;
    let records = 0;
    while (pages < this.pages.length && records + this.pages[pages].count <= count) {
      records += this.pages[pages].count;
      this.loaded.delete(this.pages[pages].base);
      pages++;
    }
    if (pages === 0) return [];
    const dropped = this.pages.splice(0, pages);
    this.start += records;
    if (this.memBase < this.start) {
      this.records.splice(0, this.start - this.memBase);
      this.memBase = this.start;
    }
    return dropped;
  }

  /** Records beyond a retention of `maxRecords`, or in pages all older than `oldest`. */
  overRetention(maxRecords: number, oldest: number | null): number {
    let drop = Math.max(0, this.end - this.start - maxRecords);
    if (oldest !== null) {
      let aged = 0;
      for (const page of this.pages) {
        if (page.maxTimestamp >= oldest) break;
        aged += page.count;
      }
      drop = Math.max(drop, aged);
    }
    return drop;
  }
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
