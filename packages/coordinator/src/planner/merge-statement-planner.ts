import { HerdError, SqlState } from "@herd/shared";
import type { Primitive } from "../executor/primitives/primitive.js";
import { Refuse } from "../executor/primitives/refuse.js";
import { Route } from "../executor/primitives/route.js";
import { ShardStatements } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as, names } from "../parser/ast.js";
import { differsByPlacement } from "./insert-select-pushdown.js";
import { type RelationRef, tableMentions } from "./relations.js";

/**
 * MERGE into a distributed table, run shard group by shard group: when its source is a hash
 * table colocated with the target and the join condition ties the two distribution columns, a
 * target row and the source rows it can match live in the same shard group, and so does every row
 * a WHEN NOT MATCHED … INSERT makes from the source's key. Each group then runs
 * `MERGE INTO target_i USING source_i …` on every placement, in one two-phase write. Anything
 * else is refused as Citus refuses it (Citus repartitions some; herd does not yet).
 */
export function planMergeStatement(
  node: AnyNode,
  statement: AnyNode,
  catalog: CatalogSnapshot,
  refs: readonly RelationRef[],
): Primitive {
  const refuse = (why: string) =>
    new Refuse(
      new HerdError(
        "MERGE command is only supported when all distributed tables are co-located and joined on their distribution columns",
        { sqlState: SqlState.featureNotSupported, detail: why },
      ),
    );
  const target = catalog.resolve(node.relation?.schemaname, node.relation?.relname);
  if (target?.kind !== "hash" || !target.distributionColumn)
    return refuse("The target is not a hash-distributed table.");
  const sourceVar = as(node.sourceRelation, "RangeVar");
  const source = sourceVar && catalog.resolve(sourceVar.schemaname, sourceVar.relname);
  if (!sourceVar || source?.kind !== "hash" || !source.distributionColumn)
    return refuse("The source is not a distributed table (a subquery, an ordinary or a reference table).");
  if (source.colocationId !== target.colocationId) return refuse("The source is not colocated with the target.");
  if (node.withClause) return refuse("MERGE with a WITH clause is not supported.");
  const targetName = (node.relation.alias?.aliasname as string | undefined) ?? (node.relation.relname as string);
  const sourceName = (sourceVar.alias?.aliasname as string | undefined) ?? (sourceVar.relname as string);
  const isColumn = (expr: unknown, table: string, column: string) => {
    const fields = names(as(expr, "ColumnRef")?.fields);
    return fields.length === 2 && fields[0] === table && fields[1] === column;
  };
  const keyJoin = conjuncts(node.joinCondition).some((item) => {
    const expr = as(item, "A_Expr");
    if (expr?.kind !== "AEXPR_OP" || names(expr.name).at(-1) !== "=") return false;
    const tie = (left: unknown, right: unknown) =>
      isColumn(left, targetName, target.distributionColumn as string) &&
      isColumn(right, sourceName, source.distributionColumn as string);
    return tie(expr.lexpr, expr.rexpr) || tie(expr.rexpr, expr.lexpr);
  });
  if (!keyJoin)
    return refuse(
      `The join condition must include ${targetName}.${target.distributionColumn} = ${sourceName}.${source.distributionColumn}.`,
    );
  for (const item of (node.mergeWhenClauses ?? []) as unknown[]) {
    const clause = as(item, "MergeWhenClause") as AnyNode;
    const problem = actionProblem(clause, target, sourceName, source, isColumn);
    if (problem) return problem;
  }
  if (differsByPlacement(node, target, catalog))
    return refuse("A volatile function, or the current time on a replicated table, would differ between copies.");
  return new Route({
    statements: new ShardStatements(statement, tableMentions(refs, true)),
    anchors: [
      { table: target, pin: undefined },
      { table: source, pin: undefined },
    ],
    references: [],
    target,
    workers: catalog.nodes,
    locksRows: false,
    severalShards: undefined,
  });
}

/** An UPDATE that changes the distribution column, or an INSERT whose key is not the source's. */
function actionProblem(
  clause: AnyNode,
  target: DistributedTable,
  sourceName: string,
  source: DistributedTable,
  isColumn: (expr: unknown, table: string, column: string) => boolean,
): Refuse | undefined {
  const key = target.distributionColumn as string;
  const targets = ((clause.targetList ?? []) as unknown[]).map((item) => as(item, "ResTarget") as AnyNode);
  if (clause.commandType === "CMD_UPDATE" && targets.some((item) => item.name === key))
    return new Refuse(
      new HerdError("updating the distribution column is not allowed in MERGE actions", {
        sqlState: SqlState.featureNotSupported,
      }),
    );
  if (clause.commandType !== "CMD_INSERT") return undefined;
  const columns =
    targets.length > 0
      ? targets.map((item) => item.name as string)
      : target.columns.filter((c) => !c.generated).map((c) => c.name);
  const value = ((clause.values ?? []) as unknown[])[columns.indexOf(key)];
  if (isColumn(value, sourceName, source.distributionColumn as string)) return undefined;
  return new Refuse(
    new HerdError("MERGE INSERT must use the source table distribution column value", {
      sqlState: SqlState.featureNotSupported,
      detail: `Insert ${sourceName}.${source.distributionColumn} into ${target.name}.${key}, so the new row stays in its shard.`,
    }),
  );
}

/** The items of an AND tree (one item when it is not an AND). */
function conjuncts(expr: unknown): unknown[] {
  const bool = as(expr, "BoolExpr");
  if (bool?.boolop === "AND_EXPR") return ((bool.args ?? []) as unknown[]).flatMap(conjuncts);
  return [expr];
}
