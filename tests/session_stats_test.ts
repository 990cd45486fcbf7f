import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  type OperatorMode,
  type RetractStrategy,
  SessionWindows,
  type StreamsBuilder,
} from "../pipeline/mod.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";

const MIN = 60_000;
type Visit = { user: string; kind: string; amount: number; timestamp: number };

/** A seeded stream: visits of 400 users, out of order, some late, some bridging two sessions. */
function randomVisits(n: number, seed: number): Visit[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const out: Visit[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += Math.floor(next() * 4_000);
    const at = next() < 0.15 ? Math.max(0, t - Math.floor(next() * 40 * MIN)) : t;
    out.push({
      user: `u${Math.floor(next() * 400)}`,
      kind: ["VIEW", "SEARCH", "BUY", "CALL", "RETURN"][Math.floor(next() * 5)],
      amount: Math.floor(next() * 100),
      timestamp: at,
    });
  }
  return out;
}

type Summary = [number, number, number, number, number, Record<string, number>] | null;

const SESSIONS = SessionWindows.ofInactivityGapAndGrace(10 * MIN, 5 * MIN);

/** Sessions as a JS aggregate: the reference the session operator must match. */
function jsSessions(retract: RetractStrategy) {
  return (b: StreamsBuilder) =>
    b.stream<Visit>("visits").groupByKey().windowedBy(SESSIONS)
      .aggregate<
        {
          n: number;
          sum: number;
          min: number;
          max: number;
          last: number;
          counts: Record<string, number>;
        }
      >(
        () => ({ n: 0, sum: 0, min: Infinity, max: -Infinity, last: 0, counts: {} }),
        (_k, v, a) => ({
          n: a.n + 1,
          sum: a.sum + v.amount,
          min: Math.min(a.min, v.amount),
          max: Math.max(a.max, v.amount),
          last: v.amount,
          counts: { ...a.counts, [v.kind]: (a.counts[v.kind] ?? 0) + 1 },
        }),
        (_k, a, b) => {
          const counts = { ...a.counts };
          for (const [k, n] of Object.entries(b.counts)) counts[k] = (counts[k] ?? 0) + n;
          return {
            n: a.n + b.n,
            sum: a.sum + b.sum,
            min: Math.min(a.min, b.min),
            max: Math.max(a.max, b.max),
            last: b.last,
            counts,
          };
        },
        { store: "visit-sessions", retract },
      )
      .toStream()
      .mapValues((a): Summary => a && [a.n, a.sum, a.min, a.max, a.last, a.counts])
      .to("sessions-out");
}

function operatorSessions(retract: RetractStrategy) {
  return (b: StreamsBuilder) =>
    b.stream<Visit>("visits").groupByKey().windowedBy(SESSIONS)
      .stats((v) => v.amount, { store: "visit-sessions", retract, category: (v) => v.kind })
      .toStream()
      .mapValues((s): Summary => s && [s.count, s.sum, s.min, s.max, s.last, { ...s.counts }])
      .to("sessions-out");
}

/** Pipes the visits in chunks of 60, reopening the state every `restartEvery` chunks. */
async function run(
  visits: Visit[],
  build: (b: StreamsBuilder) => void,
  modes: OperatorMode[],
  restartEvery: number,
  cacheMaxBytes: number,
) {
  const dir = await Deno.makeTempDir();
  const outputs: [string | null, Summary][] = [];
  let late = 0;
  let d: TestDriver | null = null;
  for (let chunk = 0, opened = 0; chunk * 60 < visits.length; chunk++) {
    if (chunk % restartEvery === 0) {
      d?.close();
      d = await TestDriver.create({
        kvPath: `${dir}/state.kv`,
        operators: modes[opened++ % modes.length],
        cacheMaxBytes,
        build,
      });
    }
    await d!.input<Visit>("visits").pipeMany(
      visits.slice(chunk * 60, chunk * 60 + 60).map((value) => ({ key: value.user, value })),
    );
    outputs.push(...d!.output<Summary>("sessions-out").readKeyValues());
    late += d!.output("bss.late").readValues().length;
  }
  d!.close();
  await Deno.remove(dir, { recursive: true });
  return { outputs, late };
}

