import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, as, deparse, names, unwrap, walk } from "../parser/ast.js";

/** A call of an aggregate (not as a window function). */
export function isAggregateCall(call: AnyNode, catalog: CatalogSnapshot): boolean {
  if (call.over) return false;
  if (call.agg_star || call.agg_distinct || call.agg_within_group || call.agg_order) return true;
  return catalog.functions.aggregates.has(names(call.funcname).at(-1) as string);
}

/** Aggregate calls of a SELECT level's result, HAVING and ORDER BY (not inside subqueries). */
export function forEachAggregate(select: AnyNode, catalog: CatalogSnapshot, visit: (call: AnyNode) => void): void {
  walk([select.targetList, select.havingClause, select.sortClause], (child, key) => {
    if (key === "SubLink") return false;
    if (key === "FuncCall" && isAggregateCall(child, catalog)) {
      visit(child);
      return false;
    }
    return undefined;
  });
}

export function hasAggregates(select: AnyNode, catalog: CatalogSnapshot): boolean {
  let found = false;
  forEachAggregate(select, catalog, () => {
    found = true;
  });
  return found;
}

/** Type OIDs the split looks at (pg_type.oid of the built-in types). */
export const TypeOid = {
  int2: 21,
  int4: 23,
  int8: 20,
  numeric: 1700,
  float4: 700,
  float8: 701,
  money: 790,
  interval: 1186,
} as const;

const INTEGER = new Set<number>([TypeOid.int2, TypeOid.int4]);
const EXACT = new Set<number>([TypeOid.int2, TypeOid.int4, TypeOid.int8, TypeOid.numeric]);
const FLOAT = new Set<number>([TypeOid.float4, TypeOid.float8]);
const SUMMABLE = new Set<number>([
  TypeOid.int8,
  TypeOid.numeric,
  TypeOid.float4,
  TypeOid.float8,
  TypeOid.money,
  TypeOid.interval,
]);

/** stddev / variance family: sample or population, square root or not. */
const SPREAD: Record<string, { sample: boolean; root: boolean }> = {
  stddev: { sample: true, root: true },
  stddev_samp: { sample: true, root: true },
  stddev_pop: { sample: false, root: true },
  variance: { sample: true, root: false },
  var_samp: { sample: true, root: false },
  var_pop: { sample: false, root: false },
};

/** Aggregates whose combine step is the aggregate itself over the partial results. */
const SELF_COMBINING: Record<string, string> = {
  min: "min",
  max: "max",
  bool_and: "bool_and",
  every: "bool_and",
  bool_or: "bool_or",
  bit_and: "bit_and",
  bit_or: "bit_or",
  bit_xor: "bit_xor",
};

/** Aggregates whose argument type decides how they split (their argument is probed first). */
export function needsArgumentType(call: AnyNode): boolean {
  const name = names(call.funcname).at(-1) as string;
  return !call.agg_distinct && !call.agg_star && (name === "sum" || name === "avg" || name in SPREAD);
}

/**
 * What the split asks of the worker query: a column computing `expression` per group at every
 * shard (its name in the merge table is returned), or a column the workers also group by.
 */
export interface PartialColumns {
  column(expression: string): string;
  groupColumn(expression: string): string;
}

/**
 * The coordinator's expression (SQL) combining the shards' partial results of one aggregate
 * call, with the worker columns it needs registered in `partials`; undefined when this call
 * cannot be split exactly (its rows must then be pulled to the coordinator whole).
 *
 * Result types and empty-input answers equal PostgreSQL's: count is bigint and 0 on no rows, sum
 * of int2/int4 is bigint, avg of integers and numeric is numeric (numeric division of the exact
 * sum by the count, as PostgreSQL computes it), avg of floats is float8 from a float8 sum, and
 * stddev/variance are computed from exact numeric sums of squares (herd.numeric_variance).
 */
