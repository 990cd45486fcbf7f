/** Interest profiles and top lists as pure functions over plain JSON state. */
import type { events } from "../../pipeline/mod.ts";

export interface Profile {
  /** Category → [count, last event time, order of last update]. */
  categories: Record<string, [number, number, number]>;
  /** Updates so far (orders updates with equal event times). */
  updates: number;
}

/** Counts one interest in a category, in place (no copy per event), and returns the profile. */
export function withInterest(profile: Profile, category: string, time: number): Profile {
  const updates = ++profile.updates;
  const entry = profile.categories[category];
  if (entry) {
    entry[0]++;
    entry[1] = Math.max(entry[1], time);
    entry[2] = updates;
  } else {
    profile.categories[category] = [1, time, updates];
  }
  return profile;
}

/** A view's id: its `eventId` if it has one, else customer, product and time. */
export function viewEventId(view: events.ProductViewEvent): string {
  return typeof view.eventId === "string"
    ? view.eventId
    : `${view.customerId}:${view.productId}:${view.timestamp}`;
}

/** The top `n` categories by count; ties go to the most recently seen. */
export function topCategories(profile: Profile, n: number): string[] {
  // Insertion into a list of at most n (n is small): no array per category, no full sort.
  const top: string[] = [];
  const stats: [number, number, number][] = [];
  for (const category in profile.categories) {
    const c = profile.categories[category];
    let i = top.length;
    while (i > 0 && ranksAbove(c, stats[i - 1])) i--;
    if (i >= n) continue;
    top.splice(i, 0, category);
    stats.splice(i, 0, c);
    if (top.length > n) {
      top.pop();
      stats.pop();
    }
  }
  return top;
}

/** By count, then last event time, then order of last update. */
function ranksAbove(a: [number, number, number], b: [number, number, number]): boolean {
  return a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2];
}

export interface TopList {
  windowStart: number;
  windowEnd: number;
  products: { productId: string; views: number }[];
}

function sameProducts(
  a: readonly { productId: string; views: number }[],
  b: readonly { productId: string; views: number }[],
): boolean {
  return a.length === b.length &&
    a.every((p, i) => p.productId === b[i].productId && p.views === b[i].views);
}

/**
 * Folds one product's new view count into the window's top list; `changed` says whether the
 * list differs from before. Counts only grow within a window, so a product outside the list can
 * enter only through an update of its own count.
 */
export function updateTopList(
  top: TopList | undefined,
  productId: string,
  views: number,
  window: { start: number; end: number },
  size: number,
): { top: TopList; changed: boolean } {
  const before = top?.windowStart === window.start ? top.products : [];
  const list = before.filter((p) => p.productId !== productId);
  list.push({ productId, views });
  list.sort((a, b) => b.views - a.views || (a.productId < b.productId ? -1 : 1));
  const products = list.slice(0, size);
  return {
    top: { windowStart: window.start, windowEnd: window.end, products },
    changed: !sameProducts(products, before),
  };
}
