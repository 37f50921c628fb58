import { HerdError, SqlState } from "@herd/shared";
import { Insert } from "../executor/primitives/insert.js";
import { InsertSelect } from "../executor/primitives/insert-select.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { Refuse } from "../executor/primitives/refuse.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse, hasParameterOutsideSelect } from "../parser/ast.js";
import { PlannerErrors } from "./planner-errors.js";
import { type RelationRef, tableMentions } from "./relations.js";
import { valueSource } from "./value-source.js";

/**
 * INSERT … SELECT where the target or the SELECT is distributed (and not pushed down whole,
 * insert-select-pushdown.ts): the SELECT is planned as a statement of its own (any shape herd
 * answers: one shard, merged, recursive) and run first; its rows, spooled in batches, are
 * inserted a batch at a time as INSERT … VALUES: into a distributed table routed by shard, with
 * defaults, ON CONFLICT and RETURNING as written; into an ordinary table on the coordinator; all
 * in one transaction (executor/primitives/insert-select.ts). Undefined for INSERT … VALUES.
 */
export function planInsertSelect(
  insert: AnyNode,
  statement: AnyNode,
  plan: (query: AnyNode) => Primitive,
): Primitive | undefined {
  const select = as(insert.selectStmt, "SelectStmt");
  if (!select || select.valuesLists) return undefined;
  if (insert.withClause) {
    return new Refuse(
      PlannerErrors.notSupported(
        "WITH before INSERT … SELECT with distributed tables",
        "Write the WITH inside the SELECT: INSERT INTO t WITH x AS (…) SELECT … FROM x.",
      ),
    );
  }
  const query: AnyNode = { SelectStmt: select };
  return new InsertSelect(statement, { statement: query, sql: deparse(query), plan: plan(query) }, plan);
}

/**
 * Plans INSERT … VALUES into a distributed or reference table. Rows whose values are all
 * constants or parameters go to the shards as written; anything else (a DEFAULT, a column with a
 * default left out, a function such as now() or nextval()) is evaluated once on the coordinator
 * first, so every placement stores the same value and a sequence advances once per row.
 */
export function planInsert(
  insert: AnyNode,
  statement: AnyNode,
  table: DistributedTable,
  catalog: CatalogSnapshot,
  refs: readonly RelationRef[],
): Insert | Refuse {
  const select = as(insert.selectStmt, "SelectStmt");
  if (!select?.valuesLists) {
    return new Refuse(PlannerErrors.notSupported("INSERT … DEFAULT VALUES into distributed tables"));
  }
  if (insert.withClause) return new Refuse(PlannerErrors.notSupported("WITH in INSERT into distributed tables"));
  const writable = table.columns.filter((column) => !column.generated);
  const rows = (select.valuesLists as unknown[]).map((list) => (as(list, "List")?.items ?? []) as AnyNode[]);
  // without a column list, VALUES fills the first columns and the rest take their defaults
  const widest = Math.max(...rows.map((row) => row.length));
  const columns: string[] = insert.cols
    ? (insert.cols as unknown[]).map((col) => as(col, "ResTarget")?.name as string)
    : writable.slice(0, Math.min(widest, writable.length)).map((column) => column.name);
  for (const name of columns) {
    if (!table.columns.some((column) => column.name === name)) {
      return new Refuse(
        new HerdError(`column "${name}" of relation "${table.name}" does not exist`, {
          sqlState: SqlState.undefinedColumn,
        }),
      );
    }
  }
  for (const row of rows) {
    if (row.length !== columns.length) {
      return new Refuse(
        new HerdError(
          row.length > columns.length || !insert.cols
            ? "INSERT has more expressions than target columns"
            : "INSERT has more target columns than expressions",
          { sqlState: SqlState.syntaxError },
        ),
      );
    }
  }
  const defaulted = writable.filter((column) => !columns.includes(column.name) && column.defaultExpr !== undefined);
  let distributionIndex: number | undefined;
  if (table.kind === "hash") {
    const index = columns.indexOf(table.distributionColumn as string);
    const hasDefault = defaulted.some((column) => column.name === table.distributionColumn);
    if (index < 0 && !hasDefault) return new Refuse(PlannerErrors.insertWithoutPartitionValue());
    distributionIndex = index < 0 ? undefined : index;
  }
  const conflict = insert.onConflictClause as AnyNode | undefined;
  if (conflict?.action === "ONCONFLICT_UPDATE") {
    for (const item of (conflict.targetList ?? []) as unknown[]) {
      const target = as(item, "ResTarget");
      // `SET key = excluded.key` (Knex's merge() sends it) keeps the key: the conflicting row has
      // the same value, since every unique index of a distributed table includes the key
      if (target?.name === table.distributionColumn && !isExcludedColumn(target?.val, table.distributionColumn)) {
        return new Refuse(PlannerErrors.partitionValueChange());
      }
    }
  }
  const needsEvaluation =
    defaulted.length > 0 ||
    (distributionIndex === undefined && table.kind === "hash") ||
    rows.some((row) => row.some((value) => valueSource(value) === undefined));
  // VALUES is replaced per shard: only the tables named elsewhere are renamed
  const outsideValues = refs.filter((ref) => !ref.path.includes("valuesLists"));
  return new Insert({
    tree: statement,
    mentions: tableMentions(outsideValues, true),
    table,
    columns,
    rows,
    distributionValues: rows.map((row) =>
      distributionIndex === undefined ? undefined : valueSource(row[distributionIndex]),
    ),
    needsEvaluation,
    parametersOutsideValues: hasParameterOutsideSelect(insert),
    workers: catalog.nodes,
  });
}

/** `excluded.<column>` as written in ON CONFLICT DO UPDATE SET. */
function isExcludedColumn(value: unknown, column: string | undefined): boolean {
  const fields = ((as(value, "ColumnRef")?.fields ?? []) as unknown[]).map((field) => as(field, "String")?.sval);
  return fields.length === 2 && fields[0] === "excluded" && fields[1] === column;
}
