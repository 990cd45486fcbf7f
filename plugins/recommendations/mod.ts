/**
 * Recommendations: a per-customer interest profile counts categories from product views and
 * from activities that name a category. Every product view (after it is added to the profile)
 * emits the customer's top categories by count, ties broken by the most recent. Trending: view
 * counts per product in 1-hour tumbling windows; each change of the window's top list is written
 * to the trending topic.
 */
import { definePlugin, events, TimeWindows, z } from "../../pipeline/mod.ts";
import {
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

    // A recommendation follows every view: a per-event step with the customer's profile.
    const profiles = b.keyValueStore<Profile>("interest-profiles");
    views.mapValues((v, _k, m): Interest => ({ category: v.category, view: v, time: m.timestamp }))
      .merge(
        activities.mapValues((a, _k, m): Interest => ({
          category: a.category!,
          view: null,
          time: m.timestamp,
        })),
      )
      .processValues([profiles], (i, customerId, ctx) => {
        const store = ctx.store(profiles);
        const profile = withInterest(
          store.get(customerId) ?? { categories: {}, updates: 0 },
          i.category,
          i.time,
        );
        store.put(customerId, profile);
        if (!i.view) return [];
        return [{
          customerId,
          productId: i.view.productId,
          category: i.view.category,
          recommendations: topCategories(profile, o.topCategories),
          confidence: o.confidence,
          algorithm: o.algorithm,
          eventIds: [viewEventId(i.view)],
        }];
      })
      .to(o.recommendationsTopic);

    // Trending: views counted per product and hour (coalesced per commit by the record cache),
    // then each window's top list, written whenever it changes. Only the view's id crosses the
    // repartition topic.
    const tops = b.keyValueStore<TopList>("trending-top");
    views.map((_k, v) => ({ key: v.productId, value: viewEventId(v) }))
      .groupByKey()
      .windowedBy(TimeWindows.ofSizeAndGrace(o.trendingWindowMs, o.trendingGraceMs))
      .stats(() => 1, { store: "product-views-1h" })
      .toStream()
      .map((wk, c) => ({
        key: String(wk.window.start),
        value: { productId: wk.key, views: c.count, window: wk.window, eventId: c.event },
      }))
      .processValues([tops], (u, windowStart, ctx) => {
        const store = ctx.store(tops);
        const { top, changed } = updateTopList(
          store.get(windowStart),
          u.productId,
          u.views,
          u.window,
          o.trendingSize,
        );
        if (!changed) return [];
        store.put(windowStart, top);
        return [{
          windowStart: top.windowStart,
          windowEnd: top.windowEnd,
          products: top.products,
          eventIds: u.eventId ? [u.eventId] : [],
        }];
      })
      .to(o.trendingTopic);
  },
});
