import type { Primitive } from "../executor/primitives/primitive.js";
import { ShardSizes } from "../executor/primitives/shard-sizes.js";
import { SubPlans } from "../executor/primitives/subplans.js";
import { type AnyNode, as, names, nodeAtPath, parseStatements, walk, walkWithPath } from "../parser/ast.js";
import { catalogFunctionName, constantArguments } from "./function-call.js";
import { standInSubPlans } from "./stand-in-subplans.js";

/** The name the measured placements stand under until their rows replace them. */
const SIZES = "herd_shard_sizes";
const SIZES_SQL = `SELECT * FROM ${SIZES}`;
/** The alias of the views read inside their own rewrites: those are read as they are. */
const PLAIN = "herd_plain_view";

/** citus_shards with each active placement's size (pg_total_relation_size, as Citus's shard_size). */
const SHARDS_WITH_SIZES = `SELECT ${PLAIN}.table_name, ${PLAIN}.shardid, ${PLAIN}.shard_name, ${PLAIN}.citus_table_type, ${PLAIN}.colocation_id,
       ${PLAIN}.nodename, ${PLAIN}.nodeport, z.total_size AS shard_size, ${PLAIN}.shardstate
  FROM pg_catalog.citus_shards ${PLAIN}
  LEFT JOIN ${SIZES} z ON z.shardid = ${PLAIN}.shardid AND z.nodename = ${PLAIN}.nodename AND z.nodeport = ${PLAIN}.nodeport`;

/** citus_tables with each table's size: one copy of each shard, pretty-printed, as Citus shows it. */
const TABLES_WITH_SIZES = `SELECT ${PLAIN}.table_name, ${PLAIN}.citus_table_type, ${PLAIN}.distribution_column, ${PLAIN}.colocation_id,
       (SELECT pg_catalog.pg_size_pretty(CASE WHEN bool_and(z.total_size IS NOT NULL) THEN sum(z.total_size) END)
          FROM ${SIZES} z
         WHERE z.measured AND z.relation = ${PLAIN}.table_name::pg_catalog.oid) AS table_size,
       ${PLAIN}.shard_count, ${PLAIN}.table_owner, ${PLAIN}.access_method
  FROM pg_catalog.citus_tables ${PLAIN}`;

/** Citus's size functions and the column of the measured placements each sums. */
const SIZE_COLUMNS: Record<string, string> = {
  citus_relation_size: "relation_size",
  citus_table_size: "table_size",
  citus_total_relation_size: "total_size",
};

const VIEWS: Record<string, string> = { citus_shards: SHARDS_WITH_SIZES, citus_tables: TABLES_WITH_SIZES };

/**
 * Sizes inside queries, as Citus's users read them: `SELECT * FROM citus_tables`, `citus_shards`
 * (their size columns), `SELECT logicalrelid, pg_size_pretty(citus_table_size(logicalrelid)) FROM
 * pg_dist_partition`. Every active placement is measured first (ShardSizes) and its rows stand in
 * where the views' rewrites and the size calls read them; the rest of the query runs on the
 * coordinator's PostgreSQL. A size call over a relation that is not distributed gives NULL here
 * (Citus raises; herd's own `SELECT citus_table_size('t')` does too). Undefined when the statement
 * reads none of them (a size call with constant arguments is herd-function-subplans.ts's).
 */
export function planShardSizes(statement: AnyNode, plan: (statement: AnyNode) => Primitive): Primitive | undefined {
  const sizesRead = readsSizeColumn(statement);
  const places: { path: (string | number)[]; kind: "view" | "call" }[] = [];
  let taken = false;
  walkWithPath(statement, (node, key, path) => {
    if (key === "RangeVar" && node.relname === SIZES) taken = true;
    if (key === "RangeVar" && sizesRead && sizedView(node)) {
      places.push({ path: path.slice(0, -1), kind: "view" });
      return false;
    }
    if (key === "FuncCall" && sizeColumn(node) && !constantArguments(node))
      places.push({ path: path.slice(0, -1), kind: "call" });
    return undefined;
  });
  if (places.length === 0 || taken) return undefined;
  const tree = structuredClone(statement);
  rewrite(tree, places);
  const subPlans = standInSubPlans(
    tree,
    (rangeVar) => rangeVar.relname === SIZES,
    SIZES,
    SIZES_SQL,
    () => new ShardSizes(),
  );
  return new SubPlans(tree, subPlans, plan);
}

/** Puts the views' rewrites and the size calls' subqueries at `places` (found in the statement), in `tree` itself. */
function rewrite(tree: AnyNode, places: readonly { path: (string | number)[]; kind: "view" | "call" }[]): void {
  // innermost first: a call inside another call's argument is replaced before its holder moves
  for (const { path, kind } of [...places].reverse()) {
    const holder = nodeAtPath(tree, path);
    if (kind === "view") {
      const rangeVar = holder.RangeVar as AnyNode;
      const name = rangeVar.relname as string;
      delete holder.RangeVar;
      holder.RangeSubselect = {
        subquery: parseStatements(VIEWS[name] as string)[0],
        alias: rangeVar.alias ?? { aliasname: name },
      };
    } else {
      const call = holder.FuncCall as AnyNode;
      const column = sizeColumn(call) as string;
      const relation = ((call.args ?? []) as unknown[])[0];
      const sum = parseStatements(
        `SELECT (SELECT (CASE WHEN bool_and(z.${column} IS NOT NULL) THEN sum(z.${column}) END)::pg_catalog.int8
                   FROM ${SIZES} z
                  WHERE z.measured AND z.relation = (NULL)::pg_catalog.regclass::pg_catalog.oid)`,
      )[0] as AnyNode;
      const subLink = (sum.SelectStmt.targetList[0] as AnyNode).ResTarget.val as AnyNode;
      walk(subLink, (node, key) => {
        if (key === "TypeCast" && as(node.arg, "A_Const")?.isnull) {
          node.arg = as(relation, "NamedArgExpr")?.arg ?? relation;
          return false;
        }
        return undefined;
      });
      delete holder.FuncCall;
      Object.assign(holder, subLink);
      // a result column keeps the function's name (PostgreSQL would name the subquery's "sum")
      if (path.at(-1) === "val" && path.at(-2) === "ResTarget") {
        const target = nodeAtPath(tree, path.slice(0, -1));
        target.name ??= names(call.funcname).at(-1);
      }
    }
  }
}

/**
 * Whether the statement may read a view's size column (names it, or a `*`): only then are the
 * placements measured, which asks every worker (a query of where shards live must not depend on
 * every worker answering).
 */
function readsSizeColumn(statement: AnyNode): boolean {
  let reads = false;
  walk(statement, (node, key) => {
    if (key !== "ColumnRef") return undefined;
    const last = ((node.fields ?? []) as AnyNode[]).at(-1);
    if (last?.A_Star !== undefined || last?.String?.sval === "shard_size" || last?.String?.sval === "table_size")
      reads = true;
    return false;
  });
  return reads;
}

function sizeColumn(call: AnyNode): string | undefined {
  return SIZE_COLUMNS[catalogFunctionName(call) as string];
}

/** citus_shards or citus_tables as the client named it (pg_catalog's, with or without the schema). */
function sizedView(rangeVar: AnyNode): boolean {
  if (VIEWS[rangeVar.relname as string] === undefined || rangeVar.alias?.aliasname === PLAIN) return false;
  return rangeVar.schemaname === undefined || rangeVar.schemaname === "pg_catalog";
}
