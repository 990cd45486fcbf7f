/**
 * One pipeline instance per state: a lease in KV that the running instance renews. A second
 * instance on the same state stops with a clear message instead of corrupting offsets and state.
 * A lease whose holder is gone (not renewed for `staleMs`, or its process no longer exists on
 * this host) is taken over, so a restart after a crash does not wait.
 */
export interface LeaseHolder {
  readonly instanceId: string;
  readonly pid: number;
  readonly host: string;
  readonly renewedAt: number;
}

/** Raised when another live instance holds the lease. */
export class LeaseHeldError extends Error {
  constructor(readonly holder: LeaseHolder, location: string) {
    super(
      `Another pipeline instance (pid ${holder.pid} on ${holder.host}) is running on ${location}. ` +
        `Stop it first, or give this instance its own "state" in the config.`,
    );
  }
}

const RENEW_MS = 2_000;

export class InstanceLease {
  #timer: ReturnType<typeof setInterval> | undefined;

  private constructor(
    readonly kv: Deno.Kv,
    readonly key: Deno.KvKey,
    readonly holder: LeaseHolder,
  ) {}

  /** Takes the lease or throws LeaseHeldError. */
  static async acquire(
    kv: Deno.Kv,
    applicationId: string,
    instanceId: string,
    location: string,
    staleMs = 15_000,
  ): Promise<InstanceLease> {
    const key = ["lease", applicationId];
    const host = Deno.hostname();
    for (;;) {
      const current = await kv.get<LeaseHolder>(key);
      const other = current.value;
      if (other && !(await isGone(other, host, staleMs))) throw new LeaseHeldError(other, location);
      const holder: LeaseHolder = { instanceId, pid: Deno.pid, host, renewedAt: Date.now() };
      const result = await kv.atomic().check(current).set(key, holder).commit();
      if (result.ok) {
        const lease = new InstanceLease(kv, key, holder);
        lease.#timer = setInterval(() => lease.#renew(), RENEW_MS);
        return lease;
      }
    }
  }

  async #renew(): Promise<void> {
    try {
      await this.kv.set(this.key, { ...this.holder, renewedAt: Date.now() });
    } catch {
      // The KV is closing; release() follows.
    }
  }

  /** Stops renewing and deletes the lease. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    const current = await this.kv.get<LeaseHolder>(this.key);
    if (current.value?.instanceId === this.holder.instanceId) {
      await this.kv.atomic().check(current).delete(this.key).commit();
    }
  }
}

async function isGone(holder: LeaseHolder, host: string, staleMs: number): Promise<boolean> {
  if (Date.now() - holder.renewedAt > staleMs) return true;
  if (holder.host !== host || Deno.build.os !== "linux") return false;
  if (holder.pid === Deno.pid) return false;
  // Same host: a holder whose process has exited (e.g. after kill -9) is gone.
  return !(await Deno.stat(`/proc/${holder.pid}`).then(() => true, () => false));
}
