import type { ValueSource } from "../executor/distribution-value.js";
import { type AnyNode, as } from "../parser/ast.js";

/**
 * The value of an expression that the coordinator can know without running it: a constant
 * (`5`, `'abc'`, `'2024-01-01'::date`) or a parameter (`$1`, `$1::int`). Floats are refused on
 * purpose: `id = 5.5` compares as numeric and matches no integer, so it pins nothing.
 */
export function valueSource(node: unknown): ValueSource | undefined {
  const cast = as(node, "TypeCast");
  if (cast) return valueSource(cast.arg);
  const param = as(node, "ParamRef");
  if (param) return { kind: "param", number: param.number as number };
  const constant = as(node, "A_Const");
  if (!constant) return undefined;
  if (constant.isnull) return { kind: "literal", text: null };
  if (constant.ival) return { kind: "literal", text: String((constant.ival as AnyNode).ival ?? 0) };
  if (constant.sval) return { kind: "literal", text: ((constant.sval as AnyNode).sval as string | undefined) ?? "" };
  if (constant.boolval) return { kind: "literal", text: (constant.boolval as AnyNode).boolval ? "true" : "false" };
  if (constant.fval) {
    const text = (constant.fval as AnyNode).fval as string;
    // an integer too large for int4 arrives as a float literal
    return /^-?\d+$/.test(text) ? { kind: "literal", text } : undefined;
  }
  return undefined;
}
