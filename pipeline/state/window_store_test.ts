import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { PersistentMap } from "./persistent_map.ts";
import { WindowStore } from "./window_store.ts";

Deno.test("windows close once, at their latest close time, whatever moves and re-creations came before", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = new WindowStore<number>("w", await PersistentMap.load(kv, ["w"]));
  store.put("a", 0, 10, 1, 20);
  store.put("a", 0, 10, 2, 20); // same close time: updated in place
  store.put("b", 0, 10, 1, 20);
  store.put("b", 0, 15, 2, 25); // moved to a later close time
  store.put("c", 5, 5, 1, 20);
  store.delete("c", 5);
  store.put("c", 5, 5, 9, 20); // deleted and re-created with the same close time
  store.put("d", 0, 5, 1, 20);
  store.delete("d", 0); // gone for good
  assertEquals(store.closeUpTo(19), []);
  assertEquals(store.closeUpTo(20).map((w) => [w.key, w.start, w.value]), [["a", 0, 2], [
    "c",
    5,
    9,
  ]]);
  assertEquals(store.closeUpTo(24), []);
  assertEquals(store.closeUpTo(30).map((w) => [w.key, w.end, w.value]), [["b", 15, 2]]);
  assertEquals(store.size, 0);
  kv.close();
});

Deno.test("a reloaded window store closes the windows it was given", async () => {
  const kv = await Deno.openKv(":memory:");
  const map = await PersistentMap.load<never>(kv, ["w"]);
  const store = new WindowStore<string>("w", map as never);
  store.put("k", 0, 10, "x", 10);
  store.put("k", 10, 20, "y", 20);
  const op = kv.atomic();
  for (const m of map.takeMutations()) m.value === null ? op.delete(m.key) : op.set(m.key, m.value);
  await op.commit();
  const reloaded = new WindowStore<string>("w", await PersistentMap.load(kv, ["w"]));
  assertEquals(reloaded.fetch("k").map((w) => w.value), ["x", "y"]);
  assertEquals(reloaded.closeUpTo(15).map((w) => w.value), ["x"]);
  assertEquals(reloaded.fetch("k").map((w) => w.value), ["y"]);
  kv.close();
});
