import type { TopologyGraph } from "./graph.ts";
import type { ProcessorNode } from "./node.ts";
import { SourceNode, TableSourceNode } from "./source_sink_nodes.ts";

/**
 * A connected part of the graph: the topics it reads are consumed together, partition by
 * partition, by one task each, so that joins and stores see every record of their keys.
 */
export interface Subtopology {
  readonly id: number;
  /** Topics read, tables first (so a table update at time t is applied before a stream record at t). */
  readonly topics: readonly string[];
  readonly tableTopics: ReadonlySet<string>;
  readonly sources: ReadonlyMap<string, readonly SourceNode[]>;
  readonly stores: readonly string[];
  /** Nodes told when stream time advances (window closing, buffer expiry). */
  readonly timeNodes: readonly ProcessorNode[];
  readonly plugins: readonly string[];
}

/** Splits the graph into sub-topologies: nodes linked by edges, shared stores or shared topics. */
export function buildSubtopologies(graph: TopologyGraph): Subtopology[] {
  const index = new Map<ProcessorNode, number>();
  graph.nodes.forEach((n, i) => index.set(n, i));
  const parent = graph.nodes.map((_, i) => i);
  const find = (i: number): number => parent[i] === i ? i : (parent[i] = find(parent[i]));
  const union = (a: number, b: number) => {
    parent[find(a)] = find(b);
  };
  const byStore = new Map<string, number>();
  const byTopic = new Map<string, number>();
  graph.nodes.forEach((n, i) => {
    for (const c of n.children) union(i, index.get(c)!);
    for (const s of n.stores) {
      if (byStore.has(s)) union(i, byStore.get(s)!);
      else byStore.set(s, i);
    }
    if (n instanceof SourceNode) {
      if (byTopic.has(n.topic)) union(i, byTopic.get(n.topic)!);
      else byTopic.set(n.topic, i);
    }
  });
  const groups = new Map<number, ProcessorNode[]>();
  graph.nodes.forEach((n, i) => {
    const root = find(i);
    groups.set(root, [...(groups.get(root) ?? []), n]);
  });
  const subs: Subtopology[] = [];
  for (const nodes of groups.values()) {
    const sources = new Map<string, SourceNode[]>();
    const tableTopics = new Set<string>();
    for (const n of nodes) {
      if (!(n instanceof SourceNode)) continue;
      sources.set(n.topic, [...(sources.get(n.topic) ?? []), n]);
      if (n instanceof TableSourceNode) tableTopics.add(n.topic);
    }
    if (sources.size === 0) continue;
    const topics = [...sources.keys()].sort((a, b) =>
      Number(tableTopics.has(b)) - Number(tableTopics.has(a)) || (a < b ? -1 : a > b ? 1 : 0)
    );
    subs.push({
      id: subs.length,
      topics,
      tableTopics,
      sources,
      stores: [...new Set(nodes.flatMap((n) => n.stores))].sort(),
      timeNodes: nodes.filter((n) => n.advance !== undefined),
      plugins: [...new Set(nodes.map((n) => n.plugin))].sort(),
    });
  }
  return subs;
}
