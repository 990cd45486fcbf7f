import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { PersistentMap } from "./persistent_map.ts";
import { windowCodec, WindowStore } from "./window_store.ts";
import { listBlobs } from "../kv/blob.ts";

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

Deno.test("a reloaded window store closes the windows it was given; windows are stored compactly", async () => {
  const kv = await Deno.openKv(":memory:");
  const map = await PersistentMap.load(kv, ["w"], { codec: windowCodec });
  const store = new WindowStore<string>("w", map);
  store.put("k|1", 1795685081526, 1795685381526, "x", 1795685441526); // a key holding the separator
  store.put("k|1", 1795685381526, 1795685681526, "y", 1795685741526);
  const op = kv.atomic();
  for (const m of map.takeMutations()) m.value === null ? op.delete(m.key) : op.set(m.key, m.value);
  await op.commit();
  const [delta] = await Array.fromAsync(listBlobs(kv, ["w", "d"]));
  assertEquals(
    delta.text,
    '[["1795685081526|k|1",[300000,60000,"x"]],["1795685381526|k|1",[300000,60000,"y"]]]',
  );
  const reloaded = new WindowStore<string>(
    "w",
    await PersistentMap.load(kv, ["w"], { codec: windowCodec }),
  );
  assertEquals(reloaded.fetch("k|1").map((w) => [w.start, w.end, w.value]), [
    [1795685081526, 1795685381526, "x"],
    [1795685381526, 1795685681526, "y"],
  ]);
  assertEquals(reloaded.closeUpTo(1795685441526).map((w) => w.value), ["x"]);
  assertEquals(reloaded.fetch("k|1").map((w) => w.value), ["y"]);
  kv.close();
});
