import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { SessionWindows, SlidingWindows, TimeWindows } from "../pipeline/mod.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";

const MIN = 60_000;
type Ev = { user: string; timestamp: number };
const ev = (user: string, timestamp: number): Ev => ({ user, timestamp });

Deno.test("tumbling windows count per key, accept within grace, and send later records to bss.late", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(TimeWindows.ofSizeAndGrace(5 * MIN, 1 * MIN))
        .count({ store: "counts" })
        .toStream().to("counts-out"),
  });
  const events = d.input<Ev>("events");
  await events.pipe("a", ev("a", 1 * MIN));
  await events.pipe("a", ev("a", 4 * MIN));
  await events.pipe("a", ev("a", 5 * MIN)); // next window [5,10)
  await events.pipe("a", ev("a", 5.5 * MIN)); // stream time 5.5m: [0,5) closes at 6m, still open
  await events.pipe("a", ev("a", 4.5 * MIN)); // late-but-within-grace: counted in [0,5)
  await events.pipe("a", ev("a", 6 * MIN)); // stream time 6m closes [0,5)
  await events.pipe("a", ev("a", 3 * MIN)); // too late
  assertEquals(d.output("counts-out").readKeyValues(), [
    ["a@0-300000", 1],
    ["a@0-300000", 2],
    ["a@300000-600000", 1],
    ["a@300000-600000", 2],
    ["a@0-300000", 3],
    ["a@300000-600000", 3],
  ]);
  const late = d.output<Record<string, unknown>>("bss.late").readValues();
  assertEquals(late.length, 1);
  assertEquals(late[0].sourceTopic, "events");
  assertEquals(late[0].offset, 6);
  assertEquals(late[0].eventTime, 3 * MIN);
  assertEquals(late[0].streamTime, 6 * MIN);
  assertEquals(late[0].store, "counts");
  assertEquals(
    d.windowStore("counts").all().map((w) => [w.key, w.start, w.value]),
    [["a", 5 * MIN, 3]],
  );
  d.close();
});

Deno.test("hopping windows put a record in every window that contains it", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(TimeWindows.ofSizeAndGrace(10 * MIN, 0).advanceBy(5 * MIN))
        .count({ store: "hop" })
        .toStream().to("out"),
  });
  await d.input<Ev>("events").pipe("k", ev("k", 7 * MIN));
  assertEquals(d.output("out").readKeyValues(), [["k@0-600000", 1], ["k@300000-900000", 1]]);
  d.close();
});

Deno.test("sliding windows cover any span of the size, including out-of-order records", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(5 * MIN, 10 * MIN))
        .count({ store: "slide" })
        .toStream().to("out"),
  });
  const events = d.input<Ev>("events");
  await events.pipe("k", ev("k", 10 * MIN));
  await events.pipe("k", ev("k", 13 * MIN));
  await events.pipe("k", ev("k", 16 * MIN)); // [11,16] holds 13 and 16 only
  await events.pipe("k", ev("k", 12 * MIN)); // late but in grace: joins [8,13] and [11,16], new [7,12]
  assertEquals(d.output("out").readKeyValues(), [
    ["k@300000-600000", 1],
    ["k@480000-780000", 2],
    ["k@660000-960000", 2],
    ["k@420000-720000", 2],
    ["k@480000-780000", 3],
    ["k@660000-960000", 3],
  ]);
  d.close();
});

Deno.test("session windows extend with activity and merge when a late record bridges two sessions", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(SessionWindows.ofInactivityGapAndGrace(30 * MIN, 60 * MIN))
        .count({ store: "sessions" })
        .toStream().to("out"),
  });
  const events = d.input<Ev>("events");
  await events.pipe("u", ev("u", 0));
  await events.pipe("u", ev("u", 10 * MIN)); // extends [0,10]
  await events.pipe("u", ev("u", 60 * MIN)); // gap 50 > 30: new session
  await events.pipe("u", ev("u", 35 * MIN)); // within 30 of both: merges into [0,60]
  assertEquals(d.output("out").readKeyValues(), [
    ["u@0-0", 1],
    ["u@0-0", null],
    ["u@0-600000", 2],
    ["u@3600000-3600000", 1],
    ["u@0-600000", null],
    ["u@3600000-3600000", null],
    ["u@0-3600000", 4],
  ]);
  assertEquals(d.windowStore("sessions").fetch("u").map((w) => [w.start, w.end, w.value]), [[
    0,
    60 * MIN,
    4,
  ]]);
  d.close();
});

Deno.test("session windows send records after end + gap + grace to bss.late", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(SessionWindows.ofInactivityGapAndGrace(30 * MIN, 0))
        .count({ store: "sessions" })
        .toStream().to("out"),
  });
  const events = d.input<Ev>("events");
  await events.pipe("u", ev("u", 100 * MIN));
  await events.pipe("u", ev("u", 20 * MIN)); // 20 + 30 <= 100: its session is closed
  assertEquals(d.output("out").readKeyValues(), [["u@6000000-6000000", 1]]);
  assertEquals(d.output<{ reason: string }>("bss.late").readValues().length, 1);
  d.close();
});

Deno.test("emit-on-close emits each window once, with its final count, when stream time passes end + grace", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(TimeWindows.ofSizeAndGrace(5 * MIN, 1 * MIN))
        .count({ store: "final", emit: "close" })
        .toStream().to("out"),
  });
  const events = d.input<Ev>("events");
  await events.pipe("a", ev("a", 1 * MIN));
  await events.pipe("b", ev("b", 2 * MIN));
  await events.pipe("a", ev("a", 3 * MIN));
  await events.pipe("a", ev("a", 5.5 * MIN));
  assertEquals(d.output("out").readKeyValues(), []);
  await events.pipe("a", ev("a", 6 * MIN)); // closes [0,5) for every key of the partition
  assertEquals(d.output("out").readKeyValues(), [["a@0-300000", 2], ["b@0-300000", 1]]);
  d.close();
});

Deno.test("session retract 'merged' updates an extended session in place and retracts only absorbed ones", async () => {
  const d = await TestDriver.create({
    build: (b) =>
      b.stream<Ev>("events").groupByKey()
        .windowedBy(SessionWindows.ofInactivityGapAndGrace(30 * MIN, 60 * MIN))
        .count({ store: "sessions", retract: "merged" })
        .toStream().to("out"),
  });
  const events = d.input<Ev>("events");
  await events.pipe("u", ev("u", 0));
  await events.pipe("u", ev("u", 10 * MIN)); // extends [0,0]: no retraction
  await events.pipe("u", ev("u", 60 * MIN)); // new session
  await events.pipe("u", ev("u", 35 * MIN)); // bridges: [60,60] is absorbed
  assertEquals(d.output("out").readKeyValues(), [
    ["u@0-0", 1],
    ["u@0-600000", 2],
    ["u@3600000-3600000", 1],
    ["u@3600000-3600000", null],
    ["u@0-3600000", 4],
  ]);
  d.close();
});
