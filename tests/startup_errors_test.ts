import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startMain } from "./fixtures/main_process.ts";

const api = fileURLToPath(new URL("../pipeline/mod.ts", import.meta.url));

/** A plugin module declaring one counted store, written into `dir`. */
async function storePlugin(dir: string, name: string, store: string): Promise<string> {
  const path = `${dir}/${name}.ts`;
  await Deno.writeTextFile(
    path,
    `import { definePlugin, z } from ${JSON.stringify(api)};
export default definePlugin({
  name: ${JSON.stringify(name)},
  options: z.strictObject({}),
  build(b) {
    b.stream("events").groupByKey().count({ store: ${
      JSON.stringify(store)
    } }).toStream().to("out-${name}");
  },
});
`,
  );
  return path;
}

async function run(dir: string, config: Record<string, unknown>) {
  const path = `${dir}/pipeline.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({ state: { path: "state.kv" }, logIntervalMs: 0, ...config }),
  );
  return { path, ...(await startMain(path).exited()) };
}

Deno.test("two plugins declaring one store name stop start-up with a config error naming the file and both plugins", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { path, status, output } = await run(dir, {
      plugins: [
        { name: "alpha", module: await storePlugin(dir, "alpha", "counts") },
        { name: "beta", module: await storePlugin(dir, "beta", "counts") },
      ],
    });
    assertEquals(status.code, 2);
    ok(
      output.includes(
        `Config error: ${path}: plugins[0] (alpha) and plugins[1] (beta) both declare the state store 'counts', and store names must be unique. Enable only one of them ("enabled": false).`,
      ),
      output,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an admin host that cannot be served is named, with the setting that fixes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { path, status, output } = await run(dir, {
      admin: { host: "no-such-host.invalid", port: 0 },
      plugins: [],
    });
    assertEquals(status.code, 1);
    ok(
      output.includes(
        `Cannot serve the admin API on host 'no-such-host.invalid', port 0: `,
      ) &&
        output.includes(
          `Set "admin.host" in ${path} or the BSS_ADMIN_HOST environment variable to an address of this machine`,
        ),
      output,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
