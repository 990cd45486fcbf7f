import type { TopologyGraph } from "../topology/graph.ts";
import { buildSubtopologies, type Subtopology } from "../topology/subtopologies.ts";
import {
  changelogTopic,
  type TopicLog,
  type TopicRequest,
  type TopicSpec,
} from "../topics/topic_log.ts";

/** What decides the topics' layout. */
export interface TopicSetupOptions {
  readonly applicationId: string;
  /** Partition count of topics not listed in `topics`. */
  readonly defaultPartitions: number;
  readonly topics: Readonly<Record<string, TopicSpec>>;
  readonly deadLetterTopic: string;
  readonly lateTopic: string;
}

/**
 * Creates or checks every topic the graph needs, in the order their sizes depend on each other:
 * inputs and outputs first; repartition topics sized like the topics they re-key; then one
 * changelog per store and task partition. Returns the sub-topologies, once checked that topics
 * read together have the same partition count.
 */
export async function prepareTopics(
  log: TopicLog,
  graph: TopologyGraph,
  o: TopicSetupOptions,
): Promise<Subtopology[]> {
  const request = (name: string, role: TopicRequest["role"]): TopicRequest => {
    const configured = o.topics[name];
    return {
      name,
      role,
      ...(configured ?? { partitions: o.defaultPartitions }),
      exact: configured !== undefined,
    };
  };
  const read = new Set([...graph.inputTopics(), ...graph.repartitions.keys()]);
  const written = [...graph.sinks.keys(), o.deadLetterTopic, o.lateTopic];
  const first = new Map<string, TopicRequest>();
  for (const topic of Object.keys(o.topics)) first.set(topic, request(topic, "input"));
  for (const topic of graph.inputTopics()) first.set(topic, request(topic, "input"));
  for (const topic of written) {
    if (!read.has(topic)) first.set(topic, request(topic, "output"));
  }
  await log.ensureTopics([...first.values()]);

  const repartitions: TopicRequest[] = [];
  for (const rp of graph.repartitions.values()) {
    const like = rp.partitionsLike.filter((t) => log.hasTopic(t)).map((t) => log.partitions(t));
    repartitions.push({
      name: rp.topic,
      role: "repartition",
      partitions: Math.max(1, ...like),
      exact: true,
    });
  }
  await log.ensureTopics(repartitions);

  const subs = buildSubtopologies(graph);
  for (const sub of subs) {
    const counts = sub.topics.map((t) => log.partitions(t));
    if (new Set(counts).size > 1) {
      throw new Error(
        `Cannot run plugin(s) ${
          sub.plugins.join(", ")
        } as topics read together must have the same partition count: ${
          sub.topics.map((t, i) => `${t} (${counts[i]})`).join(", ")
        }. Set equal "partitions" for them in the config's "topics".`,
      );
    }
  }
  await log.ensureTopics(subs.flatMap((sub) =>
    sub.stores.map((store): TopicRequest => ({
      name: changelogTopic(o.applicationId, store),
      role: "changelog",
      partitions: log.partitions(sub.topics[0]),
      exact: true,
    }))
  ));
  return subs;
}
