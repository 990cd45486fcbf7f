import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { InstanceLease, LeaseHeldError } from "./instance_lease.ts";

Deno.test("a second instance on the same state is refused while the first holds the lease", async () => {
  const kv = await Deno.openKv(":memory:");
  const first = await InstanceLease.acquire(kv, "app", "one", "data/state.kv");
  await rejects(InstanceLease.acquire(kv, "app", "two", "data/state.kv"), (e: Error) => {
    assertEquals(e instanceof LeaseHeldError, true);
    assertEquals(
      e.message,
      `Another pipeline instance (pid ${Deno.pid} on ${Deno.hostname()}) is running on data/state.kv. ` +
        `Stop it first, or give this instance its own "state" in the config.`,
    );
    return true;
  });
  const other = await InstanceLease.acquire(kv, "another-app", "three", "data/state.kv");
  await other.release();
  await first.release();
  const again = await InstanceLease.acquire(kv, "app", "two", "data/state.kv");
  await again.release();
  kv.close();
});

Deno.test("a lease whose process is gone, or that went stale, is taken over at once", async () => {
  const kv = await Deno.openKv(":memory:");
  const host = Deno.hostname();
  const child = new Deno.Command("true").spawn();
  const { success } = await child.status; // an exited process: like one killed with -9
  assertEquals(success, true);
  await kv.set(["lease", "app"], {
    instanceId: "dead",
    pid: child.pid,
    host,
    renewedAt: Date.now(),
  });
  const taken = await InstanceLease.acquire(kv, "app", "new", "state");
  assertEquals(taken.holder.instanceId, "new");
  await taken.release();
  await kv.set(["lease", "app"], {
    instanceId: "far",
    pid: 1,
    host: "elsewhere",
    renewedAt: Date.now() - 60_000,
  });
  const stale = await InstanceLease.acquire(kv, "app", "newer", "state");
  await stale.release();
  kv.close();
});
