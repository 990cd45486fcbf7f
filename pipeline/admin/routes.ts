import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { LifecycleConflictError, type Pipeline, ShuttingDownError } from "../app.ts";
import { toNewRecord } from "../plugin.ts";
import { UnknownTopicError } from "../topics/mod.ts";
import { describeIssues } from "../topology/source_sink_nodes.ts";
import {
  hostGuard,
  jsonBodyGuard,
  ownHostNames,
  sameOriginGuard,
  tokenGuard,
} from "./request_guards.ts";

/** Options of the admin API. */
export interface AdminOptions {
  /** The address the server listens on: requests must name it (or an allowed host). */
  readonly host: string;
  /** More host names requests may name (a DNS name, a proxy's name). */
  readonly allowedHosts?: readonly string[];
  /** When set, mutating routes need `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** Largest accepted request body, bytes. */
  readonly maxBodyBytes: number;
  /** Largest answer of a records read, bytes of record text (at least one record). */
  readonly maxResponseBytes: number;
}

const ProducedSchema = z.strictObject({
  key: z.string().nullable().optional(),
  value: z.unknown(),
  timestamp: z.number().int().nonnegative().max(8.64e15).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  partition: z.number().int().nonnegative().optional(),
});
type Produced = z.output<typeof ProducedSchema>;

const MAX_READ = 10_000;

