import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { z, type ZodType } from "zod";
import * as events from "../bss_events.ts";
import { TrafficModel } from "../../plugins/traffic_simulator/traffic_model.ts";
import { fastAccept } from "./fast_accept.ts";

const TOPICS = { customers: "c", activity: "a", orders: "o", payments: "p", views: "v" };
const SCHEMAS: [string, ZodType][] = [
  ["c", events.CustomerInfo],
  ["a", events.CustomerActivityEvent],
  ["o", events.OrderEvent],
  ["p", events.PaymentEvent],
  ["v", events.ProductViewEvent],
];

/** Valid events of every type, as the simulator writes them. */
function sampleEvents(): Map<string, Record<string, unknown>[]> {
  const model = new TrafficModel({
    seed: 7,
    customers: 50,
    products: 20,
    fraudBurstChance: 0.05,
    unusualAmountShare: 0.05,
    demandSpikeChance: 0.05,
    malformedShare: 0,
    topics: TOPICS,
  });
  const out = new Map<string, Record<string, unknown>[]>(SCHEMAS.map(([t]) => [t, []]));
  for (const batch of model.customerInfo(0)) {
    for (const r of batch.get("c") ?? []) out.get("c")!.push(asJson(r.value));
  }
  for (let t = 1; t <= 40; t++) {
    for (const [topic, records] of model.tick(25, 1_700_000_000_000 + t * 1000)) {
      for (const r of records) out.get(topic)!.push(asJson(r.value));
    }
  }
  return out;
}

const asJson = (v: unknown) => JSON.parse(JSON.stringify(v)) as Record<string, unknown>;

/** Values that break (or just change) one field, including edge cases of each check. */
const REPLACEMENTS: unknown[] = [
  null,
  "",
  " ",
  "x",
  "LOGIN",
  "login",
  "GOLD",
  "SUCCESS",
  "CREATED",
  0,
  -1,
  -0.01,
  1.5,
  true,
  [],
  {},
  "2026-01-01T00:00:00Z",
  "2026-01-01T00:00:00.123+02:00",
  "2026-01-01T00:00:00",
  "2026-02-30T00:00:00Z",
  "2026-13-01T00:00:00Z",
  "1700000000000",
  "😀",
];

function mutations(event: Record<string, unknown>): unknown[] {
  const out: unknown[] = [event, { ...event, extra: { nested: [1, "two"] } }, null, "text", 42, []];
  for (const field of Object.keys(event)) {
    const { [field]: _, ...without } = event;
    out.push(without);
    for (const v of REPLACEMENTS) out.push({ ...event, [field]: v });
  }
  return out;
}

Deno.test("every BSS event schema has a fast accept, and it accepts every valid simulated event", () => {
  const samples = sampleEvents();
  for (const [topic, schema] of SCHEMAS) {
    const accept = fastAccept(schema);
    assertEquals(accept !== null, true, `no fast accept for topic ${topic}`);
    const valid = samples.get(topic)!;
    assertEquals(valid.length > 0, true);
    for (const e of valid) assertEquals([topic, accept!(e)], [topic, true]);
  }
});

Deno.test("the fast accept never accepts what zod rejects or would change", () => {
  let accepted = 0;
  let rejected = 0;
  const samples = sampleEvents();
  for (const [topic, schema] of SCHEMAS) {
    const accept = fastAccept(schema)!;
    for (const event of samples.get(topic)!.slice(0, 40)) {
      for (const value of mutations(event)) {
        const zod = schema.safeParse(value);
        if (accept(value)) {
          accepted++;
          assertEquals(zod.success, true, `accepted but zod rejects: ${JSON.stringify(value)}`);
          assertEquals(zod.data, value);
        } else {
          rejected++;
        }
      }
    }
  }
  // Both sides of the comparison were exercised.
  assertEquals(accepted > 1000 && rejected > 1000, true, `${accepted} / ${rejected}`);
});

Deno.test("schemas whose JSON Schema would say less than zod checks get no fast accept", () => {
  const inexact: ZodType[] = [
    z.string().refine((s) => s.length > 2),
    z.object({ a: z.string().default("x") }),
    z.object({ a: z.string().transform((s) => s.trim()) }),
    z.string().regex(/abc/i),
    z.string().max(3), // lengths: UTF-16 units in zod, code points in JSON Schema
    z.email(),
    z.looseObject({ a: z.number() }).refine((o) => o.a > 1),
    z.record(z.string(), z.number()),
  ];
  for (const schema of inexact) assertEquals(fastAccept(schema), null);
});

Deno.test("an object that strips unknown keys is fast-accepted only without them", () => {
  const schema = z.object({ a: z.number().positive(), b: z.string().min(1).optional() });
  const accept = fastAccept(schema)!;
  assertEquals(accept({ a: 1, b: "x" }), true);
  assertEquals(accept({ a: 1 }), true);
  assertEquals(accept({ a: 1, c: 2 }), false); // zod would drop c: left to zod
  assertEquals(accept({ a: 0 }), false);
  assertEquals(accept({ a: 1, b: "" }), false);
});
