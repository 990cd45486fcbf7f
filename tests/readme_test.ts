import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../pipeline/config.ts";
import { loadPlugins } from "../pipeline/plugin_loader.ts";
import { TestDriver } from "../pipeline/testing/mod.ts";

const root = new URL("../", import.meta.url);

/** The fenced block right after a `<!-- marker -->` line of the README. */
async function readmeBlock(marker: string): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const at = readme.indexOf(`<!-- ${marker} -->`);
  const match = /```\w*\n([\s\S]*?)```/.exec(readme.slice(at));
  if (at < 0 || !match) throw new Error(`README has no block after <!-- ${marker} -->`);
  return match[1];
}

Deno.test("the README's example plugin works when copied into plugins/ and enabled in config", async () => {
  const code = await readmeBlock("readme-example-plugin");
  const entry = JSON.parse(await readmeBlock("readme-example-config"));
  const folder = new URL(`plugins/${entry.name}/`, root);
  const existed = await Deno.stat(folder).then(() => true, () => false);
  try {
    if (!existed) {
      await Deno.mkdir(folder, { recursive: true });
      await Deno.writeTextFile(new URL("mod.ts", folder), code);
    }
    // A config beside config/pipeline.json, so the README's relative module path holds.
    const path = fileURLToPath(new URL(`config/readme-example-${crypto.randomUUID()}.json`, root));
    await Deno.writeTextFile(
      path,
      JSON.stringify({ state: { path: ":memory:" }, plugins: [entry] }),
    );
    try {
      const plugins = await loadPlugins(await loadConfig(path));
      assertEquals(plugins.map((p) => [p.name, p.options]), [["big_spenders", { minAmount: 500 }]]);
      const d = await TestDriver.create({
        plugins: [{ plugin: plugins[0].definition, options: plugins[0].options }],
        topics: { "bss.payment.events": 3 },
      });
      const pay = (id: string, amount: number) => ({
        key: "C1",
        value: {
          paymentId: id,
          customerId: "C1",
          amount,
          currency: "USD",
          method: "CARD",
          status: "SUCCESS",
          timestamp: 1,
        },
      });
      await d.input("bss.payment.events").pipeMany([pay("small", 20), pay("big", 900)]);
      assertEquals(
        d.output<{ paymentId: string }>("bss.payments.big").readValues().map((p) => p.paymentId),
        ["big"],
      );
      d.close();
    } finally {
      await Deno.remove(path);
    }
  } finally {
    if (!existed) await Deno.remove(folder, { recursive: true });
  }
});
