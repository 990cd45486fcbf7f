/**
 * Customer activity: per customer, activity counts per type and an activity score in 5-minute
 * tumbling windows, and sessions separated by 30 minutes of inactivity: the window and session
 * operators' statistics, with the activity type as the category.
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

/** An activity event's id: its `eventId` if it has one, else customer, type and time. */
function eventId(e: events.CustomerActivityEvent): string {
  return typeof e.eventId === "string"
    ? e.eventId
    : `${e.customerId}:${e.activityType}:${e.timestamp}`;
}

/** The id of the event behind a result, when it has one (a result on close has none). */
const eventIds = (e: events.CustomerActivityEvent | null) => e ? [eventId(e)] : [];

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
          eventIds: eventIds(w.event),
        },
      }))
      .to(o.aggregatedTopic);

    activity.windowedBy(SessionWindows.ofInactivityGapAndGrace(o.sessionGapMs, o.sessionGraceMs))
      // An extended session keeps its start and is just updated; only absorbed ones are retracted.
      .stats(() => 1, {
        store: "customer-sessions",
        retract: "merged",
        category: (e) => e.activityType,
      })
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
            events: s.count,
            counts: s.counts,
            state: "ACTIVE",
            eventIds: eventIds(s.event),
          },
      }))
      .to(o.sessionsTopic);
  },
});
