/**
 * The WebAssembly operators (window aggregation, sessions, fraud scoring) against their
 * TypeScript references and against idiomatic TypeScript over `Map<string, …>`, on 1 M decoded
 * events with 10 k, 100 k and 1 M keys.
 *   deno task bench:operators [--events 1000000]
 * Prints events/s and ratios measured in this run; asserts nothing.
 */
import { parseArgs } from "node:util";
import { type OperatorMode, windowKernel } from "../pipeline/wasm/window_kernel.ts";
import { memory as wasmMemory } from "../operators-wasm/build/window_aggregation.wasm";
import { fraudKernel, SCORE, SCORE_ROW } from "../pipeline/wasm/fraud_kernel.ts";
import { sessionKernel } from "../pipeline/wasm/session_kernel.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { events: { type: "string", default: "1000000" } },
});
const EVENTS = Number(values.events);
const BATCH = 2000;
const SIZE = 3_600_000;

/** Decoded events: a string key, an event time advancing 1 ms apart, an amount. */
function events(keys: number) {
  let s = 42;
  const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
  return Array.from({ length: EVENTS }, (_, i) => ({
    key: `C${String(Math.floor(next() ** 2 * keys)).padStart(7, "0")}`,
    time: 1_700_000_000_000 + i,
    amount: Math.round(next() * 100_000) / 100,
  }));
}

type Event = ReturnType<typeof events>[number];

/** The operator behind its host code: keys interned, columns filled, one call per batch. */
function viaKernel(
  mode: OperatorMode,
  input: readonly Event[],
): { seconds: number; kernel: number } {
  const k = windowKernel(mode, SIZE, SIZE, 0);
  const ids = new Map<string, number>();
  let kernel = 0;
  let streamTime = -Infinity;
  const started = performance.now();
  for (let at = 0; at < input.length; at += BATCH) {
    const n = Math.min(BATCH, input.length - at);
    const c = k.prepare(n);
    for (let i = 0; i < n; i++) {
      const e = input[at + i];
      let id = ids.get(e.key);
      if (id === undefined) ids.set(e.key, id = ids.size);
      c.keys[i] = id;
      c.times[i] = e.time;
      c.values[i] = e.amount;
      c.streamTimes[i] = streamTime = Math.max(streamTime, e.time);
    }
    const t = performance.now();
    k.aggregate(n, false);
    kernel += performance.now() - t;
  }
  const seconds = (performance.now() - started) / 1000;
  k.release();
  return { seconds, kernel: kernel / 1000 };
}

/** What one would write without the operator: windows as objects in a Map by key string. */
function idiomatic(input: readonly Event[]): number {
  const windows = new Map<string, { count: number; sum: number; min: number; max: number }>();
  const closing = new Map<number, string[]>();
  let streamTime = -Infinity;
  const started = performance.now();
  for (const e of input) {
    if (e.time > streamTime) {
      streamTime = e.time;
      for (const [close, ids] of closing) {
        if (close > streamTime) continue;
        for (const id of ids) windows.delete(id);
        closing.delete(close);
      }
    }
    const start = e.time - (e.time % SIZE);
    const id = `${e.key}@${start}`;
    let w = windows.get(id);
    if (!w) {
      windows.set(id, w = { count: 0, sum: 0, min: Infinity, max: -Infinity });
      const list = closing.get(start + SIZE) ?? [];
      list.push(id);
      closing.set(start + SIZE, list);
    }
    w.count++;
    w.sum += e.amount;
    w.min = Math.min(w.min, e.amount);
    w.max = Math.max(w.max, e.amount);
  }
  return (performance.now() - started) / 1000;
}

