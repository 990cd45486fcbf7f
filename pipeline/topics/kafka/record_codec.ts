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
