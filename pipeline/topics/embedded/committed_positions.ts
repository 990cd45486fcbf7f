/**
 * Where every task of an application stood at its last commit on the embedded log: the next
 * offset per input topic partition and the stream time per task, all in one blob written whole
 * by each commit. One key instead of one per topic partition and task (~50 per commit in the
 * benchmark): what a KV commit costs goes with the separate keys it writes.
 *
 * Earlier versions stored each offset (`["off", app, topic, partition]`) and stream time
 * (`["time", app, topics, partition]`) under a key of its own. Those are read at load, kept (a
 * disabled plugin's tasks too) and deleted by the first commit, which stores them in the blob.
 */
import { SnapshotBlob, type StagedWrite } from "../../kv/snapshot_blob.ts";
import type { TaskPositions, TaskRef } from "../topic_log.ts";

/** Offsets by `topic \0 partition`, stream times by `topics \0 partition`. */
interface Positions {
  readonly offsets: Map<string, number>;
  readonly times: Map<string, number>;
}

const SEPARATOR = "\u0000";
const offsetId = (topic: string, partition: number) => `${topic}${SEPARATOR}${partition}`;
const timeId = (topics: string, partition: number) => `${topics}${SEPARATOR}${partition}`;
const taskTimeId = (task: TaskRef) => timeId(task.topics.join(","), task.partition);

/** What a commit advances: per task, its next offsets and its stream time. */
export interface TaskAdvance {
  readonly task: TaskRef;
  readonly offsets: ReadonlyMap<string, number>;
  readonly streamTime: number;
}

export class CommittedPositions {
  /** What the last landed commit stored. */
  #committed: Positions = { offsets: new Map(), times: new Map() };
  readonly #blob: SnapshotBlob;

  constructor(readonly kv: Deno.Kv, readonly applicationId: string) {
    this.#blob = new SnapshotBlob(kv, ["positions", applicationId]);
  }

  /** Reads what is committed (the blob, and any keys of the earlier layout it lacks). */
  async load(): Promise<void> {
    const positions: Positions = { offsets: new Map(), times: new Map() };
    const text = await this.#blob.load();
    if (text !== null) {
      const { offsets, times } = JSON.parse(text) as {
        offsets: [string, number][];
        times: [string, number][];
      };
      for (const [id, offset] of offsets) positions.offsets.set(id, offset);
      for (const [id, time] of times) positions.times.set(id, time);
    }
    const legacy: Deno.KvKey[] = [];
    const app = this.applicationId;
    for await (const e of this.kv.list<number>({ prefix: ["off", app] })) {
      const [, , topic, partition] = e.key as [string, string, string, number];
      const id = offsetId(topic, partition);
      if (!positions.offsets.has(id)) positions.offsets.set(id, e.value);
      legacy.push(e.key);
    }
    for await (const e of this.kv.list<number>({ prefix: ["time", app] })) {
      const [, , topics, partition] = e.key as [string, string, string, number];
      const id = timeId(topics, partition);
      if (!positions.times.has(id)) positions.times.set(id, e.value);
      legacy.push(e.key);
    }
    this.#blob.retire(legacy);
    this.#committed = positions;
  }

  /** Where `task` stood at the last commit. */
  of(task: TaskRef): TaskPositions {
    const offsets = new Map<string, number>();
    for (const topic of task.topics) {
      const offset = this.#committed.offsets.get(offsetId(topic, task.partition));
      if (offset !== undefined) offsets.set(topic, offset);
    }
    return { offsets, streamTime: this.#committed.times.get(taskTimeId(task)) ?? null };
  }

  /**
   * The mutations storing the last commit's positions advanced by `advances`, and `landed` to
   * call once they are committed. Call in commit order, each after the previous one landed (in
   * the committer's `serialize`): a commit that never lands leaves the positions as they were.
   */
  advance(advances: readonly TaskAdvance[]): StagedWrite {
    const next: Positions = {
      offsets: new Map(this.#committed.offsets),
      times: new Map(this.#committed.times),
    };
    for (const a of advances) {
      for (const [topic, offset] of a.offsets) {
        next.offsets.set(offsetId(topic, a.task.partition), offset);
      }
      if (Number.isFinite(a.streamTime)) next.times.set(taskTimeId(a.task), a.streamTime);
    }
    const blob = this.#blob.write(
      JSON.stringify({ offsets: [...next.offsets], times: [...next.times] }),
    );
    return {
      mutations: blob.mutations,
      landed: () => {
        blob.landed();
        this.#committed = next;
      },
    };
  }

  /** The mutations deleting every committed position (a reset); call in `serialize`. */
  clear(): StagedWrite {
    const blob = this.#blob.clear();
    return {
      mutations: blob.mutations,
      landed: () => {
        blob.landed();
        this.#committed = { offsets: new Map(), times: new Map() };
      },
    };
  }
}