export function combineAggregate(
  call: AnyNode,
  argumentType: number | undefined,
  partials: PartialColumns,
): string | undefined {
  if (call.agg_within_group || call.agg_order) return undefined;
  const name = names(call.funcname).at(-1) as string;
  const args = (call.args ?? []) as AnyNode[];
  const filter = call.agg_filter ? ` FILTER (WHERE ${deparse(call.agg_filter)})` : "";
  const arg = args[0] ? deparse(args[0]) : "";

  if (call.agg_distinct) {
    // the workers group by the arguments; the coordinator aggregates the distinct values
    const columns = args.map((a) => {
      if (isConstant(a)) return deparse(a);
      // a row value (`count(DISTINCT (a, b))`) is grouped field by field: a record cannot be a column
      const row = as(a, "RowExpr");
      if (row) return `ROW(${(row.args as AnyNode[]).map((field) => partials.groupColumn(deparse(field))).join(", ")})`;
      return partials.groupColumn(deparse(a));
    });
    const flag = call.agg_filter ? partials.column(`bool_or(${deparse(call.agg_filter)})`) : undefined;
    return `${quoteName(name)}(DISTINCT ${columns.join(", ")})${flag ? ` FILTER (WHERE ${flag})` : ""}`;
  }
  if (call.agg_star || name === "count") {
    const partial = partials.column(call.agg_star ? `count(*)${filter}` : `count(${arg})${filter}`);
    return `CAST(coalesce(sum(${partial}), 0) AS int8)`;
  }
  const combineWith = SELF_COMBINING[name];
  if (combineWith && args.length === 1) return `${combineWith}(${partials.column(`${name}(${arg})${filter}`)})`;
  const type = argumentType ?? -1;
  if (name === "sum" && args.length === 1) {
    if (INTEGER.has(type)) return `CAST(sum(${partials.column(`sum(${arg})${filter}`)}) AS int8)`;
    if (SUMMABLE.has(type)) return `sum(${partials.column(`sum(${arg})${filter}`)})`;
    return undefined;
  }
  if (name === "avg" && args.length === 1) {
    if (EXACT.has(type)) {
      const sum = partials.column(`sum(${arg})${filter}`);
      const count = partials.column(`count(${arg})${filter}`);
      return `(CAST(sum(${sum}) AS numeric) / NULLIF(sum(${count}), 0))`;
    }
    if (FLOAT.has(type) || type === TypeOid.interval) {
      const sum = partials.column(
        type === TypeOid.interval ? `sum(${arg})${filter}` : `sum(CAST(${arg} AS float8))${filter}`,
      );
      const count = partials.column(`count(${arg})${filter}`);
      return `(sum(${sum}) / CAST(NULLIF(sum(${count}), 0) AS float8))`;
    }
    return undefined;
  }
  const spread = SPREAD[name];
  if (spread && args.length === 1) {
    if (!EXACT.has(type) && !FLOAT.has(type)) return undefined;
    const value = FLOAT.has(type) ? exactNumeric(`CAST(${arg} AS float8)`) : `CAST(${arg} AS numeric)`;
    const n = partials.column(`count(${arg})${filter}`);
    const sx = partials.column(`sum(${value})${filter}`);
    const sxx = partials.column(`sum(${value} * ${value})${filter}`);
    const exact = `herd.numeric_variance(sum(${n}), sum(${sx}), sum(${sxx}), ${spread.sample}, ${spread.root})`;
    return FLOAT.has(type) ? `CAST(${exact} AS float8)` : exact;
  }
  if (name === "array_agg" && args.length === 1)
    return `herd.array_cat_agg(${partials.column(`array_agg(${arg})${filter}`)})`;
  if ((name === "jsonb_agg" && args.length === 1) || (name === "jsonb_object_agg" && args.length === 2)) {
    return `herd.jsonb_concat_agg(${partials.column(`${name}(${args.map((a) => deparse(a)).join(", ")})${filter}`)})`;
  }
  if (name === "string_agg" && args.length === 2 && isConstant(args[1] as AnyNode)) {
    const delimiter = deparse(args[1] as AnyNode);
    return `string_agg(${partials.column(`string_agg(${arg}, ${delimiter})${filter}`)}, ${delimiter})`;
  }
  return undefined;
}

/**
 * A float8 as numeric without losing digits: PostgreSQL's cast keeps 15 significant digits, so
 * the remainder (exact in float8, the values being that close) is added back.
 */
function exactNumeric(float8: string): string {
  const rounded = `CAST(${float8} AS numeric)`;
  return `(${rounded} + CAST(${float8} - CAST(${rounded} AS float8) AS numeric))`;
}

/** A constant or a parameter: the same for every row. */
export function isConstant(node: AnyNode): boolean {
  const [type, inner] = unwrap(node) ?? ["", {}];
  if (type === "A_Const" || type === "ParamRef") return true;
  if (type === "TypeCast") return isConstant(inner.arg as AnyNode);
  return false;
}

function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}
