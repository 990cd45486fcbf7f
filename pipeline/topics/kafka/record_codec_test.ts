import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Message } from "kafkajs";
import { encodeMessages } from "./record_codec.ts";

Deno.test("messages encoded together give each key, value and header its own UTF-8 bytes", () => {
  const messages: Message[] = [
    { key: "k1", value: '{"n":1}', headers: { "bss.origin": "in:0:5:0" } },
    { key: null, value: '{"city":"Zürich","emoji":"📦"}', headers: { a: "ä", b: "plain" } },
    { key: "k3", value: null },
    { key: "", value: "" },
  ];
  const text = (b: unknown) => b === null ? null : Buffer.from(b as Uint8Array).toString("utf8");
  const out = encodeMessages(
    messages.map((m) => ({ ...m, headers: m.headers && { ...m.headers } })),
  );
  assertEquals(
    out.map((m) => [
      text(m.key),
      text(m.value),
      m.headers && Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, text(v)])),
    ]),
    messages.map((m) => [m.key, m.value, m.headers]),
  );
  assertEquals(out.every((m) => m.value === null || Buffer.isBuffer(m.value)), true);
});
