/**
 * How the embedded log stores records in Deno KV: pages of consecutive records of one
 * partition, one KV blob each. The pages one commit stores are a segment: their blobs side by side
 * under the segment's number, with one index of them, so that a commit writes to one part of the
 * key space however many topics and partitions it appends to (what a KV commit costs goes with the
 * parts of the key space it touches). Earlier versions stored each page under its topic and
 * partition with an index entry of its own; those are still read and deleted.
 */
import type { Headers, LogRecord } from "../../record.ts";

/** Records per page at most. */
const PAGE_RECORDS = 256;
/** A page is closed once its records reach this many bytes of text (large records). */
const PAGE_BYTES = 512 * 1024;

/** A stored page, as the page index describes it. */
export interface Page {
  readonly base: number;
  readonly count: number;
  /** KV parts of its blob. */
  readonly parts: number;
  /** Whether its blob is deflated (false: written by an earlier version). */
  readonly deflated: boolean;
  /** Largest record timestamp in the page (for time retention). */
  readonly maxTimestamp: number;
  /** Size of the page's text, for the memory bounds. */
  readonly bytes: number;
  /** The segment holding its blob; null for a page an earlier version stored on its own. */
  readonly segment: number | null;
}

/** Shared by records without headers (headers are read-only). */
export const NO_HEADERS: Headers = Object.freeze({});

/**
 * Per record in a page: key, timestamp, headers (0 when none; a string when the only header is
 * the pipeline's origin header, its value), value length (-1: null).
 */
type PageMeta = [string | null, number, Headers | string | 0, number];

/** The header every output record carries (see StreamTask): stored as a plain string. */
const ORIGIN = "bss.origin";

/** A page's blob key. */
export function pageKey(
  topic: string,
  partition: number,
  page: { readonly base: number; readonly segment: number | null },
): Deno.KvKey {
  return page.segment === null
    ? ["log", topic, partition, page.base]
    : ["lseg", page.segment, topic, partition, page.base];
}

/** The key of a segment's index of its pages. */
export function segmentIndexKey(segment: number): Deno.KvKey {
  return ["lidx", segment];
}

/** The prefix of every segment index, in segment order. */
export const SEGMENT_INDEXES: Deno.KvKey = ["lidx"];

/** A page of a segment, with the partition it belongs to. */
export interface SegmentPage {
  readonly topic: string;
  readonly partition: number;
  readonly page: Page;
}

/** A segment's index: per page, topic, partition, base, count, parts, max timestamp, bytes. */
export function encodeSegmentIndex(pages: readonly SegmentPage[]): string {
  return JSON.stringify(
    pages.map(({ topic, partition, page: p }) => [
      topic,
      partition,
      p.base,
      p.count,
      p.parts,
      p.maxTimestamp,
      p.bytes,
    ]),
  );
}

export function decodeSegmentIndex(segment: number, text: string): SegmentPage[] {
  const rows = JSON.parse(text) as [string, number, number, number, number, number, number][];
  return rows.map(([topic, partition, base, count, parts, maxTimestamp, bytes]) => ({
    topic,
    partition,
    page: { base, count, parts, maxTimestamp, bytes, deflated: true, segment },
  }));
}

/** An earlier version's index entry of a page; without `base`, a partition's prefix of them. */
export function pageIndexKey(topic: string, partition: number, base?: number): Deno.KvKey {
  return base === undefined ? ["logpage", topic, partition] : ["logpage", topic, partition, base];
}

/** An earlier version's page index entry read back. */
export function decodePageIndexEntry(base: number, text: string): Page {
  // Entries without a fifth element are of pages stored as they are.
  const [count, parts, maxTimestamp, bytes, deflated] = JSON.parse(text) as number[];
  return { base, count, parts, maxTimestamp, bytes, deflated: deflated === 1, segment: null };
}

/**
 * A page is the JSON array of every record's metadata, a newline, then the values back to back:
 * values (usually JSON text themselves) are stored as they are, not escaped inside JSON.
 */
export function encodePage(records: readonly LogRecord[]): string {
  const meta: PageMeta[] = [];
  let values = "";
  for (const r of records) {
    meta.push([
      r.key,
      r.timestamp,
      storedHeaders(r.headers),
      r.value === null ? -1 : r.value.length,
    ]);
    if (r.value !== null) values += r.value;
  }
  return JSON.stringify(meta) + "\n" + values;
}

export function decodePage(
  text: string,
  topic: string,
  partition: number,
  base: number,
): LogRecord[] {
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
      headers: headers === 0
        ? NO_HEADERS
        : typeof headers === "string"
        ? { [ORIGIN]: headers }
        : headers,
    };
  });
}

/** The page index entry of records about to be stored as one page. */
export function pageOf(
  records: readonly LogRecord[],
  blob: { parts: number; deflated: boolean },
  bytes: number,
  segment: number,
): Page {
  let maxTimestamp = -Infinity;
  for (const r of records) if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
  const { parts, deflated } = blob;
  const base = records[0].offset;
  return { base, count: records.length, parts, deflated, maxTimestamp, bytes, segment };
}

/** Approximate bytes a record takes in memory and in a page. */
export function recordBytes(r: LogRecord): number {
  return 48 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
}

/** Consecutive records as pages of at most PAGE_RECORDS records and about PAGE_BYTES. */
export function* splitIntoPages(records: readonly LogRecord[]): Generator<LogRecord[]> {
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

/** Headers as a page stores them: 0 for none, the origin's value when it is the only one. */
function storedHeaders(headers: Headers): Headers | string | 0 {
  let count = 0;
  for (const name in headers) {
    if (name !== ORIGIN || ++count > 1) return headers;
  }
  return count === 0 ? 0 : headers[ORIGIN];
}
