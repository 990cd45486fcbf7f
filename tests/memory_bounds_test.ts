import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { adminUrl, pluginEntry, poll, startMain } from "./fixtures/main_process.ts";

const RECORDS = 250;
const RECORD_BYTES = 1_000_000;
/** Posting the same records to a build without the byte bounds took RSS past 700 MB. */
const RSS_LIMIT = 500 * 1024 * 1024;

Deno.test("a flood of ~1 MB records from four clients keeps RSS bounded, every record processed; a records read is bounded in bytes", async () => {
  const dir = await Deno.makeTempDir();
  const config = `${dir}/pipeline.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      state: { path: "state/state.kv" },
      admin: { host: "127.0.0.1", port: 0 },
      logIntervalMs: 0,
      plugins: [pluginEntry("fraud_detection")],
    }),
  );
  const main = startMain(config);
  try {
    const base = await adminUrl(main);
    const metric = async (name: string) => {
      const text = await fetch(`${base}/metrics`).then((r) => r.text());
      return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    };
    let peak = 0;
    let flooding = true;
    const watcher = (async () => {
      while (flooding) {
        peak = Math.max(peak, await metric("process_resident_memory_bytes"));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const pad = "x".repeat(RECORD_BYTES - 300);
    let next = 0;
    const client = async () => {
      while (next < RECORDS) {
        const i = next++;
        const res = await fetch(`${base}/api/v1/topics/bss.payment.events/records`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            key: `C${i % 40}`,
            value: {
              paymentId: `p${i}`,
              customerId: `C${i % 40}`,
              amount: 10,
              currency: "USD",
              method: "CARD",
              status: "SUCCESS",
              timestamp: Date.now(),
              pad,
            },
          }),
        });
        assertEquals(res.status, 200, await res.text());
      }
    };
    await Promise.all([client(), client(), client(), client()]);
    await poll(
      async () =>
        (await metric('bss_pipeline_records_in_total{topic="bss.payment.events"}')) === RECORDS
          ? true
          : undefined,
      30_000,
    );
    flooding = false;
    await watcher;
    ok(peak > 0 && peak < RSS_LIMIT, `peak RSS ${Math.round(peak / 2 ** 20)} MB`);

    const res = await fetch(`${base}/api/v1/topics/bss.payment.events/records?limit=10000`);
    const text = await res.text();
    const body = JSON.parse(text) as { records: unknown[]; truncated: boolean };
    ok(text.length < 20 * 2 ** 20, `answer of ${text.length} bytes`);
    assertEquals([body.truncated, body.records.length > 0], [true, true]);
  } finally {
    await main.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
