import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import type { Mutation } from "./blob.ts";
import { KvCommitter } from "./committer.ts";

/** A commit too large for one atomic KV write: 2 500 mutations, ~1.5 MB. */
function bigCommit(): Mutation[] {
  const value = new Uint8Array(600).fill(7);
  return Array.from(
    { length: 2_500 },
    (_, i) => ({ key: ["data", i], value: i % 500 === 0 ? i : value }),
  );
}

/** A KV whose atomic commits fail from the `failAt`-th on, as if the process died there. */
function crashingAfter(kv: Deno.Kv, failAt: number): Deno.Kv {
  let commits = 0;
  return new Proxy(kv, {
    get(target, prop) {
      if (prop !== "atomic") return Reflect.get(target, prop).bind(target);
      return () => {
        const op = target.atomic();
        const commit = op.commit.bind(op);
        op.commit = () => ++commits >= failAt ? Promise.reject(new Error("crash")) : commit();
        return op;
      };
    },
  });
}

async function countData(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: ["data"] })) n++;
  return n;
}

Deno.test("a commit over KV's limits is all-or-nothing whatever atomic write a crash interrupts", async () => {
  const mutations = bigCommit();
  // Count the atomic writes a clean commit takes.
  const probe = await Deno.openKv(":memory:");
  let total = 0;
  const counting = new Proxy(probe, {
    get(target, prop) {
      if (prop !== "atomic") return Reflect.get(target, prop).bind(target);
      return () => {
        total++;
        return target.atomic();
      };
    },
  });
  const committer = new KvCommitter(counting);
  await committer.write(mutations);
  assertEquals(committer.walCommits, 1);
  assertEquals(await countData(probe), 2_500);
  probe.close();
  ok(total > 4, `needs several atomic writes (took ${total})`);

  for (let failAt = 1; failAt <= total; failAt++) {
    const kv = await Deno.openKv(":memory:");
    await new KvCommitter(crashingAfter(kv, failAt)).write(mutations).then(() => {}, () => {});
    await new KvCommitter(kv).recover();
    const n = await countData(kv);
    ok(n === 0 || n === 2_500, `crash at atomic write ${failAt}: ${n} of 2500 applied`);
    if (n === 2_500) assertEquals((await kv.get(["data", 500])).value, 500);
    let wal = 0;
    for await (const _ of kv.list({ prefix: ["wal"] })) wal++;
    assertEquals(wal, 0, "the write-ahead log is cleared");
    kv.close();
  }
});
