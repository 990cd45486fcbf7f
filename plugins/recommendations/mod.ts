/**
 * Recommendations: a per-customer interest profile counts categories from product views and
 * from activities that name a category. Every product view (after it is added to the profile)
 * emits the customer's top categories by count, ties broken by the most recent. Trending: view
 * counts per product in 1-hour tumbling windows; each change of the window's top list is written
 * to the trending topic.
 */
import { definePlugin, events, TimeWindows, z } from "../../pipeline/mod.ts";
import {
  FRESH_VIEW,
  type Profile,
  topCategories,
  type TopList,
  updateTopList,
  viewEventId,
  withInterest,
} from "./profile.ts";

const Options = z.strictObject({
  viewsTopic: z.string().default("bss.product.views"),
  activityTopic: z.string().default("bss.customer.events"),
  recommendationsTopic: z.string().default("bss.recommendations"),
  trendingTopic: z.string().default("bss.products.trending"),
  topCategories: z.number().int().positive().default(3),
  confidence: z.number().min(0).max(1).default(0.85),
  algorithm: z.string().default("category-affinity-v1"),
  trendingWindowMs: z.number().int().positive().default(3_600_000),
  trendingGraceMs: z.number().int().nonnegative().default(300_000),
  trendingSize: z.number().int().positive().default(10),
});

/** The view behind the latest count: in memory for the top-list update it emits, never persisted. */
const LAST_VIEW_ID = Symbol("lastViewId");
type ProductViews = { views: number; [LAST_VIEW_ID]?: string };
type Interest = { category: string; view: events.ProductViewEvent | null; time: number };

export default definePlugin({
  name: "recommendations",
  options: Options,
  build(b, o) {
    const views = b.stream(o.viewsTopic, {
      schema: events.ProductViewEvent,
      keyField: "customerId",
    });
    const activities = b.stream(o.activityTopic, {
      schema: events.CustomerActivityEvent,
      keyField: "customerId",
    })
      .filter((_k, a) => typeof a.category === "string" && a.category !== "");

    views.mapValues((v, _k, m): Interest => ({ category: v.category, view: v, time: m.timestamp }))
      .merge(
        activities.mapValues((a, _k, m): Interest => ({
          category: a.category!,
          view: null,
          time: m.timestamp,
        })),
      )
      .groupByKey()
      .aggregate<Profile>(
        () => ({ categories: {}, updates: 0 }),
        (_k, i, p) => withInterest(p, i.category, i.time, i.view),
        { store: "interest-profiles" },
      )
      .toStream()
      .filter((_k, p) => p[FRESH_VIEW] !== undefined)
      .mapValues((p, customerId) => ({
        customerId,
        productId: p[FRESH_VIEW]!.productId,
        category: p[FRESH_VIEW]!.category,
        recommendations: topCategories(p, o.topCategories),
        confidence: o.confidence,
        algorithm: o.algorithm,
        eventIds: [p[FRESH_VIEW]!.eventId],
      }))
      .to(o.recommendationsTopic);

    // Only the view's id crosses the repartition topic.
    views.map((_k, v) => ({ key: v.productId, value: viewEventId(v) }))
      .groupByKey()
      .windowedBy(TimeWindows.ofSizeAndGrace(o.trendingWindowMs, o.trendingGraceMs))
      .aggregate<ProductViews>(
        () => ({ views: 0 }),
        (_k, id, c) => ({ views: c.views + 1, [LAST_VIEW_ID]: id }),
        { store: "product-views-1h" },
      )
      .toStream()
      .map((wk, c) => ({
        key: String(wk.window.start),
        value: {
          productId: wk.key,
          views: c.views,
          window: wk.window,
          eventId: c[LAST_VIEW_ID] ?? null,
        },
      }))
      .groupByKey()
      .aggregate<TopList>(
        () => ({ windowStart: 0, windowEnd: 0, products: [], changed: false, lastEventId: null }),
        (_k, u, top) =>
          updateTopList(top, u.productId, u.views, u.window, o.trendingSize, u.eventId),
        { store: "trending-top" },
      )
      .toStream()
      .filter((_k, top) => top.changed)
      .mapValues((top) => ({
        windowStart: top.windowStart,
        windowEnd: top.windowEnd,
        products: top.products,
        eventIds: top.lastEventId ? [top.lastEventId] : [],
      }))
      .to(o.trendingTopic);
  },
});
