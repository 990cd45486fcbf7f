/**
 * Starts the pipeline: `deno task start [--config <file>]` (default config/pipeline.json).
 * Loads config and plugins, opens state, serves the admin API, runs until SIGINT/SIGTERM,
 * then stops producers, commits the batch in flight and closes cleanly.
 */
import { parseArgs } from "node:util";
import { createAdminApp } from "./pipeline/admin/routes.ts";
import { Pipeline } from "./pipeline/app.ts";
import { ConfigError, loadConfig } from "./pipeline/config.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { config: { type: "string", default: "config/pipeline.json" } },
});

let pipeline: Pipeline;
try {
  const loaded = await loadConfig(values.config!);
  pipeline = await Pipeline.open(loaded);
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(`Config error: ${e.message}`);
    Deno.exit(2);
  }
  console.error(`Cannot start the pipeline: ${(e as Error).message}`);
  Deno.exit(1);
}

const { admin } = pipeline.config;
let server: Deno.HttpServer;
try {
  server = Deno.serve({
    hostname: admin.host,
    port: admin.port,
    onListen: ({ hostname, port }) => console.log(`admin API on http://${hostname}:${port}`),
  }, createAdminApp(pipeline, admin).fetch);
} catch (e) {
  console.error(adminServeError(e as Error, admin.host, admin.port, values.config!));
  await pipeline.close();
  Deno.exit(1);
}

let summaryTimer: ReturnType<typeof setInterval> | undefined;
let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping (committing the batch in flight)`);
  clearInterval(summaryTimer);
  // Requests from now on get 503; the server stops accepting and lets those in flight finish
  // while the state is still open, then the pipeline commits and closes.
  pipeline.beginShutdown();
  await server.shutdown();
  await pipeline.close();
  console.log("stopped cleanly");
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));

// Waits while the topics cannot be reached (retrying; /health says why); an error retrying
// cannot fix, such as a topic with the wrong partition count, ends the process.
try {
  await pipeline.start();
} catch (e) {
  if (!stopping) {
    console.error(`Cannot start the pipeline: ${(e as Error).message}`);
    await server.shutdown();
    await pipeline.close();
    Deno.exit(1);
  }
}
if (!stopping) {
  const enabled = pipeline.plugins.map((p) => p.name).join(", ") || "none";
  console.log(`pipeline ${pipeline.config.applicationId} running; plugins: ${enabled}`);
  summaryTimer = pipeline.config.logIntervalMs > 0
    ? setInterval(() => console.log(summaryLine(pipeline)), pipeline.config.logIntervalMs)
    : undefined;
}

/** One line: events in, alerts, high-value orders, dead letters, lag and latency. */
function summaryLine(p: Pipeline): string {
  const m = p.metrics.summary();
  const inTotal = [...p.metrics.totals.in.entries()]
    .filter(([t]) => !p.graph.repartitions.has(t))
    .reduce((n, [, v]) => n + v, 0);
  const out = (topic: string) => p.metrics.totals.out.get(topic) ?? 0;
  return [
    `events in ${inTotal}`,
    `fraud alerts ${out("bss.fraud.alerts")}`,
    `high-value orders ${out("bss.orders.highvalue")}`,
    `recommendations ${out("bss.recommendations")}`,
    `price updates ${out("bss.pricing.recommendations")}`,
    `DLQ ${m.deadLetters}`,
    `late ${m.lateRecords}`,
    `lag ${m.lag.total}`,
    `p99 ${m.latencyMs.p99 ?? "-"} ms`,
  ].join(" | ");
}

/** Why the admin API cannot listen, naming the setting to change. */
function adminServeError(e: Error, host: string, port: number, file: string): string {
  const what = `Cannot serve the admin API on host '${host}', port ${port}: ${e.message}.`;
  if (e instanceof Deno.errors.AddrInUse) {
    return `${what} Set "admin.port" in ${file} or the PORT environment variable to a free port.`;
  }
  if (e instanceof Deno.errors.AddrNotAvailable || /lookup|resolve|name/i.test(e.message)) {
    return `${what} Set "admin.host" in ${file} or the BSS_ADMIN_HOST environment variable to an address of this machine, such as 127.0.0.1 or 0.0.0.0.`;
  }
  return `${what} Check "admin.host" and "admin.port" in ${file}.`;
}
