import { KeyValueStore } from "../state/key_value_store.ts";
import { PersistentMap } from "../state/persistent_map.ts";
import { windowCodec, WindowStore } from "../state/window_store.ts";
import { type AnyStore, type EventTimeBounds, type OnError, StreamTask } from "../task.ts";
import type { TaskRef, TopicLog } from "../topics/topic_log.ts";
import type { StoreSpec, TopologyGraph } from "../topology/graph.ts";
import { FraudScoringStore } from "../wasm/fraud_scoring_store.ts";
import { SessionStatsStore } from "../wasm/session_stats_store.ts";
import { StatsWindowStore } from "../wasm/stats_window_store.ts";
import type { Subtopology } from "../topology/subtopologies.ts";

/** What tasks are made with. */
export interface TaskLoadOptions {
  readonly applicationId: string;
  readonly deadLetterTopic: string;
  readonly lateTopic: string;
  readonly onError?: ReadonlyMap<string, OnError>;
  readonly eventTime: EventTimeBounds;
  /** Bytes the tasks' record caches hold in all (0: no cache). */
  readonly cacheMaxBytes: number;
}

/** What one cached result is reckoned to take: a key, a record and a small aggregate. */
const CACHED_RESULT_BYTES = 512;

/** A task's identity as the topic log sees it. */
export function taskRef(task: StreamTask): TaskRef {
  return { id: task.id, partition: task.partition, topics: task.sub.topics };
}

/** Where an application's local state lives in Deno KV. */
export function statePrefix(applicationId: string): Deno.KvKey {
  return ["st", applicationId];
}

/** Where a store partition's local state lives in Deno KV. */
export function storePrefix(applicationId: string, store: string, partition: number): Deno.KvKey {
  return [...statePrefix(applicationId), store, partition];
}

/** A store partition as of the last commit: local state, brought up to date by the log. */
async function loadStore(
  spec: StoreSpec,
  partition: number,
  log: TopicLog,
  kv: Deno.Kv,
  applicationId: string,
): Promise<AnyStore> {
  const prefix = storePrefix(applicationId, spec.name, partition);
  // The operators' stores load their binary pages themselves, then take what the log adds.
  if (spec.kind === "stats" || spec.kind === "sessionStats" || spec.kind === "fraud") {
    const store = spec.kind === "stats"
      ? await StatsWindowStore.load(kv, prefix, spec.name, spec.window, spec.operators)
      : spec.kind === "sessionStats"
      ? await SessionStatsStore.load(
        kv,
        prefix,
        spec.name,
        spec.window,
        spec.retractAll,
        spec.operators,
      )
      : await FraudScoringStore.load(
        kv,
        prefix,
        spec.name,
        spec.plugin,
        spec.rules,
        spec.operators,
      );
    await log.restore(spec.name, partition, store);
    return store.open();
  }
  const map = await PersistentMap.load(kv, prefix, {
    codec: spec.kind === "window" ? windowCodec : undefined,
  });
  await log.restore(spec.name, partition, map);
  return spec.kind === "kv"
    ? new KeyValueStore(spec.name, map)
    : new WindowStore(spec.name, map as never);
}

/**
 * One task per partition of each sub-topology, as of the last commit: stores loaded from local
 * state and brought up to date by the topic log, offsets and stream time as committed.
 */
export async function loadTasks(
  subs: readonly Subtopology[],
  graph: TopologyGraph,
  log: TopicLog,
  kv: Deno.Kv,
  o: TaskLoadOptions,
): Promise<StreamTask[]> {
  const internal = new Set(graph.repartitions.keys());
  const refs = subs.flatMap((sub) =>
    Array.from({ length: log.partitions(sub.topics[0]) }, (_, p): TaskRef => ({
      id: `${sub.id}_${p}`,
      partition: p,
      topics: sub.topics,
    }))
  );
  const positions = await log.positions(refs);
  // The cache budget is shared evenly by the tasks.
  const cacheCapacity = o.cacheMaxBytes === 0
    ? 0
    : Math.max(1, Math.floor(o.cacheMaxBytes / CACHED_RESULT_BYTES / Math.max(1, refs.length)));
  const tasks: StreamTask[] = [];
  for (const sub of subs) {
    for (let p = 0; p < log.partitions(sub.topics[0]); p++) {
      const stores = new Map<string, AnyStore>();
      for (const name of sub.stores) {
        stores.set(name, await loadStore(graph.stores.get(name)!, p, log, kv, o.applicationId));
      }
      const at = positions.get(`${sub.id}_${p}`);
      const offsets = new Map<string, number>();
      for (const topic of sub.topics) {
        offsets.set(topic, at?.offsets.get(topic) ?? log.startOffset(topic, p));
      }
      const task = new StreamTask(
        sub,
        p,
        stores,
        offsets,
        { deadLetter: o.deadLetterTopic, late: o.lateTopic },
        internal,
        o.onError,
        o.eventTime,
        cacheCapacity,
      );
      if (at?.streamTime !== null && at?.streamTime !== undefined) task.streamTime = at.streamTime;
      tasks.push(task);
    }
  }
  return tasks;
}
