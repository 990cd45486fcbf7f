import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { KvCommitter } from "../kv/committer.ts";
import { PersistentMap } from "./persistent_map.ts";

const OPTIONS = { minCompactionBytes: 2_000, snapshotEntriesPerCommit: 40, deletesPerCommit: 5 };

function sorted<V>(map: PersistentMap<V>): [string, V][] {
  return [...map.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
}

Deno.test("every commit reloads to the live map (sets, in-place changes, deletes) while snapshots are written piece by piece", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
  const live = await PersistentMap.load<{ n: number; pad: string }>(kv, ["m"], OPTIONS);
  let snapshotsSwitched = 0;
  for (let commit = 0; commit < 150; commit++) {
    for (let i = 0; i < 1 + rand(30); i++) {
      const key = `k${rand(200)}`;
      const current = live.get(key);
      const op = rand(5);
      if (op === 0) live.delete(key);
      else if (op === 1 && current) {
        // Changed in place, as window stores do: the change and its touch must both count.
        current.n = commit * 100 + i;
        live.touch(key, current);
      } else live.set(key, { n: commit * 100 + i, pad: "x".repeat(rand(40)) });
    }
    const mutations = live.takeMutations();
    if (mutations.some((m) => m.key[1] === "meta")) snapshotsSwitched++;
    await committer.write(mutations);
    const reloaded = await PersistentMap.load<{ n: number; pad: string }>(kv, ["m"], OPTIONS);
    assertEquals(sorted(reloaded), sorted(live), `after commit ${commit}`);
  }
  ok(snapshotsSwitched >= 3, `snapshots switched ${snapshotsSwitched} times`);
  // With no more changes, leftovers are deleted a few per commit until only live blobs remain.
  for (let i = 0; i < 100; i++) await committer.write(live.takeMutations());
  const reloaded = await PersistentMap.load(kv, ["m"], OPTIONS);
  assertEquals(sorted(reloaded), sorted(live));
  const meta = JSON.parse((await kv.get<string>(["m", "meta"])).value!);
  for await (const e of kv.list({ prefix: ["m"] })) {
    if (e.key[1] === "s") assertEquals(e.key[2], meta.gen, "only the current snapshot remains");
    if (e.key[1] === "d") {
      ok((e.key[2] as number) > meta.covers, "only deltas after the snapshot remain");
    }
  }
  kv.close();
});

Deno.test("a snapshot interrupted by a restart is discarded and its keys are never reused", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  const first = await PersistentMap.load<number>(kv, ["m"], OPTIONS);
  for (let i = 0; i < 300; i++) first.set(`key-${i}`, i);
  await committer.write(first.takeMutations()); // starts a snapshot: 40 of 300 entries written
  let pages = 0;
  for await (const e of kv.list({ prefix: ["m", "s"] })) pages += e.key[2] === 1 ? 1 : 0;
  ok(pages > 0, "part of generation 1 was written");
  // Restart: the unfinished generation is garbage; the next snapshot uses generation 2.
  const second = await PersistentMap.load<number>(kv, ["m"], OPTIONS);
  assertEquals(second.size, 300);
  second.set("key-0", -1);
  for (let i = 0; i < 40; i++) await committer.write(second.takeMutations());
  const meta = JSON.parse((await kv.get<string>(["m", "meta"])).value!);
  assertEquals(meta.gen, 2);
  const third = await PersistentMap.load<number>(kv, ["m"], OPTIONS);
  assertEquals(sorted(third), sorted(second));
  kv.close();
});
