import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { KvCommitter } from "../../kv/committer.ts";
import { EmbeddedLog } from "./embedded_log.ts";

async function keysUnder(kv: Deno.Kv, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: [prefix] })) out.push(e.key.map(String).join("/"));
  return out;
}

function bounds(log: EmbeddedLog, topic: string): [number, number][] {
  return Array.from(
    { length: log.partitions(topic) },
    (_, p) => [log.startOffset(topic, p), log.endOffset(topic, p)],
  );
}

Deno.test("partition starts: a truncation and records passed over, in one commit, are one key; a reopen goes on from them", async () => {
  const kv = await Deno.openKv(":memory:");
  const committer = new KvCommitter(kv);
  const log = await EmbeddedLog.open(committer);
  log.ensureTopic("rp", { partitions: 3 });
  await log.append(
    "rp",
    Array.from({ length: 40 }, () => ({ key: null, value: "x", partition: 0 })),
  );
  log.truncateBefore("rp", 0, 40);
  // Records handed straight to their reader: partitions 1 and 2 hold no page, only their ends move.
  const staged = log.stage(
    new Map([["rp", [
      { key: null, value: "a", partition: 1 },
      { key: null, value: "b", partition: 2 },
      { key: null, value: "c", partition: 2 },
    ]]]),
    new Set(["rp"]),
  );
  await committer.write(staged.mutations);
  staged.publish();
  assertEquals(bounds(log, "rp"), [[40, 40], [1, 1], [2, 2]]);
  assertEquals(await keysUnder(kv, "logstarts"), ["logstarts/0"]);
  assertEquals(await keysUnder(kv, "logend"), []);

  const reopened = await EmbeddedLog.open(new KvCommitter(kv));
  assertEquals(bounds(reopened, "rp"), [[40, 40], [1, 1], [2, 2]]);
  const [pos] = await reopened.append("rp", [{ key: null, value: "next", partition: 2 }]);
  assertEquals(pos, { partition: 2, offset: 2 });
  kv.close();
});

Deno.test("partition starts an earlier version stored a key each are read, and deleted by the next commit", async () => {
  const kv = await Deno.openKv(":memory:");
  await kv.atomic().set(["topic", "rp"], 2).set(["logend", "rp", 0], 25).set(["logend", "rp", 1], 7)
    .commit();
  const log = await EmbeddedLog.open(new KvCommitter(kv));
  assertEquals(bounds(log, "rp"), [[25, 25], [7, 7]]);
  const [pos] = await log.append("rp", [{ key: null, value: "next", partition: 0 }]);
  assertEquals(pos, { partition: 0, offset: 25 });
  assertEquals(await keysUnder(kv, "logend"), []);
  assertEquals(await keysUnder(kv, "logstarts"), ["logstarts/0"]);

  const reopened = await EmbeddedLog.open(new KvCommitter(kv));
  assertEquals(bounds(reopened, "rp"), [[25, 26], [7, 7]]);
  kv.close();
});