for (const retract of ["merged", "all"] as const) {
  Deno.test(`session stats (retract: ${retract}) give the JS session aggregate's outputs exactly, with the record cache on and off, in WebAssembly and TypeScript, across restarts that switch between them`, async () => {
    const visits = randomVisits(4_000, retract === "all" ? 3 : 8);
    for (const cacheMaxBytes of [0, 1 << 20]) {
      const reference = await run(visits, jsSessions(retract), ["wasm"], Infinity, cacheMaxBytes);
      ok(reference.outputs.length > 2_000, `${reference.outputs.length} outputs`);
      ok(reference.late > 50, `${reference.late} late`);
      // Merged sessions: a retraction (null) followed by the surviving session.
      ok(reference.outputs.some(([, v]) => v === null));
      for (const modes of [["wasm"], ["ts"], ["wasm", "ts"]] as OperatorMode[][]) {
        const got = await run(visits, operatorSessions(retract), modes, 9, cacheMaxBytes);
        assertEquals(got, reference, `${modes} cache ${cacheMaxBytes}`);
      }
    }
  });
}

Deno.test("session stats keep each key's sessions in the store, by key and start, counts included", async () => {
  const d = await TestDriver.create({ build: operatorSessions("merged") });
  const visits = d.input<Visit>("visits");
  const visit = (kind: string, at: number) => ({ user: "a", kind, amount: 2, timestamp: at });
  await visits.pipe("a", visit("VIEW", 0));
  await visits.pipe("a", visit("BUY", 4 * MIN));
  await visits.pipe("a", visit("VIEW", 18 * MIN)); // more than the gap after: a new session
  assertEquals(d.statsStore("visit-sessions").all().map((s) => [s.start, s.end, s.stats]), [
    [0, 4 * MIN, { count: 2, sum: 4, min: 2, max: 2, last: 2, counts: { VIEW: 1, BUY: 1 } }],
    [18 * MIN, 18 * MIN, { count: 1, sum: 2, min: 2, max: 2, last: 2, counts: { VIEW: 1 } }],
  ]);
  d.close();
});

Deno.test("sessions stored under a longer grace (more live sessions per key) load under a shorter one and close by it", async () => {
  const build = (grace: number) => (b: StreamsBuilder) =>
    b.stream<Visit>("visits").groupByKey()
      .windowedBy(SessionWindows.ofInactivityGapAndGrace(10 * MIN, grace))
      .stats((v) => v.amount, { store: "visit-sessions", retract: "merged" })
      .toStream()
      .mapValues((s) => s && [s.count, s.sum])
      .to("sessions-out");
  const visit = (at: number) => ({ user: "a", kind: "VIEW", amount: 1, timestamp: at });
  for (const operators of ["wasm", "ts"] as const) {
    const dir = await Deno.makeTempDir();
    const kvPath = `${dir}/state.kv`;
    // Grace 25 min: room for 2 + 25 / 10 = 4 live sessions per key; three are live at 30 min.
    let d = await TestDriver.create({ kvPath, operators, build: build(25 * MIN) });
    for (const at of [0, 15 * MIN, 30 * MIN]) await d.input<Visit>("visits").pipe("a", visit(at));
    assertEquals(
      d.statsStore("visit-sessions").all().map((s) => s.start),
      [0, 15, 30].map((m) => m * MIN),
    );
    d.close();
    // With no grace a key has room for 2; the three stored still load, and stream time 31 min
    // closes the two that ended 10 min or more before it.
    d = await TestDriver.create({ kvPath, operators, build: build(0) });
    assertEquals(d.statsStore("visit-sessions").all().length, 3, operators);
    await d.input<Visit>("visits").pipe("a", visit(31 * MIN));
    assertEquals(d.output("sessions-out").readKeyValues(), [
      [`a@${30 * MIN}-${31 * MIN}`, [2, 2]],
    ], operators);
    assertEquals(d.statsStore("visit-sessions").all().map((s) => [s.start, s.end]), [
      [30 * MIN, 31 * MIN],
    ], operators);
    d.close();
    await Deno.remove(dir, { recursive: true });
  }
});
