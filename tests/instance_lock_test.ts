import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { adminUrl, pluginEntry, poll, startMain, waitForLine } from "./fixtures/main_process.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");

async function writeConfig(dir: string): Promise<string> {
  const path = `${dir}/pipeline.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      state: { path: "state/state.kv" },
      admin: { host: "127.0.0.1", port: 0 },
      logIntervalMs: 0,
      plugins: [pluginEntry("fraud_detection")],
    }),
  );
  return path;
}

const payments = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    key: "C1",
    value: {
      paymentId: `p${from + i}`,
      customerId: "C1",
      amount: 10,
      currency: "USD",
      method: "CARD",
      status: "SUCCESS",
      timestamp: T0 + (from + i) * 60_000,
    },
  }));

const post = (base: string, body: unknown) =>
  fetch(`${base}/api/v1/topics/bss.payment.events/records`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }).then((r) => r.json());

Deno.test("a second process on the same state exits non-zero naming the first, which keeps running; after the first is killed -9 the next takes over at once", async () => {
  const dir = await Deno.makeTempDir();
  const config = await writeConfig(dir);
  const first = startMain(config);
  try {
    const base = await adminUrl(first);
    await waitForLine(first, /running; plugins: fraud_detection/);
    assertEquals((await post(base, payments(0, 50))).accepted, 50);

    const { status, output: message } = await startMain(config).exited();
    assertEquals(status.code, 1);
    ok(
      message.includes(`Another pipeline instance (pid ${first.child.pid} on ${Deno.hostname()}`),
      message,
    );
    ok(message.includes(`is running on ${dir}/state/state.kv`), message);

    // The first instance was not disturbed: it still acknowledges and owns every record.
    const more = await post(base, payments(50, 50));
    assertEquals(more.offsets.map((o: { offset: number }) => o.offset)[49], 99);
    const health = await fetch(`${base}/health`);
    assertEquals([health.status, await health.json()], [200, {
      status: "UP",
      source: "embedded log (Deno KV)",
    }]);

    first.child.kill("SIGKILL");
    await first.child.status;

    const third = startMain(config);
    try {
      const base3 = await adminUrl(third);
      const records = await poll(async () => {
        const r = await fetch(`${base3}/api/v1/topics/bss.payment.events/records?limit=1000`)
          .then((r) => r.json());
        return r.records?.length === 100 ? r.records : undefined;
      });
      assertEquals(
        records.map((r: { value: { paymentId: string } }) => r.value.paymentId),
        payments(0, 100).map((p) => p.value.paymentId),
      );
    } finally {
      await third.stop();
    }
  } finally {
    await first.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
