import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createAdminApp } from "../pipeline/admin/routes.ts";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import fraud from "../plugins/fraud_detection/mod.ts";
import { adminUrl, pluginEntry, startMain, waitForLine } from "./fixtures/main_process.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const PAYMENTS = 30_000;

const payment = (i: number) => ({
  key: `C${i % 5000}`,
  value: JSON.stringify({
    paymentId: `p${i}`,
    customerId: `C${i % 5000}`,
    amount: 10,
    currency: "USD",
    method: "CARD",
    status: "SUCCESS",
    timestamp: T0 + i,
  }),
});

async function openPipeline(path: string) {
  const config = parseConfig(
    JSON.stringify({ state: { path }, logIntervalMs: 0, plugins: [] }),
    "test.json",
  );
  return await Pipeline.open({ path: "test.json", config }, {
    plugins: [{ definition: fraud, name: "fraud_detection", options: fraud.options.parse({}) }],
  });
}

/** Payments counted in the fraud state, over every task. */
function counted(p: Pipeline): number {
  let n = 0;
  for (const task of p.runner.tasks) {
    const store = task.stores.get("fraud-state");
    if (store) { for (const [, s] of store.map.entries()) n += (s as { count: number }).count; }
  }
  return n;
}

async function untilCaughtUp(p: Pipeline) {
  for (let i = 0; i < 2000 && p.lag().some((l) => l.lag > 0); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("a start asked for during a cleanup waits for it: every payment is counted exactly once after the wipe", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.kv`;
    const first = await openPipeline(path);
    const append = async (from: number, to: number) => {
      for (let i = from; i < to; i += 1000) {
        await first.log.append(
          "bss.payment.events",
          Array.from({ length: 1000 }, (_, j) => payment(i + j)),
        );
      }
    };
    await append(0, PAYMENTS / 2);
    await first.start();
    await untilCaughtUp(first);
    await first.stop();
    assertEquals(counted(first), PAYMENTS / 2);
    // New input while stopped: tasks of the old state would have work to commit.
    await append(PAYMENTS / 2, PAYMENTS);

    // Asked for while the cleanup is still deleting (the reported race started 30 ms in).
    const cleanup = first.cleanup();
    await new Promise((r) => setTimeout(r, 1));
    const start = first.start();
    await Promise.all([cleanup, start]);
    await untilCaughtUp(first);
    await first.close();

    // What was committed reloads to exactly one count per payment.
    const reopened = await openPipeline(path);
    await reopened.runner.runUntilIdle();
    assertEquals(counted(reopened), PAYMENTS);
    await reopened.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cleanup while running or stopping answers 409, never 500", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pipeline = await openPipeline(`${dir}/state.kv`);
    const app = createAdminApp(pipeline, pipeline.config.admin);
    const post = (path: string) => app.request(`http://127.0.0.1${path}`, { method: "POST" });
    await pipeline.log.append(
      "bss.payment.events",
      Array.from({ length: 20_000 }, (_, i) => payment(i)),
    );
    await pipeline.start();
    const running = await post("/api/v1/streams/cleanup");
    assertEquals([running.status, (await running.json()).error], [409, "conflict"]);
    const stopping = post("/api/v1/streams/stop");
    for (let i = 0; i < 1000 && pipeline.runner.state !== "STOPPING"; i++) await Promise.resolve();
    assertEquals(pipeline.runner.state, "STOPPING");
    const during = await post("/api/v1/streams/cleanup");
    assertEquals([during.status, (await during.json()).error], [409, "conflict"]);
    assertEquals((await stopping).status, 200);
    assertEquals((await post("/api/v1/streams/cleanup")).status, 200);
    await pipeline.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM under load: requests get 200 or 503, never 500, and every acknowledged record is kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/pipeline.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        state: { path: "state/state.kv" },
        logIntervalMs: 0,
        plugins: [pluginEntry("fraud_detection")],
      }),
    );
    const main = startMain(config);
    const base = await adminUrl(main);
    await waitForLine(main, /running; plugins/);
    const statuses = new Map<number, number>();
    const acknowledged: string[] = [];
    let stop = false;
    let next = 0;
    const client = async (kind: number) => {
      while (!stop) {
        const i = next++;
        try {
          const res = kind === 0
            ? await fetch(`${base}/api/v1/streams/status`)
            : kind === 1
            ? await fetch(`${base}/api/v1/topics/bss.payment.events/records?limit=50`)
            : await fetch(`${base}/api/v1/topics/bss.payment.events/records`, {
              method: "POST",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ ...payment(i), value: JSON.parse(payment(i).value) }),
            });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          await res.body?.cancel();
          if (kind === 2 && res.status === 200) acknowledged.push(`p${i}`);
        } catch {
          // Refused once the server stopped accepting.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const clients = [0, 1, 2, 2, 2, 2].map(client);
    await new Promise((r) => setTimeout(r, 1500));
    main.child.kill("SIGTERM");
    const status = await main.child.status;
    await new Promise((r) => setTimeout(r, 100));
    stop = true;
    await Promise.all(clients);
    await main.stop();
    assertEquals(status.code, 0);
    ok(!statuses.has(500), `statuses: ${JSON.stringify([...statuses])}`);
    ok((statuses.get(200) ?? 0) > 50, `statuses: ${JSON.stringify([...statuses])}`);

    const again = startMain(config);
    try {
      const base2 = await adminUrl(again);
      const kept = new Set<string>();
      for (let p = 0; p < 3; p++) {
        for (let offset = 0;;) {
          const res = await fetch(
            `${base2}/api/v1/topics/bss.payment.events/records?partition=${p}&offset=${offset}&limit=10000`,
          ).then((r) => r.json());
          for (const r of res.records) kept.add(r.value.paymentId);
          if (res.records.length === 0) break;
          offset = res.records[res.records.length - 1].offset + 1;
        }
      }
      assertEquals(acknowledged.filter((id) => !kept.has(id)), []);
    } finally {
      await again.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
