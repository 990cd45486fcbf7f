/**
 * One pipeline instance per state. Two processes appending to one embedded log or committing
 * the same offsets would overwrite each other's acknowledged records, so the second refuses to
 * start and names the first.
 */

/** Who holds a state: enough for an operator to find the process. */
export interface InstanceHolder {
  readonly instanceId: string;
  readonly pid: number;
  readonly host: string;
  /** Epoch ms the holder took the state. */
  readonly since: number;
}

/** A held state; `release` lets the next instance take it. */
export interface InstanceLock {
  readonly holder: InstanceHolder;
  release(): Promise<void>;
}

/** Raised when another live instance holds the state. */
export class StateLockedError extends Error {
  override name = "StateLockedError";
  constructor(readonly holder: InstanceHolder | null, location: string, detail = "") {
    super(
      `Another pipeline instance ${
        holder
          ? `(pid ${holder.pid} on ${holder.host}, id ${holder.instanceId}, since ${
            new Date(holder.since).toISOString()
          })`
          : "(unknown)"
      } is running on ${location}${detail}. Stop it first, or give this instance its own "state" in the config.`,
    );
  }
}

/** This process as a holder. */
export function thisInstance(instanceId: string): InstanceHolder {
  return { instanceId, pid: Deno.pid, host: Deno.hostname(), since: Date.now() };
}

/**
 * Locks a local state file with an exclusive file lock on `<path>.lock`, held while the process
 * lives: the operating system releases it when the process exits, even on kill -9, so a restart
 * after a crash takes over at once. The file also names the holder for the refusal message.
 */
export async function lockStateFile(path: string, instanceId: string): Promise<InstanceLock> {
  const lockPath = `${path}.lock`;
  const file = await Deno.open(lockPath, { read: true, write: true, create: true });
  if (!(await file.tryLock(true))) {
    file.close();
    const holder = await readHolder(lockPath);
    throw new StateLockedError(holder, path);
  }
  const holder = thisInstance(instanceId);
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  await file.write(new TextEncoder().encode(JSON.stringify(holder) + "\n"));
  let released = false;
  return {
    holder,
    async release() {
      if (released) return;
      released = true;
      await file.truncate(0).catch(() => {});
      await file.unlock().catch(() => {});
      file.close();
    },
  };
}

/** The holder a lock file names, if it can be read (the lock is advisory: reading is allowed). */
async function readHolder(lockPath: string): Promise<InstanceHolder | null> {
  try {
    const text = await Deno.readTextFile(lockPath);
    return text.trim() === "" ? null : JSON.parse(text) as InstanceHolder;
  } catch {
    return null;
  }
}
