import { Route } from "../executor/primitives/route.js";
import { ShardStatements } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as, names, walk } from "../parser/ast.js";
import { analyzeColocation } from "./colocation.js";
import { tableMentions } from "./relations.js";
import { runsGroupByGroup } from "./route-planner.js";
import { analyzeStatement } from "./semantics/analyze.js";
import { pinRelations } from "./shard-pruning.js";

/**
 * INSERT INTO target SELECT … FROM source, run where the rows are: when the SELECT reads hash
 * tables colocated with the target, runs group by group with final rows (joins on the
 * distribution columns, grouping by one, no ORDER BY/LIMIT/DISTINCT across groups), and feeds the
 * target's distribution column from a source's, every row of shard group i belongs to the
 * target's shard i. Each group then runs `INSERT INTO target_i SELECT … FROM source_i` on every
 * placement of the group, in the write's two-phase transaction: no row passes through the
 * coordinator (the Citus real-time tutorial's rollup is this shape). Undefined when the statement
 * is not of that shape; it then runs through the coordinator (insert-planner.ts).
 */
export function pushDownInsertSelect(insert: AnyNode, statement: AnyNode, catalog: CatalogSnapshot): Route | undefined {
  const target = catalog.resolve(insert.relation?.schemaname, insert.relation?.relname);
  const select = as(insert.selectStmt, "SelectStmt");
  if (target?.kind !== "hash" || !target.distributionColumn || !select) return undefined;
  if (select.valuesLists || select.withClause || insert.withClause || hasSubqueries(select)) return undefined;
  const query: AnyNode = { SelectStmt: select };
  const semantics = analyzeStatement(query, catalog);
  const refs = semantics.relations;
  const sources = refs.filter((ref) => ref.table?.kind === "hash");
  if (sources.length === 0 || refs.some((ref) => !ref.table)) return undefined;
  if (sources.some((ref) => ref.table?.colocationId !== target.colocationId)) return undefined;
  if (analyzeColocation(semantics, catalog).problem || !runsGroupByGroup(query, catalog, semantics)) return undefined;
  const outputs = (select.targetList ?? []) as AnyNode[];
  const columns = insertedColumns(insert, target);
  if (!columns || columns.length !== outputs.length || outputs.some((output) => hasStar(output))) return undefined;
  const key = as(outputs[columns.indexOf(target.distributionColumn)], "ResTarget");
  if (!key || !analyzeColocation(semantics, catalog).isKeyColumn(key.val)) return undefined;
  // columns left out take defaults (sequences, now()) the coordinator evaluates once per row
  if (target.columns.some((column) => !column.generated && column.defaultExpr && !columns.includes(column.name)))
    return undefined;
  if (differsByPlacement(insert, target, catalog) || setsKey(insert, target)) return undefined;
  const pins = pinRelations(semantics);
  return new Route({
    statements: new ShardStatements(statement, tableMentions(analyzeStatement(statement, catalog).relations, true)),
    anchors: sources.map((ref) => ({ table: ref.table as DistributedTable, pin: pins.get(ref.rangeVar) })),
    references: [...new Set(refs.filter((ref) => ref.table?.kind === "reference").map((ref) => ref.table))].filter(
      (table) => table !== undefined,
    ),
    target,
    workers: catalog.nodes,
    locksRows: false,
    severalShards: undefined,
  });
}

/** The target's columns the SELECT's outputs go to, in order; undefined when unknown. */
function insertedColumns(insert: AnyNode, target: DistributedTable): string[] | undefined {
  if (insert.cols) return (insert.cols as unknown[]).map((col) => as(col, "ResTarget")?.name as string);
  return target.columns.filter((column) => !column.generated).map((column) => column.name);
}

function hasStar(output: AnyNode): boolean {
  let star = false;
  walk(output, (_node, key) => {
    if (key === "A_Star") star = true;
    return star ? false : undefined;
  });
  return star;
}

function hasSubqueries(select: AnyNode): boolean {
  let found = false;
  walk(select, (_node, key) => {
    if (key === "SubLink" || key === "RangeSubselect") found = true;
    return found ? false : undefined;
  });
  return found;
}

/** Stable functions whose value is the worker transaction's own moment. */
const MOMENTS = new Set(["now", "transaction_timestamp", "statement_timestamp"]);

/**
 * A volatile function (random(), nextval()) would give each placement its own value; so would the
 * current time (now(), CURRENT_TIMESTAMP: each worker's transaction has its own start) when the
 * target has several copies: such rows are made on the coordinator. Other stable functions
 * (date_trunc, to_char) give every placement the same value: the workers share the session's
 * settings.
 */
export function differsByPlacement(statement: AnyNode, target: DistributedTable, catalog: CatalogSnapshot): boolean {
  const replicated = target.shards.some((shard) => shard.placements.length > 1);
  let differs = false;
  walk(statement, (node, key) => {
    if (key === "FuncCall") {
      const name = names(node.funcname).at(-1) as string;
      if (catalog.functions.volatile.has(name) || (replicated && MOMENTS.has(name))) differs = true;
    } else if (key === "SQLValueFunction" && replicated) differs = true;
    return differs ? false : undefined;
  });
  return differs;
}

/** ON CONFLICT … DO UPDATE SET <distribution column> = …: left to the coordinator's path, which decides. */
function setsKey(insert: AnyNode, target: DistributedTable): boolean {
  const clause = (as(insert.onConflictClause, "OnConflictClause") ?? insert.onConflictClause) as AnyNode | undefined;
  const updates = (clause?.targetList ?? []) as unknown[];
  return updates.some((item) => as(item, "ResTarget")?.name === target.distributionColumn);
}
