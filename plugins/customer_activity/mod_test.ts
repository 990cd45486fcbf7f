import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TestDriver } from "../../pipeline/testing/mod.ts";
import activity from "./mod.ts";

const T0 = Date.parse("2026-11-26T10:00:00Z");
const MIN = 60_000;
const event = (customerId: string, activityType: string, at: number) => ({
  key: customerId,
  value: { customerId, activityType, timestamp: at, eventId: `${activityType}-${at}` },
});

/** Session updates as [state, start, end (relative to T0), events]. */
function sessionRows(d: TestDriver): unknown[][] {
  return d.output<Record<string, unknown>>("bss.customer.sessions").readValues().map((s) => [
    s.state,
    (s.sessionStart as number) - T0,
    (s.sessionEnd as number) - T0,
    s.events ?? null,
  ]);
}

Deno.test("5-minute windows count activity types and score them with the configured weights", async () => {
  const d = await TestDriver.create({
    plugins: [{ plugin: activity }],
    topics: { "bss.customer.events": 3 },
  });
  await d.input("bss.customer.events").pipeMany([
    event("C1", "LOGIN", T0),
    event("C1", "SEARCH", T0 + MIN),
    event("C1", "ADD_TO_CART", T0 + 2 * MIN),
    event("C1", "PURCHASE", T0 + 3 * MIN),
    event("C1", "WISHLIST", T0 + 4 * MIN), // unknown type: default weight 1
  ]);
  const windows = d.output<Record<string, unknown>>("bss.customer.activity.aggregated")
    .readValues();
  assertEquals(windows[windows.length - 1], {
    customerId: "C1",
    windowStart: T0,
    windowEnd: T0 + 5 * MIN,
    counts: { LOGIN: 1, SEARCH: 1, ADD_TO_CART: 1, PURCHASE: 1, WISHLIST: 1 },
    totalEvents: 5,
    activityScore: 1 + 2 + 5 + 10 + 1,
    eventIds: [`WISHLIST-${T0 + 4 * MIN}`],
  });
  d.close();
});

Deno.test("sessions split after 30 minutes of inactivity and merge when a late event bridges them", async () => {
  // Grace 30 min keeps the first session open (until end + gap + grace) when the bridge arrives.
  const d = await TestDriver.create({
    plugins: [{ plugin: activity, options: { sessionGraceMs: 30 * MIN } }],
  });
  const input = d.input("bss.customer.events");
  await input.pipe("C1", event("C1", "LOGIN", T0).value);
  await input.pipe("C1", event("C1", "LOGOUT", T0 + 50 * MIN).value); // new session
  await input.pipe("C1", event("C1", "VIEW", T0 + 25 * MIN).value); // bridges both
  assertEquals(
    sessionRows(d),
    [
      ["ACTIVE", 0, 0, 1],
      ["ACTIVE", 50 * MIN, 50 * MIN, 1],
      ["MERGED", 50 * MIN, 50 * MIN, null], // absorbed; the session starting at 0 is updated
      ["ACTIVE", 0, 50 * MIN, 3],
    ],
  );
  d.close();
});

Deno.test("with the default 5-minute grace, a bridging event after the first session closed only extends the second", async () => {
  const d = await TestDriver.create({ plugins: [{ plugin: activity }] });
  const input = d.input("bss.customer.events");
  await input.pipe("C1", event("C1", "LOGIN", T0).value);
  await input.pipe("C1", event("C1", "LOGOUT", T0 + 50 * MIN).value); // closes [0,0] at 0 + 30 + 5 min
  await input.pipe("C1", event("C1", "VIEW", T0 + 25 * MIN).value);
  assertEquals(
    sessionRows(d),
    [
      ["ACTIVE", 0, 0, 1],
      ["ACTIVE", 50 * MIN, 50 * MIN, 1],
      ["MERGED", 50 * MIN, 50 * MIN, null],
      ["ACTIVE", 25 * MIN, 50 * MIN, 2],
    ],
  );
  d.close();
});