// Memory with 1 M live keys, one window each, measured first (linear memory never shrinks): the
// WebAssembly operator's memory and the process's resident memory after it, against the same
// windows as objects in a Map.
{
  const KEYS = 1_000_000;
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  const rssBefore = Deno.memoryUsage().rss;
  const k = windowKernel("wasm", SIZE, SIZE, 0);
  for (let at = 0; at < KEYS; at += BATCH) {
    const c = k.prepare(BATCH);
    for (let i = 0; i < BATCH; i++) {
      c.keys[i] = at + i;
      c.times[i] = 1_700_000_000_000;
      c.values[i] = i;
      c.streamTimes[i] = 1_700_000_000_000;
    }
    k.aggregate(BATCH, false);
  }
  const rssAfter = Deno.memoryUsage().rss;
  const wasmBytes = wasmMemory.buffer.byteLength;
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  gc();
  const heapBefore = Deno.memoryUsage().heapUsed;
  const windows = new Map<string, { count: number; sum: number; min: number; max: number }>();
  for (let i = 0; i < KEYS; i++) {
    windows.set(`C${String(i).padStart(7, "0")}@0`, { count: 1, sum: i, min: i, max: i });
  }
  gc();
  const heapAfter = Deno.memoryUsage().heapUsed;
  console.log(
    `1 M live keys: ${k.liveWindows} windows in ${mb(wasmBytes)} MB of WebAssembly memory ` +
      `(process resident memory +${mb(rssAfter - rssBefore)} MB, now ${mb(rssAfter)} MB); ` +
      `as objects in a Map: +${mb(heapAfter - heapBefore)} MB of JS heap (${windows.size} entries)`,
  );
  k.release();
}

const rate = (seconds: number) => Math.round(EVENTS / seconds);
console.log(`window aggregation, ${EVENTS} events, tumbling 1 h windows, batches of ${BATCH}:`);
for (const keys of [10_000, 100_000, 1_000_000]) {
  const input = events(keys);
  const wasm = viaKernel("wasm", input);
  const ts = viaKernel("ts", input);
  const plain = idiomatic(input);
  console.log(
    `  ${keys} keys: wasm ${rate(wasm.seconds)}/s (kernel alone ${rate(wasm.kernel)}/s), ` +
      `ts reference ${rate(ts.seconds)}/s, idiomatic Map ${rate(plain)}/s; ` +
      `wasm ${(ts.seconds / wasm.seconds).toFixed(1)}× the reference, ${
        (plain / wasm.seconds).toFixed(1)
      }× idiomatic`,
  );
}

/** Decoded payments: a customer, a payment id, event times 100 ms apart, amounts, failures. */
function payments(keys: number) {
  let s = 7;
  const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
  return Array.from({ length: EVENTS }, (_, i) => ({
    key: `C${String(Math.floor(next() ** 2 * keys)).padStart(7, "0")}`,
    id: `P${i}`,
    time: 1_700_000_000_000 + i * 100,
    amount: next() < 0.01 ? 5_000 : Math.round(next() * 10_000) / 100,
    failed: next() < 0.1,
  }));
}

type Payment = ReturnType<typeof payments>[number];
const FRAUD_RULES = {
  rapidWindowMs: 300_000,
  rapidThreshold: 10,
  unusualMultiplier: 5,
  unusualMinHistory: 3,
  scoreWindowMs: 3_600_000,
};

/**
 * The operator behind the host code the store runs: customers and payment ids interned, columns
 * filled, one call per batch, the payments of each raised burst named.
 */
