import type { DeleteStmt, InsertStmt, RangeVar, SelectStmt, UpdateStmt } from "@pgsql/types";
import type { DistributedTable } from "../../metadata/catalog-types.js";
import type { AnyNode } from "../../parser/ast.js";

/**
 * A column as the semantic pass names it: `<entry id>.<column>` for a table's column, or a fresh
 * name for a computed result column. Two references mean the same column when their keys are equal.
 */
export type ColumnKey = string;

/** One item of a FROM list (or the target of UPDATE/DELETE): what its columns are. */
export interface RangeEntry {
  /** The name its columns are qualified with: the alias, else the table's or CTE's name. */
  readonly name: string;
  readonly kind: "table" | "cte" | "subquery" | "function";
  /** The RangeVar that names it (tables and CTE references). */
  readonly rangeVar: RangeVar | undefined;
  /** The distributed or reference table it reads (kind "table"); undefined for an ordinary table. */
  readonly table: DistributedTable | undefined;
  /** Column name → key. Empty where herd does not know the columns (ordinary tables, functions). */
  readonly columns: ReadonlyMap<string, ColumnKey>;
  /** Herd knows every column it has (distributed and reference tables, subqueries, CTEs). */
  readonly knownColumns: boolean;
  /** On the nullable side of an outer join: its columns may be NULL for rows it did not match. */
  readonly nullable: boolean;
  /** Holds rows of a distributed table (it is one, or a subquery reading one). */
  readonly distributed: boolean;
}

/** A condition of a query level: a conjunct of WHERE or of a join's ON, and which. */
export interface Condition {
  readonly node: AnyNode;
  /**
   * "join" for INNER joins; "outer-join" for LEFT/RIGHT joins (the ON restricts only which rows
   * of the nullable side match, never the preserved side's rows); a FULL join keeps unmatched
   * rows of both sides.
   */
  readonly source: "where" | "join" | "outer-join" | "full-join";
}

/**
 * One query level — a SELECT (a subquery, a CTE's body, an arm of a set operation, the
 * statement itself) or the UPDATE/DELETE/INSERT statement — with its FROM entries resolved.
 */
export interface QueryLevel {
  readonly kind: "select" | "set-operation" | "update" | "delete" | "insert";
  /**
   * Where it sits: the statement, a FROM subquery, a sublink, a CTE's body (a data-modifying CTE's
   * is an update, delete or insert level), an arm of a set operation, or an INSERT's rows.
   */
  readonly role: "statement" | "from" | "sublink" | "cte" | "arm" | "source";
  /** The level's fields (the SelectStmt's, the UpdateStmt's, …): see selectOf(). */
  readonly node: SelectStmt | UpdateStmt | DeleteStmt | InsertStmt;
  /** The level whose columns its column references may also mean (correlation, LATERAL). */
  readonly parent: QueryLevel | undefined;
  readonly entries: readonly RangeEntry[];
  /** Result column name → key (a set operation's: its first arm's). */
  readonly outputs: ReadonlyMap<string, ColumnKey>;
  /** It reads a distributed table, itself or through its subqueries. */
  readonly distributed: boolean;
  /** Conjuncts of WHERE and of the joins' ON conditions. */
  readonly conditions: readonly Condition[];
  /** Equalities of columns that USING joins add. */
  readonly usingPairs: readonly (readonly [ColumnKey, ColumnKey])[];
  /** An outer join keeps unmatched rows of a side that holds no distributed table, opposite one that does. */
  readonly preservesRowsWithoutShards: boolean;
}

/** The SELECT of a select or set-operation level; undefined for UPDATE, DELETE and INSERT. */
export function selectOf(level: QueryLevel): SelectStmt | undefined {
  return level.kind === "select" || level.kind === "set-operation" ? (level.node as SelectStmt) : undefined;
}
