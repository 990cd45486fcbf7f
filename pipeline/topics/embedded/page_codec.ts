/**
 * How the embedded log stores records in Deno KV: pages of consecutive records of one
 * partition (one KV blob each, split in parts past 64 KiB), and a page index entry per page.
 */
import type { Mutation } from "../../kv/blob.ts";
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
export function pageKey(topic: string, partition: number, base: number): Deno.KvKey {
  return ["log", topic, partition, base];
}

/** A page's key in the page index; without `base`, the prefix of the partition's entries. */
export function pageIndexKey(topic: string, partition: number, base?: number): Deno.KvKey {
  return base === undefined ? ["logpage", topic, partition] : ["logpage", topic, partition, base];
}

export function pageIndexEntry(topic: string, partition: number, page: Page): Mutation {
  return {
    key: pageIndexKey(topic, partition, page.base),
    value: JSON.stringify([page.count, page.parts, page.maxTimestamp, page.bytes, +page.deflated]),
  };
}

/** A page index entry read back. */
export function decodePageIndexEntry(base: number, text: string): Page {
  // Entries of earlier versions have no fifth element: their pages are not deflated.
  const [count, parts, maxTimestamp, bytes, deflated] = JSON.parse(text) as number[];
  return { base, count, parts, maxTimestamp, bytes, deflated: deflated === 1 };
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
): Page {
  let maxTimestamp = -Infinity;
  for (const r of records) if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
  const { parts, deflated } = blob;
  return { base: records[0].offset, count: records.length, parts, deflated, maxTimestamp, bytes };
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