function viaFraudKernel(
  mode: OperatorMode,
  input: readonly Payment[],
): { seconds: number; kernel: number; alerts: number; scores: number } {
  const k = fraudKernel(mode, FRAUD_RULES);
  let scores = 0;
  const ids = new Map<string, number>();
  const handles: (string | undefined)[] = [];
  const free: number[] = [];
  let alerts = 0;
  let kernel = 0;
  const started = performance.now();
  for (let at = 0; at < input.length; at += BATCH) {
    const n = Math.min(BATCH, input.length - at);
    const c = k.prepare(n);
    for (let i = 0; i < n; i++) {
      const p = input[at + i];
      let key = ids.get(p.key);
      if (key === undefined) ids.set(p.key, key = ids.size);
      const h = free.pop() ?? handles.length;
      handles[h] = p.id;
      c.keys[i] = key;
      c.times[i] = p.time;
      c.amounts[i] = p.amount;
      c.failed[i] = p.failed ? 1 : 0;
      c.handles[i] = h;
    }
    const t = performance.now();
    const r = k.score(n);
    kernel += performance.now() - t;
    for (let row = 0; row < n * SCORE_ROW; row += SCORE_ROW) {
      const span = r.rows[row + SCORE.span];
      if (span > 0) {
        const from = r.rows[row + SCORE.spanAt];
        const named = Array.from(r.spans.subarray(from, from + span), (x) => handles[x]!);
        alerts += named.length > 0 ? 1 : 0;
      }
      if (r.rows[row + SCORE.raiseUnusual] === 1) alerts++;
      scores += r.rows[row + SCORE.score];
    }
    for (const x of r.freed) {
      handles[x] = undefined;
      free.push(x);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  k.release();
  return { seconds, kernel: kernel / 1000, alerts, scores };
}

/** What one would write without the operator: each customer's history as arrays in a Map. */
function idiomaticFraud(
  input: readonly Payment[],
): [seconds: number, alerts: number, scores: number] {
  const r = FRAUD_RULES;
  type History = {
    count: number;
    sum: number;
    inBurst: boolean;
    recent: [number, string][];
    scored: [number, boolean][];
    alerts: [number, string][];
  };
  const customers = new Map<string, History>();
  let alerts = 0;
  let scores = 0;
  const started = performance.now();
  for (const p of input) {
    let h = customers.get(p.key);
    if (!h) {
      customers.set(
        p.key,
        h = { count: 0, sum: 0, inBurst: false, recent: [], scored: [], alerts: [] },
      );
    }
    h.recent = h.recent.filter(([t]) => t > p.time - 2 * r.rapidWindowMs);
    let at = h.recent.length;
    while (at > 0 && h.recent[at - 1][0] > p.time) at--;
    h.recent.splice(at, 0, [p.time, p.id]);
    const span = h.recent.filter(([t]) => t >= p.time - r.rapidWindowMs && t <= p.time);
    h.scored = h.scored.filter(([t]) => t > p.time - r.scoreWindowMs);
    h.scored.push([p.time, p.failed]);
    h.alerts = h.alerts.filter(([t]) => t > p.time - r.scoreWindowMs);
    const burst = span.length > r.rapidThreshold;
    const rapid = burst && !h.inBurst;
    h.inBurst = burst;
    const unusual = h.count >= r.unusualMinHistory &&
      p.amount > r.unusualMultiplier * h.sum / h.count;
    if (rapid) h.alerts.push([p.time, "RAPID_PAYMENTS"]);
    if (unusual) h.alerts.push([p.time, "UNUSUAL_AMOUNT"]);
    const failures = h.scored.filter(([, f]) => f).length;
    const score = Math.min(
      100,
      (h.alerts.some(([, t]) => t === "RAPID_PAYMENTS") ? 50 : 0) +
        (h.alerts.some(([, t]) => t === "UNUSUAL_AMOUNT") ? 30 : 0) +
        20 * failures / h.scored.length,
    );
    if (rapid) alerts++;
    if (unusual) alerts++;
    scores += score;
    h.count++;
    h.sum += p.amount;
  }
  return [(performance.now() - started) / 1000, alerts, scores];
}

console.log(`fraud scoring, ${EVENTS} payments 100 ms apart, one call per ${BATCH}:`);
for (const keys of [10_000, 100_000, 1_000_000]) {
  const input = payments(keys);
  const wasm = viaFraudKernel("wasm", input);
  const ts = viaFraudKernel("ts", input);
  const [plain, plainAlerts, plainScores] = idiomaticFraud(input);
  const same = wasm.alerts === plainAlerts &&
    Math.abs(wasm.scores - plainScores) < 1e-6 * wasm.scores;
  console.log(
    `  ${keys} customers (${wasm.alerts} alerts${
      same ? ", as idiomatic" : `; idiomatic ${plainAlerts}`
    }): wasm ${rate(wasm.seconds)}/s (kernel alone ${rate(wasm.kernel)}/s), ` +
      `ts reference ${rate(ts.seconds)}/s, idiomatic Map ${rate(plain)}/s; wasm ${
        (ts.seconds / wasm.seconds).toFixed(1)
      }× the reference, ${(plain / wasm.seconds).toFixed(1)}× idiomatic`,
  );
}

/** Activities: a customer, an activity type, event times 1 ms apart (so sessions span the run). */
const TYPES = ["LOGIN", "VIEW", "SEARCH", "ADD_TO_CART", "PURCHASE", "SUPPORT_CALL", "LOGOUT"];
const GAP = 1_800_000;
const GRACE = 300_000;

/** Sessions behind their host code: keys and types interned, columns filled, one call a batch. */
function viaSessionKernel(
  mode: OperatorMode,
  input: readonly Event[],
): { seconds: number; kernel: number } {
  const k = sessionKernel(mode, GAP, GRACE, TYPES.length, false);
  const ids = new Map<string, number>();
  const types = new Map(TYPES.map((t, i) => [t, i]));
  let kernel = 0;
  let streamTime = -Infinity;
  const started = performance.now();
  for (let at = 0; at < input.length; at += BATCH) {
    const n = Math.min(BATCH, input.length - at);
    const c = k.prepare(n);
    for (let i = 0; i < n; i++) {
      const e = input[at + i];
      let id = ids.get(e.key);
      if (id === undefined) ids.set(e.key, id = ids.size);
      c.keys[i] = id;
      c.times[i] = e.time;
      c.values[i] = 1;
      c.categories[i] = types.get(TYPES[(at + i) % TYPES.length])!;
      c.streamTimes[i] = streamTime = Math.max(streamTime, e.time);
    }
    const t = performance.now();
    k.aggregate(n);
    kernel += performance.now() - t;
  }
  const seconds = (performance.now() - started) / 1000;
  k.release();
  return { seconds, kernel: kernel / 1000 };
}

/** Without the operator: each customer's sessions as objects in a Map, counts by type. */
function idiomaticSessions(input: readonly Event[]): number {
  type Session = { start: number; end: number; count: number; counts: Record<string, number> };
  const sessions = new Map<string, Session[]>();
  const started = performance.now();
  input.forEach((e, i) => {
    const type = TYPES[i % TYPES.length];
    const list = sessions.get(e.key) ?? [];
    const near = list.filter((s) => s.start <= e.time + GAP && s.end >= e.time - GAP);
    let s: Session;
    if (near.length === 0) {
      s = { start: e.time, end: e.time, count: 0, counts: {} };
      list.push(s);
      sessions.set(e.key, list);
    } else {
      s = near[0];
      for (const other of near.slice(1)) {
        s.count += other.count;
        for (const [t, n] of Object.entries(other.counts)) s.counts[t] = (s.counts[t] ?? 0) + n;
        list.splice(list.indexOf(other), 1);
      }
      s.start = Math.min(s.start, e.time);
      s.end = Math.max(s.end, e.time);
    }
    s.count++;
    s.counts[type] = (s.counts[type] ?? 0) + 1;
  });
  return (performance.now() - started) / 1000;
}

console.log(
  `sessions, ${EVENTS} activities 1 ms apart, 30 min gap, 7 types counted, one call per ${BATCH}:`,
);
for (const keys of [10_000, 100_000, 1_000_000]) {
  const input = events(keys);
  const wasm = viaSessionKernel("wasm", input);
  const ts = viaSessionKernel("ts", input);
  const plain = idiomaticSessions(input);
  console.log(
    `  ${keys} keys: wasm ${rate(wasm.seconds)}/s (kernel alone ${rate(wasm.kernel)}/s), ` +
      `ts reference ${rate(ts.seconds)}/s, idiomatic Map ${rate(plain)}/s; ` +
      `wasm ${(ts.seconds / wasm.seconds).toFixed(1)}× the reference, ${
        (plain / wasm.seconds).toFixed(1)
      }× idiomatic`,
  );
}
