import { HerdError, SqlState } from "@herd/shared";
import { MergeViaCoordinator } from "../executor/primitives/merge-via-coordinator.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { Refuse } from "../executor/primitives/refuse.js";
import { Route } from "../executor/primitives/route.js";
import { ShardStatements } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as, conjuncts, deparse, names } from "../parser/ast.js";
import { differsByPlacement } from "./insert-select-pushdown.js";
import { type RelationRef, tableMentions } from "./relations.js";

/**
 * MERGE into a distributed table, run shard group by shard group: when its source is a hash
 * table colocated with the target and the join condition ties the two distribution columns, a
 * target row and the source rows it can match live in the same shard group, and so does every row
 * a WHEN NOT MATCHED … INSERT makes from the source's key. Each group then runs
 * `MERGE INTO target_i USING source_i …` on every placement, in one two-phase write. Any other
 * source (a reference or ordinary table, a subquery, a table of another colocation group) joined
 * on the target's distribution column runs first and its rows go to the shards their keys hash
 * to (MergeViaCoordinator). Anything else is refused with Citus's message and a detail saying
 * which condition failed.
 */
export function planMergeStatement(
  node: AnyNode,
  statement: AnyNode,
  catalog: CatalogSnapshot,
  refs: readonly RelationRef[],
  plan: (statement: AnyNode) => Primitive,
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
  if (node.withClause) return refuse("MERGE with a WITH clause is not supported.");
  const sourceVar = as(node.sourceRelation, "RangeVar");
  const sourceSelect = as(node.sourceRelation, "RangeSubselect");
  const sourceName = (sourceVar?.alias?.aliasname ?? sourceVar?.relname ?? sourceSelect?.alias?.aliasname) as
    | string
    | undefined;
  if (!sourceName || (!sourceVar && !sourceSelect))
    return refuse("The source is neither a table, a view nor a subquery with a name.");
  const source = sourceVar && catalog.resolve(sourceVar.schemaname, sourceVar.relname);
  const targetName = (node.relation.alias?.aliasname as string | undefined) ?? (node.relation.relname as string);
  const isColumn = (expr: unknown, table: string, column: string) => {
    const fields = names(as(expr, "ColumnRef")?.fields);
    return fields.length === 2 && fields[0] === table && fields[1] === column;
  };
  // the source columns the join condition ties to the target's distribution column
  const tied = conjuncts(node.joinCondition).flatMap((item) => {
    const expr = as(item, "A_Expr");
    if (expr?.kind !== "AEXPR_OP" || names(expr.name).at(-1) !== "=") return [];
    const tie = (left: unknown, right: unknown) => {
      if (!isColumn(left, targetName, target.distributionColumn as string)) return [];
      const fields = names(as(right, "ColumnRef")?.fields);
      return fields.length === 2 && fields[0] === sourceName ? [fields[1] as string] : [];
    };
    return [...tie(expr.lexpr, expr.rexpr), ...tie(expr.rexpr, expr.lexpr)];
  });
  const colocated =
    source?.kind === "hash" &&
    source.colocationId === target.colocationId &&
    tied.includes(source.distributionColumn as string);
  const keyColumn = colocated ? (source?.distributionColumn as string) : tied[0];
  if (keyColumn === undefined)
    return refuse(
      `The join condition must include ${targetName}.${target.distributionColumn} = ${sourceName}.<a column of the source>.`,
    );
  const clauses = ((node.mergeWhenClauses ?? []) as unknown[]).map((item) => as(item, "MergeWhenClause") as AnyNode);
  for (const clause of clauses) {
    const problem = actionProblem(clause, target, sourceName, keyColumn, isColumn);
    if (problem) return problem;
  }
  if (differsByPlacement(node, target, catalog))
    return refuse("A volatile function, or the current time on a replicated table, would differ between copies.");
  if (!colocated) {
    // the tables the rest of the statement names: the target alone (a subquery in a WHEN clause
    // reading another distributed table would need its rows on every shard)
    const outside = refs.filter((ref) => !ref.path.includes("sourceRelation"));
    if (outside.some((ref) => ref.table && ref.table !== target))
      return refuse("A WHEN clause reads another distributed table.");
    const query: AnyNode = sourceVar
      ? {
          SelectStmt: {
            targetList: [starTarget()],
            fromClause: [{ RangeVar: { ...sourceVar, alias: undefined } }],
            op: "SETOP_NONE",
          },
        }
      : (sourceSelect?.subquery as AnyNode);
    return new MergeViaCoordinator({
      tree: statement,
      target,
      targetMentions: tableMentions(outside, true),
      sourceName,
      keyColumn,
      source: { statement: query, sql: deparse(query), plan: plan(query) },
      inserts: clauses.some((clause) => clause.commandType === "CMD_INSERT"),
      bySource: clauses.some((clause) => clause.matchKind === "MERGE_WHEN_NOT_MATCHED_BY_SOURCE"),
      workers: catalog.nodes,
    });
  }
  return new Route({
    statements: new ShardStatements(statement, tableMentions(refs, true)),
    anchors: [
      { table: target, pin: undefined },
      { table: source as DistributedTable, pin: undefined },
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
  keyColumn: string,
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
  if (isColumn(value, sourceName, keyColumn)) return undefined;
  return new Refuse(
    new HerdError("MERGE INSERT must use the source table distribution column value", {
      sqlState: SqlState.featureNotSupported,
      detail: `Insert ${sourceName}.${keyColumn} into ${target.name}.${key}, so the new row stays in its shard.`,
    }),
  );
}

function starTarget(): AnyNode {
  return { ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } };
}
