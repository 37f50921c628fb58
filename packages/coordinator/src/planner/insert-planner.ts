import { HerdError, SqlState } from "@herd/shared";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as } from "../parser/ast.js";
import { valueSource } from "./distribution-value.js";
import type { Plan } from "./plan.js";
import { PlannerErrors } from "./planner-errors.js";

/**
 * Plans INSERT … VALUES into a distributed or reference table. Rows whose values are all
 * constants or parameters go to the shards as written; anything else (a DEFAULT, a column with a
 * default left out, a function such as now() or nextval()) is evaluated once on the coordinator
 * first, so every placement stores the same value and a sequence advances once per row.
 */
export function planInsert(insert: AnyNode, statement: AnyNode, table: DistributedTable): Plan {
  const select = as(insert.selectStmt, "SelectStmt");
  if (!select?.valuesLists) {
    return {
      kind: "error",
      error: PlannerErrors.notSupported(
        insert.selectStmt
          ? "INSERT … SELECT into distributed tables"
          : "INSERT … DEFAULT VALUES into distributed tables",
      ),
    };
  }
  if (insert.withClause)
    return { kind: "error", error: PlannerErrors.notSupported("WITH in INSERT into distributed tables") };
  const writable = table.columns.filter((column) => !column.generated);
  const rowsFirst = (select.valuesLists as unknown[]).map((list) => (as(list, "List")?.items ?? []) as AnyNode[]);
  // without a column list, VALUES fills the first columns and the rest take their defaults
  const widest = Math.max(...rowsFirst.map((row) => row.length));
  const columns: string[] = insert.cols
    ? (insert.cols as unknown[]).map((col) => as(col, "ResTarget")?.name as string)
    : writable.slice(0, Math.min(widest, writable.length)).map((column) => column.name);
  for (const name of columns) {
    if (!table.columns.some((column) => column.name === name)) {
      return {
        kind: "error",
        error: new HerdError(`column "${name}" of relation "${table.name}" does not exist`, {
          sqlState: SqlState.undefinedColumn,
        }),
      };
    }
  }
  const rows = rowsFirst;
  for (const row of rows) {
    if (row.length !== columns.length) {
      return {
        kind: "error",
        error: new HerdError(
          row.length > columns.length || !insert.cols
            ? "INSERT has more expressions than target columns"
            : "INSERT has more target columns than expressions",
          { sqlState: SqlState.syntaxError },
        ),
      };
    }
  }
  const defaulted = writable.filter((column) => !columns.includes(column.name) && column.defaultExpr !== undefined);
  let distributionIndex: number | undefined;
  if (table.kind === "hash") {
    const index = columns.indexOf(table.distributionColumn as string);
    const hasDefault = defaulted.some((column) => column.name === table.distributionColumn);
    if (index < 0 && !hasDefault) return { kind: "error", error: PlannerErrors.insertWithoutPartitionValue() };
    distributionIndex = index < 0 ? undefined : index;
  }
  const conflict = insert.onConflictClause as AnyNode | undefined;
  if (conflict?.action === "ONCONFLICT_UPDATE") {
    for (const item of (conflict.targetList ?? []) as unknown[]) {
      if (as(item, "ResTarget")?.name === table.distributionColumn) {
        return { kind: "error", error: PlannerErrors.partitionValueChange() };
      }
    }
  }
  const needsEvaluation =
    defaulted.length > 0 ||
    (distributionIndex === undefined && table.kind === "hash") ||
    rows.some((row) => row.some((value) => valueSource(value) === undefined));
  return {
    kind: "insert",
    insert: {
      tree: statement,
      table,
      columns,
      rows,
      distributionIndex,
      needsEvaluation,
      returning: insert.returningClause !== undefined,
    },
  };
}
