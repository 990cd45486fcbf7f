import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { compileOperator, OPERATORS } from "../operators-wasm/build.ts";

Deno.test("the committed WebAssembly operators are built from their AssemblyScript sources", async () => {
  for (const name of OPERATORS) {
    const built = await compileOperator(name);
    const committed = await Deno.readFile(
      new URL(`../operators-wasm/build/${name}.wasm`, import.meta.url),
    );
    assertEquals(
      built.length === committed.length && built.every((b, i) => b === committed[i]),
      true,
      `operators-wasm/build/${name}.wasm is stale: run deno task build:wasm`,
    );
  }
});
