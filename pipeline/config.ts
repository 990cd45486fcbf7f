import { parse as parseJsonc, type ParseError, printParseErrorCode } from "jsonc-parser";
import { dirname, resolve } from "node:path";
import { z } from "zod";

const TopicSchema = z.strictObject({
  partitions: z.number().int().min(1).max(1024),
  retention: z.strictObject({
    records: z.number().int().positive().optional(),
    ms: z.number().int().positive().optional(),
  }).optional(),
});

const PluginEntrySchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, "a lower-case name like fraud_detection"),
  module: z.string().min(1),
  enabled: z.boolean().default(true),
  options: z.record(z.string(), z.unknown()).default({}),
  /** When the plugin's code throws for a record: dead-letter it and go on, or stop. */
  onError: z.enum(["dlq", "stop"]).default("dlq"),
  /** Which implementation runs its hot operators: the WebAssembly one or the TypeScript reference. */
  operators: z.enum(["wasm", "ts"]).default("wasm"),
});

const EmbeddedSourceSchema = z.strictObject({
  type: z.literal("embedded"),
  /** Per partition of a topic the pipeline reads: its newest records kept in memory. */
  memory: z.strictObject({
    records: z.number().int().min(0).default(20_000),
    bytes: z.number().int().min(0).default(8 * 1024 * 1024),
  }).default({ records: 20_000, bytes: 8 * 1024 * 1024 }),
});

const KafkaSourceSchema = z.strictObject({
  type: z.literal("kafka"),
  brokers: z.array(z.string().regex(/^\S+:\d+$/, "host:port")).min(1),
  clientId: z.string().min(1).default("bss-streams"),
  ssl: z.union([
    z.boolean(),
    z.strictObject({
      caFile: z.string().min(1).optional(),
      rejectUnauthorized: z.boolean().default(true),
    }),
  ]).default(false),
  sasl: z.strictObject({
    mechanism: z.enum(["plain", "scram-sha-256", "scram-sha-512"]),
    username: z.string().min(1),
    password: z.string(),
  }).optional(),
  /** Replication factor of the topics the pipeline creates. */
  replicationFactor: z.number().int().min(1).default(1),
  connectionTimeoutMs: z.number().int().positive().default(3_000),
  requestTimeoutMs: z.number().int().positive().default(30_000),
});

/** The pipeline config file (JSON with comments). Every field has a default but `plugins`. */
export const ConfigSchema = z.strictObject({
  applicationId: z.string().regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' or '-'").default(
    "bss-analytics-streams",
  ),
  source: z.discriminatedUnion("type", [EmbeddedSourceSchema, KafkaSourceSchema]).default({
    type: "embedded",
    memory: { records: 20_000, bytes: 8 * 1024 * 1024 },
  }),
  /** With Kafka: one transaction per task and batch, or none (at least once). */
  processingGuarantee: z.enum(["exactly_once_v2", "at_least_once"]).default("exactly_once_v2"),
  state: z.union([
    z.strictObject({ path: z.string().min(1) }),
    z.strictObject({ url: z.url() }),
  ]).default({ path: "data/state.kv" }),
  commitIntervalMs: z.number().int().min(1).max(60_000).default(100),
  /** Bytes of aggregation results held until the commit (0: every update forwarded at once). */
  cacheMaxBytes: z.number().int().min(0).default(10 * 1024 * 1024),
  maxBatchRecords: z.number().int().min(1).max(100_000).default(2_000),
  /** Bytes of input one batch reads per task and topic (at least one record). */
  maxBatchBytes: z.number().int().min(1).default(4 * 1024 * 1024),
  defaultPartitions: z.number().int().min(1).max(1024).default(3),
  topics: z.record(z.string(), TopicSchema).default({}),
  deadLetterTopic: z.string().min(1).default("bss.dlq"),
  lateTopic: z.string().min(1).default("bss.late"),
  eventTime: z.strictObject({
    /** Earliest accepted event time, epoch ms. */
    min: z.number().int().default(0),
    /** How far ahead of the wall clock an event time may be; null: no bound. */
    maxAheadMs: z.number().int().nonnegative().nullable().default(86_400_000),
  }).default({ min: 0, maxAheadMs: 86_400_000 }),
  admin: z.strictObject({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(0).max(65_535).default(8080),
    token: z.string().min(1).optional(),
    /** Host names requests may name besides the server's own addresses (DNS names, proxies). */
    allowedHosts: z.array(z.string().min(1)).default([]),
    maxBodyBytes: z.number().int().positive().default(1_048_576),
    /** Largest answer of GET /api/v1/topics/{topic}/records, bytes of record text. */
    maxResponseBytes: z.number().int().positive().default(16 * 1024 * 1024),
  }).default({
    host: "127.0.0.1",
    port: 8080,
    allowedHosts: [],
    maxBodyBytes: 1_048_576,
    maxResponseBytes: 16 * 1024 * 1024,
  }),
  logIntervalMs: z.number().int().min(0).default(5_000),
  plugins: z.array(PluginEntrySchema),
});

