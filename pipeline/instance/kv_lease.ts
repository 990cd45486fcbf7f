import {
  type InstanceHolder,
  type InstanceLock,
  StateLockedError,
  thisInstance,
} from "./instance_lock.ts";

/** Options of `leaseSharedState`. */
export interface KvLeaseOptions {
  /** How often the holder renews the lease (default 2 s). */
  readonly renewMs?: number;
  /** A lease not renewed for this long is taken over (default 10 s). */
  readonly expireMs?: number;
}

interface StoredLease extends InstanceHolder {
  readonly renewedAt: number;
}

/**
 * Leases a shared state (a KV Connect server, which no file lock reaches): a KV entry the holder
 * renews; another instance takes it over only once it has not been renewed for `expireMs`, so
 * after a crash the next start waits that long at most.
 */
export async function leaseSharedState(
  kv: Deno.Kv,
  instanceId: string,
  location: string,
  options: KvLeaseOptions = {},
): Promise<InstanceLock> {
  const renewMs = options.renewMs ?? 2_000;
  const expireMs = options.expireMs ?? 10_000;
  const key = ["lease"];
  const holder = thisInstance(instanceId);
  for (;;) {
    const current = await kv.get<StoredLease>(key);
    const other = current.value;
    if (other && Date.now() - other.renewedAt <= expireMs) {
      throw new StateLockedError(
        other,
        location,
        ` (its lease was renewed ${
          Date.now() - other.renewedAt
        } ms ago; it is taken over once not renewed for ${expireMs} ms)`,
      );
    }
    const lease: StoredLease = { ...holder, renewedAt: Date.now() };
    if ((await kv.atomic().check(current).set(key, lease).commit()).ok) break;
  }
  const renew = async () => {
    try {
      await kv.set(key, { ...holder, renewedAt: Date.now() });
    } catch {
      // The KV is closing; release() follows.
    }
  };
  const timer = setInterval(renew, renewMs);
  return {
    holder,
    async release() {
      clearInterval(timer);
      const current = await kv.get<StoredLease>(key);
      if (current.value?.instanceId === holder.instanceId) {
        await kv.atomic().check(current).delete(key).commit();
      }
    },
  };
}
