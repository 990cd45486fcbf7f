import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type Profile, topCategories } from "./profile.ts";

/** The definition: every category sorted by count, then last event time, then last update. */
function byFullSort(profile: Profile, n: number): string[] {
  return Object.entries(profile.categories)
    .sort(([, a], [, b]) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2])
    .slice(0, n)
    .map(([c]) => c);
}

Deno.test("the top categories equal a full sort by count, time and update order", () => {
  let seed = 42;
  const next = (m: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % m;
  for (let round = 0; round < 500; round++) {
    const categories: Profile["categories"] = {};
    const count = next(12);
    // Few distinct counts and times, so ties on both are common.
    for (let i = 0; i < count; i++) categories[`c${i}`] = [1 + next(4), next(3), i];
    const profile: Profile = { categories, updates: count };
    for (const n of [1, 3, 5]) assertEquals(topCategories(profile, n), byFullSort(profile, n));
  }
});
