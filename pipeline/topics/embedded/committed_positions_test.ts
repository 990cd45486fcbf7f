import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { KvCommitter } from "../../kv/committer.ts";
import { CommittedPositions } from "./committed_positions.ts";

const orders = { id: "0_1", partition: 1, topics: ["bss.order.events"] };
const joined = { id: "1_0", partition: 0, topics: ["bss.customer.info", "bss.order.events"] };

async function keys(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: [] })) out.push(e.key.map(String).join("/"));
  return out;
}

Deno.test("committed positions: every task's offsets and stream time in one blob", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  const positions = new CommittedPositions(kv, "app");
  await positions.load();
  assertEquals(positions.of(orders), { offsets: new Map(), streamTime: null });

  const first = positions.advance([
    { task: orders, offsets: new Map([["bss.order.events", 7]]), streamTime: 1000 },
    {
      task: joined,
      offsets: new Map([["bss.customer.info", 3], ["bss.order.events", 2]]),
      streamTime: -Infinity, // nothing with a time read yet: no stream time stored
    },
  ]);
  await committer.write(first.mutations);
  first.landed();
  // A later commit that advances one task keeps the other's positions.
  const second = positions.advance([
    { task: orders, offsets: new Map([["bss.order.events", 9]]), streamTime: 1500 },
  ]);
  await committer.write(second.mutations);
  second.landed();
  assertEquals(await keys(kv), ["positions/app/0"]);

  const reloaded = new CommittedPositions(kv, "app");
  await reloaded.load();
  assertEquals(reloaded.of(orders), {
    offsets: new Map([["bss.order.events", 9]]),
    streamTime: 1500,
  });
  assertEquals(reloaded.of(joined), {
    offsets: new Map([["bss.customer.info", 3], ["bss.order.events", 2]]),
    streamTime: null,
  });
  kv.close();
});

Deno.test("committed positions: a commit that never landed leaves the last one's", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  const positions = new CommittedPositions(kv, "app");
  await positions.load();
  const first = positions.advance([
    { task: orders, offsets: new Map([["bss.order.events", 7]]), streamTime: 1000 },
  ]);
  await committer.write(first.mutations);
  first.landed();
  positions.advance([
    { task: orders, offsets: new Map([["bss.order.events", 50]]), streamTime: 9000 },
  ]); // abandoned: neither written nor landed
  const third = positions.advance([
    { task: joined, offsets: new Map([["bss.order.events", 1]]), streamTime: 10 },
  ]);
  await committer.write(third.mutations);
  third.landed();
  const reloaded = new CommittedPositions(kv, "app");
  await reloaded.load();
  assertEquals(reloaded.of(orders), {
    offsets: new Map([["bss.order.events", 7]]),
    streamTime: 1000,
  });
  kv.close();
});

Deno.test("committed positions: an earlier version's keys are read, kept and deleted", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  // As an earlier version stored them: a key per offset and per stream time, one of them of a
  // task no longer loaded (its plugin disabled), another application's left alone.
  await kv.atomic()
    .set(["off", "app", "bss.order.events", 1], 40)
    .set(["time", "app", "bss.order.events", 1], 4000)
    .set(["off", "app", "bss.customer.info", 0], 12)
    .set(["off", "other", "bss.order.events", 1], 99)
    .commit();
  const positions = new CommittedPositions(kv, "app");
  await positions.load();
  assertEquals(positions.of(orders), {
    offsets: new Map([["bss.order.events", 40]]),
    streamTime: 4000,
  });
  const next = positions.advance([
    { task: orders, offsets: new Map([["bss.order.events", 41]]), streamTime: 4100 },
  ]);
  await committer.write(next.mutations);
  next.landed();
  assertEquals(await keys(kv), ["off/other/bss.order.events/1", "positions/app/0"]);
  const reloaded = new CommittedPositions(kv, "app");
  await reloaded.load();
  assertEquals(reloaded.of(orders), {
    offsets: new Map([["bss.order.events", 41]]),
    streamTime: 4100,
  });
  assertEquals(reloaded.of(joined).offsets, new Map([["bss.customer.info", 12]]));

  const cleared = reloaded.clear();
  await committer.write(cleared.mutations);
  cleared.landed();
  assertEquals(await keys(kv), ["off/other/bss.order.events/1"]);
  assertEquals(reloaded.of(orders), { offsets: new Map(), streamTime: null });
  kv.close();
});

Deno.test("committed positions: a blob that shrinks by a part leaves no stale part", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  const positions = new CommittedPositions(kv, "app");
  await positions.load();
  // Thousands of partitions with offsets that deflate poorly, then well: two parts, then one.
  let seed = 1;
  const random = () => (seed = (seed * 48271) % 2147483647);
  const tasks = Array.from({ length: 4500 }, (_, i) => ({
    id: `0_${i}`,
    partition: i,
    topics: [`topic-${random().toString(16)}`],
  }));
  const big = positions.advance(tasks.map((task) => ({
    task,
    offsets: new Map([[task.topics[0], random() * 1000]]),
    streamTime: -Infinity,
  })));
  await committer.write(big.mutations);
  big.landed();
  const small = positions.advance(tasks.map((task) => ({
    task,
    offsets: new Map([[task.topics[0], 1]]),
    streamTime: -Infinity,
  })));
  ok(big.mutations.length === 2 && small.mutations.filter((m) => m.value !== null).length === 1);
  await committer.write(small.mutations);
  small.landed();
  assertEquals(await keys(kv), ["positions/app/0"]);
  const reloaded = new CommittedPositions(kv, "app");
  await reloaded.load();
  assertEquals(reloaded.of(tasks[4499]).offsets, new Map([[tasks[4499].topics[0], 1]]));
  kv.close();
});
