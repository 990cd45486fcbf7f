// The offsets a restarting task reads are stable: while a transaction that commits offsets is
// open, the pipeline's fetch waits (the broker says UNSTABLE_OFFSET_COMMIT), where kafkajs' own
// fetch returns the offsets from before it.
// Before kafkajs, as in the pipeline (kafka_client.ts): its faster produce path.
import "../pipeline/topics/kafka/kafkajs_fast_paths.ts";
import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { createCluster } from "../pipeline/topics/kafka/kafka_client.ts";
import { fetchStableOffsets, OffsetFetchError } from "../pipeline/topics/kafka/stable_offsets.ts";
import { brokerLogTail, sharedBroker } from "./kafka/broker.ts";

Deno.test("committed offsets are read only once no transaction committing them is open", async () => {
  const broker = await sharedBroker();
  const id = crypto.randomUUID().slice(0, 8);
  const [topic, group] = [`stable-${id}`, `stable-group-${id}`];
  const kafka = new Kafka({
    clientId: "stable-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const producer = kafka.producer({
    transactionalId: `stable-${id}`,
    maxInFlightRequests: 1,
    idempotent: true,
  });
  const cluster = createCluster(kafka);
  try {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await producer.connect();
    await cluster.connect();
    const offsetsOf = (m: Map<string, { partition: number; offset: number }[]>) =>
      m.get(topic)!.map((p) => [p.partition, p.offset]);
    const wanted = [{ topic, partitions: [0, 1] }];

    // Nothing committed yet: -1 for both partitions.
    assertEquals(offsetsOf(await fetchStableOffsets(cluster, group, wanted)), [[0, -1], [1, -1]]);

    const commitOffsets = async (offset: string, finish: "commit" | "open") => {
      const tx = await producer.transaction();
      await tx.send({ topic, messages: [{ key: "k", value: "v", partition: 0 }] });
      await tx.sendOffsets({
        consumerGroupId: group,
        topics: [{ topic, partitions: [{ partition: 0, offset }] }],
      });
      if (finish === "commit") await tx.commit();
      return tx;
    };
    await commitOffsets("5", "commit");
    assertEquals(offsetsOf(await fetchStableOffsets(cluster, group, wanted)), [[0, 5], [1, -1]]);

    // A transaction committing offset 9 is open: kafkajs reads the old offset, the stable fetch
    // waits, and gives up after its timeout saying why.
    const open = await commitOffsets("9", "open");
    const plain = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    assertEquals(plain[0].partitions.find((p) => p.partition === 0)!.offset, "5");
    await rejects(
      fetchStableOffsets(cluster, group, wanted, 500),
      (e: Error) =>
        e instanceof OffsetFetchError && e.code === 88 &&
        e.message.startsWith(`a transaction committing offsets for ${topic}[0] is still open`),
    );
    // Once it commits, the new offset is there; a fetch waiting meanwhile gets it.
    const waiting = fetchStableOffsets(cluster, group, wanted);
    await new Promise((r) => setTimeout(r, 200));
    await open.commit();
    assertEquals(offsetsOf(await waiting), [[0, 9], [1, -1]]);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await brokerLogTail(broker)}`);
  } finally {
    await producer.disconnect().catch(() => {});
    await cluster.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
});