/** The admin REST API and /metrics as a Hono app over a pipeline. */
export function createAdminApp(pipeline: Pipeline, options: AdminOptions): Hono {
  const app = new Hono();
  const error = (
    c: Context,
    status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 414 | 415 | 421 | 500 | 503,
    err: string,
    detail: string,
  ) => c.json({ error: err, detail }, status);

  app.use(hostGuard(ownHostNames(options.host, options.allowedHosts), error));
  app.use(sameOriginGuard(error));
  app.use(jsonBodyGuard(error));
  app.use(tokenGuard(options.token, error));
  app.use(async (c, next) => {
    if (pipeline.closed) return error(c, 503, "unavailable", "the pipeline is shutting down");
    await next();
  });

  app.get("/health", (c) => {
    const reasons = pipeline.healthProblems();
    const source = pipeline.log.description;
    return reasons.length === 0
      ? c.json({ status: "UP", source })
      : c.json({ status: "DOWN", source, reasons }, 503);
  });

  app.get("/api/v1/streams/status", (c) =>
    c.json({
      running: pipeline.running,
      state: pipeline.runner.state,
      idle: pipeline.runner.idle,
      uptimeMs: pipeline.uptimeMs,
      plugins: pipeline.config.plugins.map((p) => {
        const failed = pipeline.runner.failedPlugins.get(p.name);
        return {
          name: p.name,
          enabled: p.enabled,
          state: !p.enabled ? "DISABLED" : failed ? "ERROR" : pipeline.runner.state,
          ...(failed ? { error: failed } : {}),
        };
      }),
    }));

  app.get("/api/v1/streams/metadata", (c) => c.json(metadata(pipeline)));
  app.get("/api/v1/streams/metrics", (c) => c.json(pipeline.metrics.summary()));

  app.post("/api/v1/streams/start", async (c) => {
    await pipeline.start();
    return c.json({ running: pipeline.running, state: pipeline.runner.state });
  });
  app.post("/api/v1/streams/stop", async (c) => {
    await pipeline.stop();
    return c.json({ running: pipeline.running, state: pipeline.runner.state });
  });
  app.post("/api/v1/streams/cleanup", async (c) => {
    await pipeline.cleanup();
    return c.json({ cleaned: true, state: pipeline.runner.state });
  });

  app.get("/api/v1/topics", (c) => c.json({ topics: topics(pipeline) }));

  app.post(
    "/api/v1/topics/:topic/records",
    bodyLimit({
      maxSize: options.maxBodyBytes,
      onError: (c) =>
        error(
          c,
          413,
          "payload too large",
          `the body must be at most ${options.maxBodyBytes} bytes`,
        ),
    }),
    async (c) => {
      const topic = c.req.param("topic");
      if (!pipeline.log.hasTopic(topic)) {
        return error(c, 404, "not found", `unknown topic '${topic}'`);
      }
      const owner = ownedBy(pipeline, topic);
      if (owner) {
        return error(c, 403, "forbidden", `'${topic}' is ${owner}: only the pipeline writes it`);
      }
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch (e) {
        return error(c, 400, "malformed JSON", (e as Error).message);
      }
      const parsed = parseRecords(body);
      if (typeof parsed === "string") {
        return error(
          c,
          400,
          "invalid records",
          `expected a record { key?, value, timestamp?, headers?, partition? } or an array of them: ${parsed}`,
        );
      }
      const records = parsed;
      const partitions = pipeline.log.partitions(topic);
      const bad = records.find((r) => r.partition !== undefined && r.partition >= partitions);
      if (bad) {
        return error(
          c,
          400,
          "invalid records",
          `partition must be 0..${partitions - 1}: got ${bad.partition}`,
        );
      }
      const offsets = await pipeline.log.append(
        topic,
        records.map((r) => ({
          ...toNewRecord({ key: r.key ?? null, value: r.value, timestamp: r.timestamp }),
          headers: r.headers,
          partition: r.partition,
        })),
      );
      return c.json({ accepted: records.length, offsets });
    },
  );

  app.get("/api/v1/topics/:topic/records", async (c) => {
    const topic = c.req.param("topic");
    if (!pipeline.log.hasTopic(topic)) {
      return error(c, 404, "not found", `unknown topic '${topic}'`);
    }
    const partitions = pipeline.log.partitions(topic);
    const q = (name: string, fallback: number | undefined) => {
      const v = c.req.query(name);
      if (v === undefined || v === "") return fallback;
      const n = Number(v);
      return Number.isInteger(n) && n >= 0 ? n : NaN;
    };
    const partition = q("partition", undefined);
    const offset = q("offset", 0)!;
    const limit = q("limit", 100)!;
    if (
      Number.isNaN(partition) || Number.isNaN(offset) || Number.isNaN(limit) || limit > MAX_READ
    ) {
      return error(
        c,
        400,
        "invalid query",
        `partition, offset and limit must be whole numbers >= 0 (limit <= ${MAX_READ})`,
      );
    }
    if (partition !== undefined && partition >= partitions) {
      return error(
        c,
        400,
        "invalid query",
        `partition must be 0..${partitions - 1}: got ${partition}`,
      );
    }
    const chosen = partition === undefined ? [...Array(partitions).keys()] : [partition];
    const records = [];
    // The answer is bounded in bytes too: `truncated` says records were left for another read.
    let budget = options.maxResponseBytes;
    const reader = pipeline.log.reader();
    let truncated = false;
    for (const p of chosen) {
      const want = limit - records.length;
      const from = Math.max(offset, pipeline.log.startOffset(topic, p));
      const end = pipeline.log.endOffset(topic, p);
      if (want <= 0) break;
      if (budget <= 0) {
        truncated ||= from < end;
        continue;
      }
      await reader.fetch([{ topic, partition: p, offset: from, max: want, maxBytes: budget }]);
      const read = reader.read(topic, p, from, want, budget);
      for (const r of read) {
        budget -= 48 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
        records.push({
          partition: r.partition,
          offset: r.offset,
          key: r.key,
          value: decodeValue(r.value),
          timestamp: r.timestamp,
          headers: r.headers,
        });
      }
      const next = reader.skipTo(
        topic,
        p,
        read.length > 0 ? read[read.length - 1].offset + 1 : from,
      );
      if (read.length < want && next < end) truncated = true;
    }
    return c.json({ records, truncated });
  });

  app.get("/metrics", async (c) => {
    const body = await pipeline.metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": pipeline.metrics.registry.contentType });
  });

  // Known paths with another method: 405 rather than 404.
  const routes: [string, string][] = [
    ["/health", "GET"],
    ["/metrics", "GET"],
    ["/api/v1/streams/status", "GET"],
    ["/api/v1/streams/metadata", "GET"],
    ["/api/v1/streams/metrics", "GET"],
    ["/api/v1/streams/start", "POST"],
    ["/api/v1/streams/stop", "POST"],
    ["/api/v1/streams/cleanup", "POST"],
    ["/api/v1/topics", "GET"],
    ["/api/v1/topics/:topic/records", "GET, POST"],
  ];
  for (const [path, allow] of routes) {
    app.all(path, (c) => {
      c.header("Allow", allow);
      return error(
        c,
        405,
        "method not allowed",
        `${c.req.method} is not supported here; use ${allow}`,
      );
    });
  }
  app.notFound((c) => error(c, 404, "not found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    if (e instanceof UnknownTopicError) return error(c, 404, "not found", e.message);
    if (e instanceof LifecycleConflictError) return error(c, 409, "conflict", e.message);
    if (e instanceof ShuttingDownError || pipeline.closed) {
      return error(c, 503, "unavailable", "the pipeline is shutting down");
    }
    console.error(e);
    return error(c, 500, "internal error", e.message);
  });
  return app;
}

