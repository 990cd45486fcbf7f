import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { ConfigError, loadConfig, parseConfig } from "../pipeline/config.ts";
import { loadPlugins } from "../pipeline/plugin_loader.ts";

const FILE = "config/pipeline.json";
const valid = (plugins: unknown[] = []) => JSON.stringify({ plugins });

Deno.test("defaults fill every field; comments and trailing commas are allowed", () => {
  const config = parseConfig(`// comment\n{ "plugins": [], /* more */ }`, FILE);
  assertEquals(config.commitIntervalMs, 100);
  assertEquals(config.admin, {
    host: "127.0.0.1",
    port: 8080,
    allowedHosts: [],
    maxBodyBytes: 1_048_576,
    maxResponseBytes: 16 * 1024 * 1024,
  });
  assertEquals(config.state, { path: "data/state.kv" });
  assertEquals(config.source, {
    type: "embedded",
    memory: { records: 20_000, bytes: 8 * 1024 * 1024 },
  });
  assertEquals(config.eventTime, { min: 0, maxAheadMs: 86_400_000 });
  assertEquals(config.maxBatchBytes, 4 * 1024 * 1024);
});

Deno.test("env PORT, BSS_ADMIN_HOST and BSS_ADMIN_TOKEN override the admin section", () => {
  const vars: Record<string, string> = {
    PORT: "9191",
    BSS_ADMIN_HOST: "0.0.0.0",
    BSS_ADMIN_TOKEN: "s3cret",
  };
  const config = parseConfig(valid(), FILE, (n) => vars[n]);
  assertEquals([config.admin.port, config.admin.host, config.admin.token], [
    9191,
    "0.0.0.0",
    "s3cret",
  ]);
  throws(() => parseConfig(valid(), FILE, (n) => n === "PORT" ? "http" : undefined), {
    message: 'Environment variable PORT: expected a port number 0-65535, got "http".',
  });
});

Deno.test("syntax errors name the file, line and column", () => {
  throws(() => parseConfig(`{\n  "plugins": [\n    { "name": "x" \n  ]\n}`, FILE), {
    name: "ConfigError",
    message:
      "config/pipeline.json:4:3: invalid JSON (CommaExpected). Fix the syntax at that position.",
  });
});

Deno.test("schema errors name the file, the plugin and the field", () => {
  throws(
    () =>
      parseConfig(
        JSON.stringify({
          plugins: [{ name: "ok", module: "m.ts" }, {
            name: "fraud_detection",
            module: "",
            enabled: true,
          }],
        }),
        FILE,
      ),
    {
      message:
        "config/pipeline.json: plugins[1] (fraud_detection).module: Too small: expected string to have >=1 characters.",
    },
  );
  throws(() => parseConfig(JSON.stringify({ plugins: [], comitIntervalMs: 5 }), FILE), {
    message:
      'config/pipeline.json: (top level): Unrecognized key: "comitIntervalMs". Remove it or check its spelling.',
  });
  throws(() => parseConfig(JSON.stringify({ plugins: [], admin: { port: "80" } }), FILE), {
    message: "config/pipeline.json: admin.port: Invalid input: expected number, received string.",
  });
  throws(
    () =>
      parseConfig(
        JSON.stringify({ plugins: [{ name: "a", module: "x" }, { name: "a", module: "y" }] }),
        FILE,
      ),
    {
      message:
        "config/pipeline.json: plugins[1] (a): the name is used twice. Give each plugin entry its own name.",
    },
  );
});

Deno.test("plugin options are validated with the plugin's own schema; errors name plugin and field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/pipeline.json`;
    const fraud = new URL("../plugins/fraud_detection/mod.ts", import.meta.url).pathname;
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        plugins: [{ name: "fraud_detection", module: fraud, options: { rapidThreshold: "ten" } }],
      }),
    );
    await rejects(loadPlugins(await loadConfig(path)), {
      name: "ConfigError",
      message:
        `${path}: plugins[0] (fraud_detection) options.rapidThreshold: Invalid input: expected number, received string.`,
    });
    await Deno.writeTextFile(path, JSON.stringify({ plugins: [{ name: "fraud", module: fraud }] }));
    await rejects(loadPlugins(await loadConfig(path)), {
      message:
        `${path}: plugins[0] (fraud) name: the module defines plugin 'fraud_detection'. Set "name": "fraud_detection".`,
    });
    await Deno.writeTextFile(
      path,
      JSON.stringify({ plugins: [{ name: "nope", module: "./missing/mod.ts" }] }),
    );
    await rejects(loadPlugins(await loadConfig(path)), (e: Error) => {
      assertEquals(e instanceof ConfigError, true);
      assertEquals(
        e.message.startsWith(`${path}: plugins[0] (nope) module: cannot load './missing/mod.ts'`),
        true,
      );
      assertEquals(e.message.endsWith("The path is relative to the config file."), true);
      return true;
    });
    await Deno.writeTextFile(
      path,
      JSON.stringify({ plugins: [{ name: "off", module: "./missing.ts", enabled: false }] }),
    );
    assertEquals(await loadPlugins(await loadConfig(path)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing config file is a config error naming it", async () => {
  await rejects(loadConfig("/nonexistent/pipeline.json"), (e: Error) => {
    assertEquals(e instanceof ConfigError, true);
    assertEquals(e.message.startsWith("Cannot read config file /nonexistent/pipeline.json"), true);
    return true;
  });
});
