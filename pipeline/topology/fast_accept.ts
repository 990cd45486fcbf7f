/**
 * A fast accept for event schemas: zod 4's own JSON Schema of a schema, compiled by ajv into a
 * function that allocates nothing. In the benchmark, zod's validation (and the copy of every
 * value it returns) took ~13 % of the time; the compiled check is a fraction of that.
 *
 * zod stays the authority: a value the check accepts is used as it is, so a schema gets a check
 * only when that cannot be wrong — it is built only of parts whose JSON Schema accepts nothing
 * zod rejects and whose zod output equals the input (no defaults, transforms, refinements, regex
 * flags). Every other schema, and every value the check rejects, goes through zod, which gives
 * the output and the reasons of a rejection.
 */
import { Ajv } from "ajv";
import { z, type ZodType } from "zod";

/** Whether a value passes the schema unchanged; false means only "ask zod". */
export type FastAccept = (value: unknown) => boolean;

// ajv compiles patterns as Unicode regular expressions; zod does not.
const plainRegExp = Object.assign(
  (source: string, flags: string) => new RegExp(source, flags.replace("u", "")),
  { code: "new RegExp" },
);

const ajv = new Ajv({
  strict: true,
  allErrors: false,
  // zod's JSON Schema gives date-times a `pattern` too (see `isExact`): the format adds nothing.
  formats: { "date-time": true },
  code: { regExp: plainRegExp },
});

const compiled = new WeakMap<ZodType, FastAccept | null>();

/** The fast accept of a schema, or null where zod must check every value. */
export function fastAccept(schema: ZodType): FastAccept | null {
  if (compiled.has(schema)) return compiled.get(schema)!;
  let check: FastAccept | null = null;
  if (isExact(schema)) {
    try {
      const validate = ajv.compile(z.toJSONSchema(schema, { target: "draft-7", io: "output" }));
      check = (value) => validate(value) as boolean;
    } catch {
      check = null;
    }
  }
  compiled.set(schema, check);
  return check;
}

type Def = {
  type: string;
  checks?: { _zod: { def: CheckDef } }[];
  shape?: Record<string, ZodType>;
  catchall?: ZodType;
  innerType?: ZodType;
  options?: ZodType[];
  element?: ZodType;
  format?: string;
  pattern?: RegExp;
};
type CheckDef = { check: string; format?: string; pattern?: RegExp };

const def = (schema: ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/**
 * Checks whose JSON Schema keywords accept nothing zod rejects. ajv counts a string's length in
 * code points, zod in UTF-16 units (never fewer): a minimum length holds in zod whenever it
 * holds in ajv, a maximum may not, so only minimums are taken.
 */
const EXACT_CHECKS: Record<string, Set<string>> = {
  string: new Set(["min_length", "string_format"]),
  number: new Set(["greater_than", "less_than"]),
  array: new Set(["min_length", "max_length", "length_equals"]),
};

/**
 * True when the schema is built only of parts that ajv checks exactly as zod does and that zod
 * returns unchanged. Objects that strip unknown keys are fine: their JSON Schema forbids extra
 * keys, so a value with some is left to zod.
 */
function isExact(schema: ZodType): boolean {
  const d = def(schema);
  for (const c of d.checks ?? []) {
    const check = c._zod.def;
    if (!EXACT_CHECKS[d.type]?.has(check.check)) return false;
    // Only regular expressions without flags (JSON Schema has none).
    if (check.check === "string_format" && (check.format !== "regex" || !plain(check.pattern))) {
      return false;
    }
  }
  switch (d.type) {
    case "boolean":
    case "null":
    case "enum":
    case "literal":
    case "number":
      return true;
    case "string":
      // A string format checked by its pattern, which zod writes into the JSON Schema.
      return d.format === undefined || (d.format === "datetime" && plain(d.pattern));
    case "object": {
      const extra = d.catchall ? def(d.catchall).type : "strip";
      if (!["strip", "unknown", "never"].includes(extra)) return false;
      return Object.values(d.shape ?? {}).every(isExact);
    }
    case "optional":
    case "nullable":
      return isExact(d.innerType!);
    case "union":
      return d.options!.every(isExact);
    case "array":
      return isExact(d.element!);
    default:
      return false;
  }
}

function plain(pattern: RegExp | undefined): boolean {
  return pattern instanceof RegExp && pattern.flags === "";
}