/** The records of a POST body, or the reason it is not one, naming the field. */
function parseRecords(body: unknown): Produced[] | string {
  const list = Array.isArray(body) ? body : [body];
  if (list.length === 0) return "the array is empty";
  const records: Produced[] = [];
  for (const [i, item] of list.entries()) {
    const result = ProducedSchema.safeParse(item);
    if (!result.success) {
      const issues = result.error.issues.map((issue) => ({
        ...issue,
        path: Array.isArray(body) ? [`[${i}]`, ...issue.path] : issue.path,
      }));
      return describeIssues(issues);
    }
    records.push(result.data);
  }
  return records;
}

/** What a topic is when the pipeline writes it (clients may not), else null. */
function ownedBy(pipeline: Pipeline, topic: string): string | null {
  const { config, graph } = pipeline;
  if (topic === config.deadLetterTopic) return "the dead-letter topic";
  if (topic === config.lateTopic) return "the late-records topic";
  if (graph.repartitions.has(topic)) return "an internal repartition topic";
  const writers = graph.sinks.get(topic);
  if (writers) return `an output of ${[...writers].sort().join(", ")}`;
  return null;
}

function decodeValue(raw: string | null): unknown {
  if (raw === null) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function topics(pipeline: Pipeline) {
  return pipeline.log.topicNames().map((name) => {
    const partitions = pipeline.log.partitions(name);
    return {
      name,
      partitions,
      endOffsets: Array.from({ length: partitions }, (_, p) => pipeline.log.endOffset(name, p)),
      internal: pipeline.graph.repartitions.has(name),
    };
  });
}

function metadata(pipeline: Pipeline) {
  const g = pipeline.graph;
  return {
    instanceId: pipeline.instanceId,
    applicationId: pipeline.config.applicationId,
    plugins: pipeline.plugins.map((p) => {
      const nodes = g.nodes.filter((n) => n.plugin === p.name);
      return {
        name: p.name,
        topology: {
          nodes: nodes.map((n) => ({
            name: n.name,
            type: n.constructor.name,
            children: n.children.map((c) => c.name),
          })),
          stores: [...g.stores.values()].filter((s) => s.plugin === p.name).map((s) => ({
            name: s.name,
            kind: s.kind,
          })),
          sourceTopics: [...g.sources.entries()].filter(([, ns]) =>
            ns.some((n) => n.plugin === p.name)
          ).map(([t]) => t),
          sinkTopics: [...g.sinks.entries()].filter(([, ps]) => ps.has(p.name)).map(([t]) => t)
            .concat(
              [...g.repartitions.values()].filter((r) => r.plugin === p.name).map((r) => r.topic),
            ),
        },
      };
    }),
    subtopologies: pipeline.runner.subtopologies.map((s) => ({
      id: s.id,
      topics: s.topics,
      stores: s.stores,
      plugins: s.plugins,
    })),
    topics: topics(pipeline),
    stores: [...pipeline.storeSizes()].map(([name, entries]) => ({
      name,
      entries,
      kind: g.stores.get(name)?.kind,
    })),
  };
}
