import type { Node } from "@pgsql/types";
import { parseSync } from "libpg-query";
import { deparseSync } from "pgsql-deparser";

/**
 * Helpers over libpg-query's JSON parse trees. A node is `{ TypeName: { ...fields } }`; a few
 * fields hold bare structs (InsertStmt.relation is a bare RangeVar). The trees are plain data,
 * so the planner copies them (`structuredClone`) before rewriting names and deparsing.
 */

// biome-ignore lint/suspicious/noExplicitAny: parse trees are untyped JSON here
export type AnyNode = Record<string, any>;

/** The type name and fields of a wrapped node (`{ SelectStmt: {...} }` → ["SelectStmt", {...}]). */
export function unwrap(node: unknown): [string, AnyNode] | undefined {
  if (node === null || typeof node !== "object" || Array.isArray(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const key = keys[0] as string;
  const inner = (node as AnyNode)[key];
  if (!/^[A-Z]/.test(key) || inner === null || typeof inner !== "object" || Array.isArray(inner)) return undefined;
  return [key, inner as AnyNode];
}

/** The tag of a wrapped node (`"SelectStmt"`, `"RangeVar"`, …), as @pgsql/types declares them. */
export type NodeTag = Node extends infer N ? (N extends Record<infer K, unknown> ? K & string : never) : never;

/** The fields of a node with tag `K` (`NodeFields<"RangeVar">` is @pgsql/types' RangeVar). */
export type NodeFields<K extends NodeTag> = Extract<Node, Record<K, unknown>>[K];

/** The typed fields of `value` when it is a `tag` node (`nodeOf(item, "RangeVar")?.relname`). */
export function nodeOf<K extends NodeTag>(value: unknown, tag: K): NodeFields<K> | undefined {
  return as(value, tag) as NodeFields<K> | undefined;
}

/** The fields of `node` when it is a `type` node. */
export function as(node: unknown, type: string): AnyNode | undefined {
  const unwrapped = unwrap(node);
  return unwrapped && unwrapped[0] === type ? unwrapped[1] : undefined;
}

/**
 * Visits every object in the tree, depth first, with the key it hangs under. Return false from
 * the visitor to skip an object's children.
 */
export function walk(node: unknown, visit: (value: AnyNode, key: string) => boolean | undefined, key = ""): void {
  if (node === null || typeof node !== "object") return;
  if (Array.isArray(node)) {
    for (const item of node) walk(item, visit, key);
    return;
  }
  if (visit(node as AnyNode, key) === false) return;
  // (for … in, not Object.entries: a VALUES list of thousands of rows is walked several times)
  for (const childKey in node) walk((node as AnyNode)[childKey], visit, childKey);
}

/**
 * An INSERT (`InsertStmt`'s fields) uses a `$n` outside its SELECT or VALUES rows: in ON CONFLICT
 * … SET or WHERE, RETURNING, a WITH.
 */
export function hasParameterOutsideSelect(insert: AnyNode): boolean {
  let found = false;
  walk({ ...insert, selectStmt: undefined }, (_node, key) => {
    if (key === "ParamRef") found = true;
    return found ? false : undefined;
  });
  return found;
}

/**
 * A copy of a parse tree (plain JSON data: objects, arrays, strings, numbers, booleans). Much
 * cheaper than structuredClone for the small nodes the executor stamps out per value.
 */
export function cloneTree<T>(node: T): T {
  if (node === null || typeof node !== "object") return node;
  if (Array.isArray(node)) return node.map(cloneTree) as T;
  const copy: AnyNode = {};
  for (const key in node) copy[key] = cloneTree((node as AnyNode)[key]);
  return copy as T;
}

/**
 * `walk`, with the path (keys and array indexes) from the root to each object, so that the same
 * object can be found again in a copy of the tree. The path array is reused: copy it to keep it.
 */
export function walkWithPath(
  node: unknown,
  visit: (value: AnyNode, key: string, path: readonly (string | number)[]) => boolean | undefined,
): void {
  const path: (string | number)[] = [];
  const step = (value: unknown, key: string): void => {
    if (value === null || typeof value !== "object") return;
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        path.push(i);
        step(item, key);
        path.pop();
      });
      return;
    }
    if (visit(value as AnyNode, key, path) === false) return;
    for (const childKey in value) {
      path.push(childKey);
      step((value as AnyNode)[childKey], childKey);
      path.pop();
    }
  };
  step(node, "");
}

/** Keys under which libpg-query puts a bare (unwrapped) RangeVar: a statement's own table, a foreign key's. */
const BARE_RANGE_VAR_KEYS = new Set(["relation", "pktable"]);

/** Whether an object `walk` visits under `key` is a RangeVar's fields (wrapped in FROM, bare in statements). */
export function isRangeVar(node: AnyNode, key: string): boolean {
  return key === "RangeVar" || (BARE_RANGE_VAR_KEYS.has(key) && typeof node.relname === "string");
}

/** The object at `path` (keys and indexes from the root, as walkWithPath gives them) in `tree`. */
export function nodeAtPath(tree: unknown, path: readonly (string | number)[]): AnyNode {
  let node: unknown = tree;
  for (const step of path) node = (node as Record<string | number, unknown>)[step];
  return node as AnyNode;
}

/** The strings of a name list (`[{String:{sval:"public"}}, {String:{sval:"events"}}]`). */
export function names(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((item) => (as(item, "String")?.sval as string | undefined) ?? "");
}

