import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { KvCommitter } from "../../kv/committer.ts";
import { partitionForKey } from "../partitioner.ts";
import { EmbeddedLog } from "./embedded_log.ts";
import { encodePage } from "./page_codec.ts";
import { storedPages, storedSegmentIndexes } from "../../../tests/fixtures/stored_pages.ts";

async function withKvFile<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await fn(`${dir}/state.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("embedded log partitions by murmur2, assigns offsets and survives a reopen", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => 1000);
    log.ensureTopic("orders", { partitions: 3 });
    const positions = await log.append("orders", [
      { key: "c-1", value: '{"n":1}' },
      { key: "c-2", value: '{"n":2}', timestamp: 5 },
      { key: "c-1", value: '{"n":3}', headers: { source: "test" } },
    ]);
    const p1 = partitionForKey("c-1", 3);
    const p2 = partitionForKey("c-2", 3);
    assertEquals(positions[0], { partition: p1, offset: 0 });
    assertEquals(positions[2], { partition: p1, offset: 1 });
    assertEquals(positions[1], { partition: p2, offset: p1 === p2 ? 2 : 0 });
    kv.close();

    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2));
    assertEquals(reopened.partitions("orders"), 3);
    assertEquals(reopened.endOffset("orders", p1), p1 === p2 ? 3 : 2);
    await reopened.prefetch("orders", p1, 0, 10); // a reopened log reads records from KV
    const read = reopened.read("orders", p1, 0, 10).filter((r) => r.key === "c-1");
    assertEquals(read.map((r) => [r.offset, r.value, r.timestamp, r.headers]), [
      [0, '{"n":1}', 1000, {}],
      [1, '{"n":3}', 1000, { source: "test" }],
    ]);
    throws(() => reopened.ensureTopic("orders", { partitions: 4 }), /already exists with 3/);
    kv2.close();
  });
});

Deno.test("embedded log applies record retention page by page and persists the trim", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv));
    log.ensureTopic("t", { partitions: 1, retention: { records: 300 } });
    for (let batch = 0; batch < 3; batch++) {
      await log.append(
        "t",
        Array.from({ length: 256 }, (_, i) => ({ key: null, value: String(batch * 256 + i) })),
      );
    }
    // 768 records in pages of 256: keeping >= 300 means the first page (256) is dropped once.
    assertEquals(log.startOffset("t", 0), 256);
    await log.append("t", [{ key: null, value: "x" }]); // carries the page deletes
    kv.close();
    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2));
    assertEquals(reopened.startOffset("t", 0), 256);
    assertEquals(reopened.endOffset("t", 0), 769);
    await reopened.prefetch("t", 0, 0, 1);
    assertEquals(reopened.read("t", 0, 0, 1)[0].value, "256");
    kv2.close();
  });
});

Deno.test("records larger than one KV value are split into parts and read back whole", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv));
    log.ensureTopic("big", { partitions: 1 });
    const big = JSON.stringify({ blob: "é".repeat(200_000) });
    await log.append("big", [{ key: "k", value: big }]);
    kv.close();
    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2));
    await reopened.prefetch("big", 0, 0, 1);
    assertEquals(reopened.read("big", 0, 0, 1)[0].value, big);
    kv2.close();
  });
});

Deno.test("an output-only topic keeps just the newest commit in memory; older records come from KV", async () => {
  const kv = await Deno.openKv(":memory:");
  const log = await EmbeddedLog.open(new KvCommitter(kv), () => 0, { memoryRecords: 10_000 });
  log.ensureTopic("out", { partitions: 1 });
  log.ensureTopic("in", { partitions: 1 });
  log.markOutputOnly("out");
  const seen: string[][] = [];
  // Listeners read the commit just published without a prefetch.
  log.onAppend(() =>
    seen.push(log.read("out", 0, log.endOffset("out", 0) - 2, 2).map((r) => r.value!))
  );
  for (let batch = 0; batch < 3; batch++) {
    const values = [`${batch}a`, `${batch}b`];
    await log.append("out", values.map((value) => ({ key: null, value })));
    await log.append("in", values.map((value) => ({ key: null, value })));
  }
  assertEquals(seen.filter((_, i) => i % 2 === 0), [["0a", "0b"], ["1a", "1b"], ["2a", "2b"]]);
  assertEquals(log.needsPrefetch("out", 0, 0), true);
  assertEquals(log.needsPrefetch("in", 0, 0), false); // other topics keep their tail
  await log.prefetch("out", 0, 0, 100);
  assertEquals(log.read("out", 0, 0, 100).map((r) => r.value), [
    "0a",
    "0b",
    "1a",
    "1b",
    "2a",
    "2b",
  ]);
  kv.close();
});

Deno.test("only the newest records stay in memory; older ones are read back after prefetch", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => 0, { memoryRecords: 300 });
    log.ensureTopic("t", { partitions: 1 });
    for (let batch = 0; batch < 4; batch++) {
      await log.append(
        "t",
        Array.from({ length: 256 }, (_, i) => ({ key: null, value: `${batch * 256 + i}` })),
      );
    }
    assertEquals([log.startOffset("t", 0), log.endOffset("t", 0)], [0, 1024]);
    assertEquals(log.needsPrefetch("t", 0, 0), true);
    assertEquals(log.read("t", 0, 0, 10), []); // not loaded yet
    assertEquals(log.read("t", 0, 900, 3).map((r) => r.value), ["900", "901", "902"]);
    await log.prefetch("t", 0, 250, 600);
    assertEquals(log.needsPrefetch("t", 0, 250), false);
    const read = log.read("t", 0, 250, 600);
    assertEquals(read.map((r) => r.offset), Array.from({ length: 600 }, (_, i) => 250 + i));
    assertEquals(read.map((r) => r.value), read.map((r) => String(r.offset)));
    kv.close();
    // Reopened: no record in memory, every one read back from KV.
    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2), () => 0, { memoryRecords: 300 });
    assertEquals(reopened.needsPrefetch("t", 0, 0), true);
    await reopened.prefetch("t", 0, 0, 5);
    assertEquals(reopened.read("t", 0, 0, 5).map((r) => r.value), ["0", "1", "2", "3", "4"]);
    // A read of 600 would stop at the end of the one page loaded: that needs a prefetch too.
    assertEquals([reopened.needsPrefetch("t", 0, 0, 5), reopened.needsPrefetch("t", 0, 0, 600)], [
      false,
      true,
    ]);
    await reopened.prefetch("t", 0, 0, 600);
    assertEquals(reopened.read("t", 0, 0, 600).length, 600);
    kv2.close();
  });
});

Deno.test("time retention drops whole pages older than the limit", async () => {
  await withKvFile(async (path) => {
    let now = 1_000_000;
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => now, { memoryRecords: 10 });
    log.ensureTopic("t", { partitions: 1, retention: { ms: 60_000 } });
    await log.append("t", Array.from({ length: 300 }, () => ({ key: null, value: "old" })));
    now += 30_000;
    await log.append("t", [{ key: null, value: "newer" }]);
    assertEquals(log.startOffset("t", 0), 0);
    now += 45_000; // the first 300 are 75 s old, the last 45 s
    await log.append("t", [{ key: null, value: "newest" }]);
    assertEquals([log.startOffset("t", 0), log.endOffset("t", 0)], [300, 302]);
    kv.close();
  });
});

Deno.test("after every page is deleted, a reopened partition goes on from its end offset", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv));
    log.ensureTopic("rp", { partitions: 1 });
    await log.append("rp", Array.from({ length: 40 }, () => ({ key: null, value: "x" })));
    log.truncateBefore("rp", 0, 40); // all consumed
    await log.append("rp", []); // commits the pending deletes
    kv.close();
    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2));
    assertEquals([reopened.startOffset("rp", 0), reopened.endOffset("rp", 0)], [40, 40]);
    const [pos] = await reopened.append("rp", [{ key: null, value: "next" }]);
    assertEquals(pos.offset, 40);
    kv2.close();
  });
});

Deno.test("a reopened log reads only its page index, records come from KV when first needed", async () => {
  await withKvFile(async (path) => {
    let now = 1_000_000;
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => now, { memoryRecords: 300 });
    log.ensureTopic("t", { partitions: 1 });
    for (let batch = 0; batch < 4; batch++) {
      await log.append(
        "t",
        Array.from({ length: 256 }, (_, i) => ({ key: null, value: `${batch * 256 + i}` })),
      );
      now += 60_000;
    }
    kv.close();
    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2), () => now, {
      memoryRecords: 300,
    });
    assertEquals([reopened.startOffset("t", 0), reopened.endOffset("t", 0)], [0, 1024]);
    assertEquals([reopened.needsPrefetch("t", 0, 0), reopened.needsPrefetch("t", 0, 1023)], [
      true,
      true,
    ]);
    await reopened.prefetch("t", 0, 1022, 5);
    assertEquals(reopened.read("t", 0, 1022, 5).map((r) => r.value), ["1022", "1023"]);
    await reopened.prefetch("t", 0, 0, 3);
    assertEquals(reopened.read("t", 0, 0, 3).map((r) => r.value), ["0", "1", "2"]);
    // The index keeps each page's newest timestamp for time retention.
    reopened.ensureTopic("t", { partitions: 1, retention: { ms: 150_000 } });
    await reopened.append("t", [{ key: null, value: "late" }]);
    assertEquals(reopened.startOffset("t", 0), 512);
    await reopened.append("t", []); // commits the deletes
    // The two dropped pages' segments held nothing else: their indexes went with them.
    assertEquals(await storedPages(kv2, "t"), [512, 768, 1024]);
    assertEquals(await storedSegmentIndexes(kv2), 3);
    kv2.close();
  });
});

Deno.test("a commit's pages, whatever their partitions, are stored side by side in one segment; its index goes with its last page", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => 0);
    log.ensureTopic("a", { partitions: 3 });
    await log.append("a", [0, 1, 2].map((p) => ({ key: null, value: `v${p}`, partition: p })));
    const segments = new Set<unknown>();
    for await (const e of kv.list({ prefix: ["lseg"] })) segments.add(e.key[1]);
    assertEquals([segments.size, await storedSegmentIndexes(kv)], [1, 1]);
    assertEquals(await storedPages(kv, "a"), [0, 0, 0]);

    // Partition 0's page deleted: a reopen does not bring it back from the segment's index.
    log.truncateBefore("a", 0, 1);
    await log.append("a", []);
    kv.close();
    const kv2 = await Deno.openKv(path);
    const reopened = await EmbeddedLog.open(new KvCommitter(kv2), () => 0);
    assertEquals([0, 1, 2].map((p) => reopened.startOffset("a", p)), [1, 0, 0]);
    assertEquals([0, 1, 2].map((p) => reopened.endOffset("a", p)), [1, 1, 1]);
    await reopened.prefetch("a", 1, 0, 10);
    assertEquals(reopened.read("a", 1, 0, 10).map((r) => r.value), ["v1"]);
    assertEquals(await storedSegmentIndexes(kv2), 1);
    reopened.truncateBefore("a", 1, 1);
    reopened.truncateBefore("a", 2, 1);
    await reopened.append("a", []);
    assertEquals([await storedPages(kv2, "a"), await storedSegmentIndexes(kv2)], [[], 0]);
    kv2.close();
  });
});

Deno.test("a log an earlier version wrote (pages stored as they are, index entries without the deflated flag) opens, reads, goes on and trims", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const old = ["0", "1", "2"].map((value, offset) => ({
      topic: "t",
      partition: 0,
      offset,
      key: `k${offset}`,
      value,
      timestamp: 1_000 + offset,
      headers: {},
    }));
    const text = encodePage(old);
    const stored = await kv.atomic()
      .set(["topic", "t"], 1)
      .set(["log", "t", 0, 0, 0], new TextEncoder().encode(text))
      .set(["logpage", "t", 0, 0], JSON.stringify([3, 1, 1_002, text.length]))
      .commit();
    ok(stored.ok);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => 5_000);
    assertEquals([log.startOffset("t", 0), log.endOffset("t", 0)], [0, 3]);
    await log.prefetch("t", 0, 0, 10);
    assertEquals(log.read("t", 0, 0, 10).map((r) => [r.offset, r.key, r.value]), [
      [0, "k0", "0"],
      [1, "k1", "1"],
      [2, "k2", "2"],
    ]);
    await log.append("t", [{ key: "k3", value: "3", partition: 0 }]);
    assertEquals(log.read("t", 0, 2, 10).map((r) => [r.offset, r.value]), [[2, "2"], [3, "3"]]);
    // Retention deletes the old page by its own keys.
    log.ensureTopic("t", { partitions: 1, retention: { records: 1 } });
    await log.append("t", [{ key: "k4", value: "4", partition: 0 }]);
    await log.append("t", []); // commits the deletes
    assertEquals(await Array.fromAsync(kv.list({ prefix: ["log", "t", 0, 0] })), []);
    assertEquals((await kv.get(["logpage", "t", 0, 0])).value, null);
    kv.close();
  });
});

Deno.test("large records are bounded in memory by bytes, paged by size, and read within a byte budget", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const log = await EmbeddedLog.open(new KvCommitter(kv), () => 0, {
      memoryRecords: 20_000,
      memoryBytes: 1_000_000,
    });
    log.ensureTopic("t", { partitions: 1 });
    const big = (i: number) => `${i}`.padEnd(300_000, ".");
    for (let i = 0; i < 10; i++) await log.append("t", [{ key: null, value: big(i) }]);
    // 10 records of 300 KB: memory keeps at most ~1 MB of pages, plus the newest commit's.
    assertEquals(log.needsPrefetch("t", 0, 5), true);
    assertEquals(log.needsPrefetch("t", 0, 6), false);
    assertEquals(log.read("t", 0, 6, 100).map((r) => r.offset), [6, 7, 8, 9]);
    // A read stops once its budget is spent, but always returns at least one record.
    assertEquals(log.read("t", 0, 6, 100, 500_000).map((r) => r.offset), [6, 7]);
    assertEquals(log.read("t", 0, 6, 100, 1).map((r) => r.offset), [6]);
    // Prefetching within a budget loads only the pages that budget covers.
    await log.prefetch("t", 0, 0, 100, 700_000);
    assertEquals(log.read("t", 0, 0, 100, 700_000).map((r) => r.offset), [0, 1, 2]);
    assertEquals(log.needsPrefetch("t", 0, 3), true);
    // One append of several large records is split into pages of about 512 KB.
    await log.append("t", Array.from({ length: 4 }, (_, i) => ({ key: null, value: big(10 + i) })));
    assertEquals((await storedPages(kv, "t", 0)).length, 10 + 2);
    kv.close();
  });
});

Deno.test("appends made while a commit is queued are committed together, each with its own positions; a bad one fails alone", async () => {
  await withKvFile(async (path) => {
    const kv = await Deno.openKv(path);
    const committer = new KvCommitter(kv);
    const log = await EmbeddedLog.open(committer, () => 1000);
    log.ensureTopic("a", { partitions: 1 });
    log.ensureTopic("b", { partitions: 2 });
    let writes = 0;
    const write = committer.write.bind(committer);
    committer.write = (mutations) => {
      writes++;
      return write(mutations);
    };
    const first = log.append("a", [{ key: null, value: "a0" }]);
    const [a, b, bad, a2] = await Promise.allSettled([
      log.append("a", [{ key: null, value: "a1" }, { key: null, value: "a2" }]),
      log.append("b", [{ key: "k", value: "b0", partition: 1 }]),
      log.append("b", [{ key: "k", value: "bx", partition: 2 }]),
      log.append("a", [{ key: null, value: "a3" }]),
    ]);
    assertEquals(await first, [{ partition: 0, offset: 0 }]);
    // The first had not had its turn yet: all four good ones went in one KV write.
    assertEquals(writes, 1);
    await log.append("a", [{ key: null, value: "a4" }]);
    assertEquals(writes, 2);
    assertEquals(a, {
      status: "fulfilled",
      value: [{ partition: 0, offset: 1 }, { partition: 0, offset: 2 }],
    });
    assertEquals(b, { status: "fulfilled", value: [{ partition: 1, offset: 0 }] });
    assertEquals(a2, { status: "fulfilled", value: [{ partition: 0, offset: 3 }] });
    assertEquals(
      bad.status === "rejected" && (bad.reason as Error).message,
      "Cannot append to 'b' as partition must be 0..1: current value is 2",
    );
    assertEquals(log.read("a", 0, 0, 10).map((r) => r.value), ["a0", "a1", "a2", "a3", "a4"]);
    assertEquals(log.read("b", 1, 0, 10).map((r) => r.value), ["b0"]);
    kv.close();
  });
});