export type PipelineConfig = z.output<typeof ConfigSchema>;
export type PluginEntry = z.output<typeof PluginEntrySchema>;

/** A config problem; the message names the file, the field and the fix. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A loaded config with the path it came from (plugin modules resolve relative to it). */
export interface LoadedConfig {
  readonly path: string;
  readonly config: PipelineConfig;
}

/**
 * Reads, parses (JSON with comments) and validates a config file. Env `PORT`, `BSS_ADMIN_HOST`
 * and `BSS_ADMIN_TOKEN` override the admin port, host and token; `KAFKA_BROKERS` (host:port,
 * comma-separated) switches the source to Kafka at those brokers.
 */
export async function loadConfig(
  path: string,
  env: (name: string) => string | undefined = Deno.env.get,
): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(
      `Cannot read config file ${path}: ${
        (e as Error).message
      }. Pass an existing file with --config.`,
    );
  }
  const config = parseConfig(text, path, env);
  // Like plugin modules, a state path is relative to the config file.
  if ("path" in config.state) config.state.path = resolve(dirname(path), config.state.path);
  return { path, config };
}

/** Parses and validates config text; `file` is used in messages. */
export function parseConfig(
  text: string,
  file: string,
  env: (name: string) => string | undefined = () => undefined,
): PipelineConfig {
  const errors: ParseError[] = [];
  const raw = parseJsonc(text, errors, { allowTrailingComma: true });
  if (errors.length > 0) {
    const e = errors[0];
    const before = text.slice(0, e.offset).split("\n");
    throw new ConfigError(
      `${file}:${before.length}:${before[before.length - 1].length + 1}: invalid JSON (${
        printParseErrorCode(e.error)
      }). Fix the syntax at that position.`,
    );
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ConfigError(
      `${file}: ${describePath(raw, issue.path)}: ${issue.message}.${hint(issue)}`,
    );
  }
  const config = result.data;
  const port = env("PORT");
  if (port !== undefined && port !== "") {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65_535) {
      throw new ConfigError(
        `Environment variable PORT: expected a port number 0-65535, got "${port}".`,
      );
    }
    config.admin.port = n;
  }
  const host = env("BSS_ADMIN_HOST");
  if (host) config.admin.host = host;
  const token = env("BSS_ADMIN_TOKEN");
  if (token) config.admin.token = token;
  const brokers = env("KAFKA_BROKERS");
  if (brokers) {
    const list = brokers.split(",").map((b) => b.trim()).filter(Boolean);
    const bad = list.find((b) => !/^\S+:\d+$/.test(b));
    if (list.length === 0 || bad !== undefined) {
      throw new ConfigError(
        `Environment variable KAFKA_BROKERS: expected host:port[,host:port…], got "${brokers}".`,
      );
    }
    const current = config.source.type === "kafka" ? config.source : {};
    config.source = KafkaSourceSchema.parse({ ...current, type: "kafka", brokers: list });
  }
  const names = new Set<string>();
  config.plugins.forEach((p, i) => {
    if (names.has(p.name)) {
      throw new ConfigError(
        `${file}: plugins[${i}] (${p.name}): the name is used twice. Give each plugin entry its own name.`,
      );
    }
    names.add(p.name);
  });
  return config;
}

/** `plugins[2] (fraud_detection) options.threshold`, naming plugins where the path passes one. */
export function describePath(raw: unknown, path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(top level)";
  let out = "";
  let node: unknown = raw;
  path.forEach((part, i) => {
    out += typeof part === "number" ? `[${part}]` : `${i === 0 ? "" : "."}${String(part)}`;
    node = node !== null && typeof node === "object"
      ? (node as Record<PropertyKey, unknown>)[part]
      : undefined;
    if (i === 1 && path[0] === "plugins" && node && typeof node === "object" && "name" in node) {
      out += ` (${String((node as { name: unknown }).name)})`;
    }
  });
  return out;
}

function hint(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return " Remove it or check its spelling.";
  return "";
}
