import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { blobDeletes, blobMutations, listBlobs, PART_BYTES } from "./blob.ts";

async function withKv(fn: (kv: Deno.Kv) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/blob.kv`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function write(kv: Deno.Kv, mutations: { key: Deno.KvKey; value: unknown }[]) {
  const op = kv.atomic();
  for (const m of mutations) m.value === null ? op.delete(m.key) : op.set(m.key, m.value);
  ok((await op.commit()).ok);
}

/** Random bytes, which deflate cannot shrink, so that they need several parts. */
function noise(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

Deno.test("blobs are stored deflated, in bigint-keyed parts under the value limit, and read back exactly", async () => {
  await withKv(async (kv) => {
    const big = noise(2.5 * PART_BYTES);
    const text = JSON.stringify(
      Array.from({ length: 500 }, (_, i) => ({ customerId: `c${i}`, category: "books", n: i })),
    );
    const a = blobMutations(["b", "a"], big);
    const t = blobMutations(["b", "t"], text);
    const empty = blobMutations(["b", "u"], "");
    assertEquals(a.stored, { key: ["b", "a"], parts: 3, deflated: true });
    assertEquals(a.mutations.map((m) => m.key), [["b", "a", 0n], ["b", "a", 1n], ["b", "a", 2n]]);
    ok(a.mutations.every((m) => (m.value as Uint8Array).length <= PART_BYTES));
    // What a commit writes for JSON shrinks severalfold.
    const stored = t.mutations.reduce((n, m) => n + (m.value as Uint8Array).length, 0);
    ok(stored * 4 < text.length, `${stored} bytes stored for ${text.length}`);
    await write(kv, [...a.mutations, ...t.mutations, ...empty.mutations]);

    const blobs = await Array.fromAsync(listBlobs(kv, ["b"]));
    assertEquals(blobs.map((b) => [b.key, b.parts, b.deflated]), [
      [["b", "a"], 3, true],
      [["b", "t"], 1, true],
      [["b", "u"], 1, true],
    ]);
    assertEquals(blobs[0].bytes, big);
    assertEquals(blobs[1].text, text);
    assertEquals(blobs[2].text, "");
  });
});

Deno.test("a blob an earlier version stored as it is, in number-keyed parts, is still read and deleted", async () => {
  await withKv(async (kv) => {
    const old = noise(PART_BYTES + 10);
    await write(kv, [
      { key: ["b", "old", 0], value: old.subarray(0, PART_BYTES) },
      { key: ["b", "old", 1], value: old.subarray(PART_BYTES) },
    ]);
    const fresh = blobMutations(["b", "z"], "new");
    await write(kv, fresh.mutations);

    const blobs = await Array.fromAsync(listBlobs(kv, ["b"]));
    assertEquals(blobs.map((b) => [b.key, b.parts, b.deflated]), [
      [["b", "old"], 2, false],
      [["b", "z"], 1, true],
    ]);
    assertEquals(blobs[0].bytes, old);
    assertEquals(blobs[1].text, "new");

    await write(kv, blobs.flatMap((b) => blobDeletes(b)));
    assertEquals(await Array.fromAsync(kv.list({ prefix: ["b"] })), []);
  });
});