/** A ColumnRef's parts (`e.tenant_id` → ["e", "tenant_id"]), or undefined for `*` or non-columns. */
export function columnRef(node: unknown): string[] | undefined {
  const ref = as(node, "ColumnRef");
  if (!ref) return undefined;
  const parts = names(ref.fields);
  return parts.includes("") ? undefined : parts;
}

/**
 * What a GROUP BY item groups by: `GROUP BY 2` is the second result column's expression, and a
 * bare name that is no input column is a result column's alias (PostgreSQL's rule); anything
 * else is the expression itself.
 */
export function groupByExpression(
  item: unknown,
  targets: readonly unknown[],
  isInputColumn: (name: string) => boolean,
): unknown {
  const position = as(item, "A_Const")?.ival;
  if (position !== undefined) return as(targets[((position.ival as number | undefined) ?? 0) - 1], "ResTarget")?.val;
  const parts = columnRef(item);
  if (parts?.length === 1 && !isInputColumn(parts[0] as string)) {
    const aliased = targets.find((target) => as(target, "ResTarget")?.name === parts[0]);
    if (aliased) return as(aliased, "ResTarget")?.val;
  }
  return item;
}

/** The conjuncts of a boolean expression: `a AND (b AND c)` → [a, b, c]. */
export function conjuncts(node: unknown): unknown[] {
  if (node === undefined || node === null) return [];
  const bool = as(node, "BoolExpr");
  if (bool && bool.boolop === "AND_EXPR") return (bool.args as unknown[]).flatMap(conjuncts);
  return [node];
}

/** The operator name of an A_Expr (`=` for `a = b`). */
export function operatorName(expr: AnyNode): string | undefined {
  const parts = names(expr.name);
  return parts.at(-1);
}

/** SQL text of a (rewritten) statement or expression node. */
export function deparse(node: AnyNode): string {
  const marked = withMarkers(node);
  const sql = deparseSync((marked ?? node) as Parameters<typeof deparseSync>[0], { pretty: false });
  return marked ? restoreMarked(sql) : sql;
}

// Two things pgsql-deparser prints as another query, fixed with marker calls wrapped around a
// node before deparsing and written back after:
// - `FETCH FIRST n ROWS WITH TIES` comes out as `LIMIT n`: the count is marked, the clause restored;
// - a subscript or field of an expression that PostgreSQL only accepts in parentheses comes out
//   bare: `(ARRAY['a','b'])[i]` as `ARRAY['a', 'b'][i]`, a syntax error (so were CASE, COALESCE,
//   GREATEST and LEAST): the expression is marked, and the marker's call becomes parentheses.
const TIES_MARKER = "herd_fetch_with_ties__";
const PARENS_MARKER = "herd_parenthesized__";

/** What the deparser prints in parentheses itself (or what may be subscripted bare) under an A_Indirection. */
const INDIRECTION_SAFE = new Set([
  "ColumnRef",
  "FuncCall",
  "TypeCast",
  "A_Expr",
  "SubLink",
  "RowExpr",
  "A_Indirection",
  "ParamRef",
]);

const marker = (name: string, arg: unknown) => ({ FuncCall: { funcname: [{ String: { sval: name } }], args: [arg] } });

function needsParens(child: AnyNode): boolean {
  const arg = child.A_Indirection?.arg as AnyNode | undefined;
  return arg !== undefined && !INDIRECTION_SAFE.has(Object.keys(arg)[0] as string);
}

function withMarkers(node: AnyNode): AnyNode | undefined {
  let found = false;
  walk(node, (child) => {
    if (child.limitOption === "LIMIT_OPTION_WITH_TIES" || needsParens(child)) found = true;
    return !found;
  });
  if (!found) return undefined;
  const copy = structuredClone(node);
  walk(copy, (child) => {
    if (child.limitOption === "LIMIT_OPTION_WITH_TIES" && child.limitCount) {
      child.limitCount = marker(TIES_MARKER, child.limitCount);
    }
    if (needsParens(child)) child.A_Indirection.arg = marker(PARENS_MARKER, child.A_Indirection.arg);
    return undefined;
  });
  return copy;
}

function restoreMarked(sql: string): string {
  let out = sql;
  for (let at = out.indexOf(`LIMIT ${TIES_MARKER}(`); at >= 0; at = out.indexOf(`LIMIT ${TIES_MARKER}(`)) {
    const open = at + `LIMIT ${TIES_MARKER}`.length;
    const close = matchingParen(out, open);
    out = `${out.slice(0, at)}FETCH FIRST ${out.slice(open, close + 1)} ROWS WITH TIES${out.slice(close + 1)}`;
  }
  // `herd_parenthesized__(x)` → `(x)`, inside the deparser's own parentheses: `((x))[i]`
  if (!out.includes(PARENS_MARKER)) return out;
  const call = `${PARENS_MARKER}(`;
  let kept = "";
  let quote: string | undefined;
  for (let i = 0; i < out.length; i += 1) {
    const c = out[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (out.startsWith(call, i)) {
      i += PARENS_MARKER.length - 1;
      continue;
    }
    kept += c;
  }
  return kept;
}

/** The index of the parenthesis closing the one at `open`, skipping quoted text. */
function matchingParen(sql: string, open: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < sql.length; i += 1) {
    const c = sql[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "(") depth += 1;
    else if (c === ")" && --depth === 0) return i;
  }
  throw new Error("unbalanced parentheses in deparsed SQL");
}

/** The statements of a SQL text (RawStmt.stmt of each); throws on a syntax error. */
export function parseStatements(sql: string): AnyNode[] {
  return (parseSync(sql).stmts as AnyNode[]).map((raw) => raw.stmt as AnyNode);
}
