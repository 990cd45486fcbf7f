/**
 * Customer activity: per customer, activity counts per type and an activity score in 5-minute
 * tumbling windows (the window operator's statistics, the activity type as category), and
 * sessions separated by 30 minutes of inactivity.
 *
 * Activity score = Σ over the window's events of the weight of their activityType
 * (`scoreWeights`, unknown types weigh `defaultWeight`).
 */
import { definePlugin, events, SessionWindows, TimeWindows, z } from "../../pipeline/mod.ts";

const Options = z.strictObject({
  inputTopic: z.string().default("bss.customer.events"),
  aggregatedTopic: z.string().default("bss.customer.activity.aggregated"),
  sessionsTopic: z.string().default("bss.customer.sessions"),
  windowMs: z.number().int().positive().default(300_000),
  windowGraceMs: z.number().int().nonnegative().default(60_000),
  sessionGapMs: z.number().int().positive().default(1_800_000),
  sessionGraceMs: z.number().int().nonnegative().default(300_000),
  scoreWeights: z.record(z.string(), z.number()).default({
    LOGIN: 1,
    LOGOUT: 0,
    VIEW: 1,
    SEARCH: 2,
    ADD_TO_CART: 5,
    PURCHASE: 10,
    SUPPORT_CALL: 3,
  }),
  defaultWeight: z.number().default(1),
});

/**
 * The event behind a session's latest update, named in the output that update emits.
 * Symbol-keyed, so it stays in memory but is never persisted (JSON skips symbol keys): every
 * update is emitted at once, so a restored aggregate needs none.
 */
const LAST_EVENT = Symbol("lastEvent");

interface Session {
  events: number;
  counts: Record<string, number>;
  [LAST_EVENT]?: string;
}

const eventIds = (agg: { [LAST_EVENT]?: string }) => agg[LAST_EVENT] ? [agg[LAST_EVENT]] : [];

/** An activity event's id: its `eventId` if it has one, else customer, type and time. */
function eventId(e: events.CustomerActivityEvent): string {
  return typeof e.eventId === "string"
    ? e.eventId
    : `${e.customerId}:${e.activityType}:${e.timestamp}`;
}

/** Counts one more of `type`, in place. */
function countOne(counts: Record<string, number>, type: string): void {
  counts[type] = (counts[type] ?? 0) + 1;
}

function addCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, n] of Object.entries(b)) out[k] = (out[k] ?? 0) + n;
  return out;
}

export default definePlugin({
  name: "customer_activity",
  options: Options,
  build(b, o) {
    const weight = (type: string) => o.scoreWeights[type] ?? o.defaultWeight;
    const activity = b.stream(o.inputTopic, {
      schema: events.CustomerActivityEvent,
      keyField: "customerId",
    })
      .groupByKey();

    // The score is the sum of the events' weights; the counts are per activity type.
    activity.windowedBy(TimeWindows.ofSizeAndGrace(o.windowMs, o.windowGraceMs))
      .stats((e) => weight(e.activityType), {
        store: "customer-activity-5m",
        category: (e) => e.activityType,
      })
      .toStream()
      .map((wk, w) => ({
        key: wk.key,
        value: {
          customerId: wk.key,
          windowStart: wk.window.start,
          windowEnd: wk.window.end,
          counts: w.counts,
          totalEvents: w.count,
          activityScore: w.sum,
          eventIds: w.event ? [eventId(w.event)] : [],
        },
      }))
      .to(o.aggregatedTopic);

    activity.windowedBy(SessionWindows.ofInactivityGapAndGrace(o.sessionGapMs, o.sessionGraceMs))
      .aggregate<Session>(
        () => ({ events: 0, counts: {} }),
        (_k, e, s) => {
          s.events++;
          countOne(s.counts, e.activityType);
          s[LAST_EVENT] = eventId(e);
          return s;
        },
        // Merging into the empty start aggregate (every extension does) gives the other one.
        (_k, a, b) =>
          a.events === 0 ? b : {
            events: a.events + b.events,
            counts: addCounts(a.counts, b.counts),
            [LAST_EVENT]: b[LAST_EVENT] ?? a[LAST_EVENT],
          },
        // An extended session keeps its start and is just updated; only absorbed ones are retracted.
        { store: "customer-sessions", retract: "merged" },
      )
      .toStream()
      .map((wk, s) => ({
        key: wk.key,
        // A session absorbed into another (by a bridging event) is retracted: state MERGED.
        value: s === null
          ? {
            customerId: wk.key,
            sessionStart: wk.window.start,
            sessionEnd: wk.window.end,
            state: "MERGED",
          }
          : {
            customerId: wk.key,
            sessionStart: wk.window.start,
            sessionEnd: wk.window.end,
            durationMs: wk.window.end - wk.window.start,
            events: s.events,
            counts: s.counts,
            state: "ACTIVE",
            eventIds: eventIds(s),
          },
      }))
      .to(o.sessionsTopic);
  },
});
