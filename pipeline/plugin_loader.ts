import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ZodType } from "zod";
import { ConfigError, describePath, type LoadedConfig } from "./config.ts";
import type { ConfiguredPlugin, PluginDefinition } from "./plugin.ts";

/**
 * Imports the enabled plugins of a config and validates their options with each plugin's own
 * schema. Module paths are relative to the config file.
 */
export async function loadPlugins(loaded: LoadedConfig): Promise<ConfiguredPlugin[]> {
  const { path, config } = loaded;
  const out: ConfiguredPlugin[] = [];
  for (const [i, entry] of config.plugins.entries()) {
    if (!entry.enabled) continue;
    const where = `${path}: plugins[${i}] (${entry.name})`;
    const url = pathToFileURL(resolve(dirname(path), entry.module)).href;
    let mod: { default?: unknown };
    try {
      mod = await import(url);
    } catch (e) {
      throw new ConfigError(
        `${where} module: cannot load '${entry.module}' (${
          (e as Error).message.split("\n")[0]
        }). The path is relative to the config file.`,
      );
    }
    const definition = mod.default;
    if (!isPlugin(definition)) {
      throw new ConfigError(
        `${where} module: '${entry.module}' must default-export definePlugin({ name, options, build }).`,
      );
    }
    if (definition.name !== entry.name) {
      throw new ConfigError(
        `${where} name: the module defines plugin '${definition.name}'. Set "name": "${definition.name}".`,
      );
    }
    const parsed = definition.options.safeParse(entry.options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ConfigError(
        `${where} ${
          describePath({ options: entry.options }, ["options", ...issue.path])
        }: ${issue.message}.`,
      );
    }
    out.push({
      definition,
      options: parsed.data,
      name: entry.name,
      onError: entry.onError,
      operators: entry.operators,
    });
  }
  return out;
}

function isPlugin(x: unknown): x is PluginDefinition {
  const p = x as PluginDefinition | undefined;
  return !!p && typeof p.name === "string" && typeof p.build === "function" &&
    typeof (p.options as ZodType | undefined)?.safeParse === "function";
}
