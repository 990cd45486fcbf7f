import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { KvCommitter } from "../pipeline/kv/committer.ts";
import type { PipelineRunner } from "../pipeline/runner/runner.ts";
import type { TopicLog } from "../pipeline/topics/mod.ts";
import { openRunner, OUTPUTS, restartInput } from "./fixtures/restart_topology.ts";
import { storedPages } from "./fixtures/stored_pages.ts";

const USERS = Array.from(
  { length: 8 },
  (_, i) => ({ key: `u${i}`, value: JSON.stringify({ tier: `T${i % 3}` }) }),
);

async function seed(log: TopicLog) {
  await log.append("users", USERS.map((u) => ({ ...u, timestamp: 0 })));
  const input = restartInput();
  // Appended in a few slices, as producers would.
  for (let i = 0; i < input.length; i += 100) {
    await log.append(
      "clicks",
      input.slice(i, i + 100).map((r) => ({
        key: r.key,
        value: JSON.stringify(r.value),
        timestamp: r.value.timestamp,
      })),
    );
  }
}

/** Every store entry and every output record (with partition and offset) of a finished run. */
async function snapshot(log: TopicLog, runner: PipelineRunner) {
  const stores: Record<string, unknown[]> = {};
  for (const task of runner.tasks) {
    for (const [name, store] of task.stores) {
      stores[`${name}/${task.partition}`] = [...store.map.entries()].sort(([a], [b]) =>
        a < b ? -1 : 1
      );
    }
  }
  const outputs: Record<string, unknown[]> = {};
  for (const topic of [...OUTPUTS, "bss.late", "bss.dlq"]) {
    outputs[topic] = [];
    for (let p = 0; p < log.partitions(topic); p++) {
      // Output-only topics keep only their newest records in memory; the rest come from KV.
      const reader = log.reader();
      await reader.fetch([{ topic, partition: p, offset: 0, max: 1e9, maxBytes: Infinity }]);
      outputs[topic].push(
        ...reader.read(topic, p, 0, 1e9).map((r) => [p, r.offset, r.key, r.value, r.timestamp]),
      );
    }
  }
  return { stores, outputs, streamTimes: runner.tasks.map((t) => t.streamTime) };
}

/**
 * The same pipeline run with no interruption. Batch size decides how records from different
 * upstream partitions interleave in repartition topics (as in Kafka), so the reference uses the
 * same batch size; a run resumed from a commit then replays exactly the same batches.
 */
async function uninterruptedRun(dir: string, maxBatchRecords: number) {
  const { kv, log, runner } = await openRunner(
    `${dir}/reference-${maxBatchRecords}.kv`,
    maxBatchRecords,
  );
  await seed(log);
  await runner.runUntilIdle();
  const result = await snapshot(log, runner);
  kv.close();
  return result;
}

Deno.test("kill -9 mid-stream, then a restart on the same KV file, gives exactly the outputs and state of an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const expected = await uninterruptedRun(dir, 7);
    ok(expected.outputs["bss.late"].length > 0, "the input must contain late records");
    // Every click passes both re-keyings: the chained count ends at the number of clicks.
    const updates = expected.outputs["page-updates"] as [number, number, string, string][];
    assertEquals(updates[updates.length - 1][3], String(restartInput().length));

    const path = `${dir}/crashed.kv`;
    const setup = await openRunner(path, 7);
    await seed(setup.log);
    setup.kv.close();
    const total = restartInput().length + USERS.length;

    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--unstable-kv",
        new URL("./fixtures/crash_child.ts", import.meta.url).pathname,
        path,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    let committed = 0;
    while (committed < total / 2) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      if (lines.length > 0) committed = Number(lines[lines.length - 1]);
    }
    child.kill("SIGKILL");
    const status = await child.status;
    await reader.cancel();
    assertEquals(status.signal, "SIGKILL");
    ok(
      committed >= total / 2 && committed < total,
      `killed mid-stream (committed ${committed} of ${total})`,
    );

    const resumed = await openRunner(path, 7);
    await resumed.runner.runUntilIdle();
    assertEquals(await snapshot(resumed.log, resumed.runner), expected);
    resumed.kv.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a commit that fails after processing leaves KV as before the batch; a restart redoes it exactly once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const expected = await uninterruptedRun(dir, 50);
    const path = `${dir}/failing.kv`;
    const first = await openRunner(path, 50);
    await seed(first.log);
    for (let i = 0; i < 6; i++) await first.runner.runOnce();
    // From now on commits die in KV: batches processed in memory must leave no trace.
    const write = KvCommitter.prototype.write;
    first.committer.write = () => Promise.reject(new Error("disk gone"));
    await first.runner.runUntilIdle().then(
      () => ok(false, "commit should fail"),
      (e) => assertEquals(e.message, "disk gone"),
    );
    first.committer.write = write;
    assertEquals(first.runner.state, "ERROR");
    first.kv.close();

    const resumed = await openRunner(path, 50);
    await resumed.runner.runUntilIdle();
    assertEquals(await snapshot(resumed.log, resumed.runner), expected);
    resumed.kv.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("after repartition topics were consumed and purged, a restart loses no re-keyed record", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/purged.kv`;
    const input = restartInput();
    const append = (log: TopicLog, from: number, to: number) =>
      log.append(
        "clicks",
        input.slice(from, to).map((r) => ({
          key: r.key,
          value: JSON.stringify(r.value),
          timestamp: r.value.timestamp,
        })),
      );
    const first = await openRunner(path, 1000);
    await append(first.log, 0, 200);
    await first.runner.runUntilIdle();
    await append(first.log, 200, 400);
    await first.runner.runUntilIdle();
    // A commit with no re-keyed records persists the purge: no repartition page is left in KV.
    await first.log.append("users", [{ key: "u0", value: JSON.stringify({ tier: "T9" }) }]);
    await first.runner.runUntilIdle();
    assertEquals(await storedPages(first.kv, "restart-clicks-per-page-repartition"), []);
    first.kv.close();

    const second = await openRunner(path, 1000);
    await append(second.log, 400, 600);
    await second.runner.runUntilIdle();
    let counted = 0;
    for (const task of second.runner.tasks) {
      const store = task.stores.get("clicks-per-page");
      if (store) { for (const [, n] of store.map.entries()) counted += n as number; }
    }
    assertEquals(counted, 600);
    second.kv.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
