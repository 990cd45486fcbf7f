/**
 * Compiles the AssemblyScript operators in `assembly/` to `build/*.wasm`:
 *   deno task build:wasm
 * `compileOperator` is also used by tests/wasm_build_test.ts to check the committed modules
 * match their sources.
 */
import asc from "assemblyscript/asc";

export const OPERATORS = ["window_aggregation", "session_windows", "fraud_scoring"] as const;

const OPTIONS = [
  "--optimizeLevel",
  "3",
  "--shrinkLevel",
  "0",
  // A real allocator (TLSF) so grown tables and released stores give memory back, but no
  // collector: the few managed objects stay reachable from globals.
  "--runtime",
  "minimal",
  "--noAssert",
  // No host imports, so Deno can import the modules directly.
  "--use",
  "abort=",
];

const here = new URL(".", import.meta.url);

/** Compiles one operator and returns its module bytes. */
export async function compileOperator(name: string): Promise<Uint8Array> {
  let wasm: Uint8Array | null = null;
  const stderr = asc.createMemoryStream();
  const result = await asc.main([`assembly/${name}.ts`, "--outFile", `${name}.wasm`, ...OPTIONS], {
    stderr,
    readFile: async (file, baseDir) => {
      try {
        return await Deno.readTextFile(new URL(`${baseDir}/${file}`, here));
      } catch {
        return null;
      }
    },
    writeFile: (file, contents) => {
      if (file.endsWith(".wasm") && contents instanceof Uint8Array) wasm = contents;
    },
    listFiles: () => [],
  });
  if (result.error || !wasm) {
    throw new Error(`asc failed for assembly/${name}.ts:\n${stderr.toString()}`);
  }
  return wasm;
}

if (import.meta.main) {
  for (const name of OPERATORS) {
    const bytes = await compileOperator(name);
    await Deno.mkdir(new URL("build/", here), { recursive: true });
    await Deno.writeFile(new URL(`build/${name}.wasm`, here), bytes);
    console.log(`operators-wasm/build/${name}.wasm: ${bytes.length} bytes`);
  }
}
