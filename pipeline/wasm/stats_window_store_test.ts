import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { KvCommitter } from "../kv/committer.ts";
import type { TimeWindowSpec } from "../windows.ts";
import { StatsWindowStore } from "./stats_window_store.ts";
import type { OperatorMode } from "./window_kernel.ts";

const SPEC: TimeWindowSpec = { kind: "time", size: 4000, advance: 4000, grace: 500 };
const PREFIX = ["st", "test", "w", 0];

/** Park–Miller: a seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

/** A batch of `n` records over a growing set of keys, time moving forward. */
function batchOf(next: () => number, n: number, batch: number) {
  return Array.from({ length: n }, (_, i) => ({
    key: `k${Math.floor(next() * (2000 + batch * 150))}`,
    t: batch * 120 + Math.floor((i / n) * 120),
    v: Math.floor(next() * 100),
    category: `c${Math.floor(next() * 3)}`,
  }));
}

async function open(kv: Deno.Kv, mode: OperatorMode): Promise<StatsWindowStore> {
  return (await StatsWindowStore.load(kv, PREFIX, "w", SPEC, mode)).open();
}

function apply(store: StatsWindowStore, records: ReturnType<typeof batchOf>, streamTime: number) {
  const categories = records.map((r) => store.category(r.category));
  const c = store.prepare(records.length);
  records.forEach((r, i) => {
    c.keys[i] = store.intern(r.key);
    c.times[i] = r.t;
    c.values[i] = r.v;
    c.streamTimes[i] = Math.max(streamTime, r.t);
    c.categories[i] = categories[i];
  });
  store.aggregate(records.length, false);
}

Deno.test("a binary snapshot written a page per commit, while windows change, open and close, reloads exactly, from any commit on", async () => {
  for (const mode of ["wasm", "ts"] as const) {
    const kv = await Deno.openKv(":memory:");
    const committer = new KvCommitter(kv);
    const next = random(11);
    const store = await open(kv, mode);
    let streamTime = 0;
    let snapshotCommits = 0;
    for (let batch = 0; batch < 80; batch++) {
      const records = batchOf(next, 400, batch);
      streamTime = Math.max(streamTime, ...records.map((r) => r.t));
      apply(store, records, streamTime);
      const { mutations } = store.takeCommit(false);
      if (mutations.some((m) => m.key[PREFIX.length] === "s" && m.value !== null)) {
        snapshotCommits++;
      }
      await committer.serialize(() => committer.write(mutations));
      // What a restart after this commit loads, mid-snapshot or not: the same windows.
      const reopened = await open(kv, batch % 2 === 0 ? "ts" : "wasm");
      assertEquals(reopened.all(), store.all(), `${mode} batch ${batch}`);
      reopened.release();
    }
    // Snapshots were written, over several commits each (pages of 1 000 windows).
    ok(snapshotCommits >= 4, `${mode}: snapshot pages written in ${snapshotCommits} commits`);
    ok(store.size > 3000, `${mode}: ${store.size} live windows`);
    store.release();
    kv.close();
  }
});
