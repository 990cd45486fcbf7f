/**
 * Pipeline records as Kafka records: key and value as UTF-8 (the value's JSON text), the record
 * timestamp set, headers kept.
 */
import { Buffer } from "node:buffer";
import type { Message } from "kafkajs";
import { type Headers, type LogRecord, type NewRecord, serializedValue } from "../../record.ts";
import type { FetchedMessage } from "./kafka_client.ts";

const decoder = new TextDecoder();
const NO_HEADERS: Headers = Object.freeze({});

/** A record to produce, to the partition given (the pipeline's partitioner chose it). */
export function toMessage(record: NewRecord, partition: number, now: number): Message {
  const value = serializedValue(record);
  return {
    key: record.key,
    value,
    partition,
    timestamp: String(record.timestamp ?? now),
    headers: record.headers && Object.keys(record.headers).length > 0
      ? { ...record.headers }
      : undefined,
  };
}

/** A fetched record as the pipeline reads it. */
export function fromMessage(topic: string, partition: number, m: FetchedMessage): LogRecord {
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key === null ? null : decoder.decode(m.key),
    value: m.value === null ? null : decoder.decode(m.value),
    timestamp: Number(m.timestamp),
    headers: decodeHeaders(m.headers),
  };
}

function decodeHeaders(headers: FetchedMessage["headers"]): Headers {
  if (!headers) return NO_HEADERS;
  let out: Record<string, string> | null = null;
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    // A header repeated under one name: the last one wins, as the headers are a map here.
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    (out ??= {})[name] = Buffer.isBuffer(last) ? last.toString("utf8") : decoder.decode(last);
  }
  return out ?? NO_HEADERS;
}

const encoder = new TextEncoder();
// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Gives the messages' keys, values and header values as bytes, encoded together: the ASCII
 * strings (nearly all: JSON of ids and numbers) in one TextEncoder call, each a view of the one
 * buffer. kafkajs otherwise measures and encodes every string on its own, which took most of a
 * produce request's time. In place; returns the messages.
 */
export function encodeMessages<M extends Message>(messages: M[]): M[] {
  const ascii: string[] = [];
  /** Per string, in visiting order: whether it went into the shared buffer. */
  const shared: boolean[] = [];
  for (const m of messages) {
    eachString(m, (s) => {
      const isAscii = !NON_ASCII.test(s);
      shared.push(isAscii);
      if (isAscii) ascii.push(s);
    });
  }
  const all = encoder.encode(ascii.join(""));
  let at = 0;
  let i = 0;
  for (const m of messages) {
    eachString(m, (s) => {
      if (!shared[i++]) return Buffer.from(encoder.encode(s));
      const b = Buffer.from(all.buffer, all.byteOffset + at, s.length);
      at += s.length;
      return b;
    });
  }
  if (at !== all.length) throw new Error(`encodeMessages: ${at} of ${all.length} bytes used`);
  return messages;
}

/** Visits a message's string key, value and header values, replacing each with what `f` gives. */
function eachString(m: Message, f: (s: string) => Buffer | void): void {
  if (typeof m.key === "string") m.key = f(m.key) ?? m.key;
  if (typeof m.value === "string") m.value = f(m.value) ?? m.value;
  if (!m.headers) return;
  for (const [k, v] of Object.entries(m.headers)) {
    if (typeof v === "string") m.headers[k] = f(v) ?? v;
  }
}
