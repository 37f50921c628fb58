import { MERGE_TABLE, type MergeQueries } from "../executor/merge-on-backend.js";
import type { MergeSplit, StatementTypes } from "../executor/primitives/merge-route.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import {
  type AnyNode,
  as,
  columnRef,
  deparse,
  groupByExpression,
  parseStatements,
  unwrap,
  walk,
} from "../parser/ast.js";
import {
  combineAggregate,
  forEachAggregate,
  isAggregateCall,
  needsArgumentType,
  type PartialColumns,
} from "./aggregates.js";
import { PlannerErrors } from "./planner-errors.js";
import { tableMentions } from "./relations.js";
import { analyzeStatement } from "./semantics/analyze.js";
import type { QueryLevel } from "./semantics/query-level.js";

/**
 * The two halves of a multi-shard SELECT whose rows cannot simply be appended (after Citus's
 * worker and coordinator queries):
 *
 * - the **worker query** runs on every shard group and produces partial rows: the final rows
 *   (plus columns to sort on) when each shard's rows are final, or per-group partial aggregates;
 * - its rows are loaded into a temporary table of the session's own PostgreSQL (`herd_merge`,
 *   created from the worker query itself, so types, typmods and collations are exact), and the
 *   **combine query** runs there: it sorts, de-duplicates, groups, combines aggregates, filters
 *   by HAVING, and applies LIMIT/OFFSET, so everything after the shards is PostgreSQL's own
 *   evaluation (ORDER BY collations, numeric scales, NULL ordering).
 *
 * Worked example (`lineitem` distributed by l_orderkey):
 *   SELECT l_shipmode, round(avg(l_quantity), 2) AS q FROM lineitem GROUP BY l_shipmode ORDER BY q DESC LIMIT 3
 *   worker:  SELECT l_shipmode AS c1, sum(l_quantity), count(l_quantity) FROM lineitem_102008 GROUP BY l_shipmode
 *   combine: SELECT c1 AS l_shipmode, round(CAST(sum(c2) AS numeric) / NULLIF(sum(c3), 0), 2) AS q
 *              FROM pg_temp.herd_merge GROUP BY c1 ORDER BY q DESC LIMIT 3
 */
/** The plan-time half of a merge: the SELECT, how it splits, and which argument types the build needs. */
interface MergeTemplate {
  /** "rows": each shard's rows are final (no aggregation, or grouped by the distribution column). */
  readonly kind: "rows" | "aggregate";
  readonly select: AnyNode;
  /** The SELECT's query level, as the semantic pass resolved it. */
  readonly level: QueryLevel;
  /** Aggregate arguments whose type decides the split (probed on the shell tables first). */
  readonly probedArguments: readonly AnyNode[];
}

/**
 * The split of a multi-shard SELECT (`kind` as the route planner decided): the probe of the
 * aggregate arguments' types now, the worker and combine queries once PostgreSQL told the types.
 */
export function mergeSplit(
  select: AnyNode,
  kind: MergeTemplate["kind"],
  catalog: CatalogSnapshot,
  level: QueryLevel,
): MergeSplit {
  const template = mergeTemplate(select, kind, catalog, level);
  const probe = argumentProbe(template);
  return {
    kind,
    probe: probe && deparse(probe),
    build(types: StatementTypes) {
      const queries = buildMerge(template, types, catalog);
      return { queries, workerMentions: tableMentions(analyzeStatement(queries.worker, catalog).relations, true) };
    },
  };
}

function mergeTemplate(
  select: AnyNode,
  kind: MergeTemplate["kind"],
  catalog: CatalogSnapshot,
  level: QueryLevel,
): MergeTemplate {
  if (kind === "rows") return { kind, select, level, probedArguments: [] };
  if (((select.groupClause ?? []) as unknown[]).some((item) => as(item, "GroupingSet")))
    throw PlannerErrors.notSupported("GROUPING SETS, ROLLUP or CUBE across several shards");
  const probed: AnyNode[] = [];
  forEachAggregate(select, catalog, (call) => {
    if (needsArgumentType(call) && call.args?.[0]) probed.push(call.args[0] as AnyNode);
  });
  return { kind: "aggregate", select, level, probedArguments: probed };
}

/** The SELECT that tells the probed arguments' types: same FROM and WHERE, arguments as columns. */
function argumentProbe(template: MergeTemplate): AnyNode | undefined {
  if (template.probedArguments.length === 0) return undefined;
  const select = template.select;
  return {
    SelectStmt: {
      withClause: select.withClause,
      fromClause: select.fromClause,
      whereClause: select.whereClause,
      targetList: template.probedArguments.map((val) => ({ ResTarget: { val } })),
      limitOption: "LIMIT_OPTION_DEFAULT",
      op: "SETOP_NONE",
    },
  };
}

/** Run-time half: the worker and combine queries, given the types PostgreSQL reported. */
function buildMerge(template: MergeTemplate, types: StatementTypes, catalog: CatalogSnapshot): MergeQueries {
  if (template.kind === "rows") return new RowsMerge(template.select, types).build();
  const argumentTypes = new Map(template.probedArguments.map((arg, i) => [arg, types.argumentTypes[i] as number]));
  try {
    return new AggregateMerge(template, types, catalog, argumentTypes, false).build();
  } catch (error) {
    if (!(error instanceof NeedsRows)) throw error;
    return new AggregateMerge(template, types, catalog, argumentTypes, true).build();
  }
}

/** An aggregate that cannot be split: the rows go to the coordinator whole. */
class NeedsRows extends Error {}

/** Columns of the worker query, named c1, c2, … in the merge table. */
class WorkerColumns implements PartialColumns {
  readonly targets: AnyNode[] = [];
  readonly groupBy: AnyNode[] = [];
  readonly names: string[] = [];
  private readonly byText = new Map<string, string>();
  private readonly grouped = new Set<string>();

  constructor(private readonly offset = 0) {}

  column(expression: string): string {
    return this.add(parseExpression(expression));
  }

  groupColumn(expression: string): string {
    const node = parseExpression(expression);
    const name = this.add(node);
    if (!this.grouped.has(name)) {
      this.grouped.add(name);
      this.groupBy.push(node);
    }
    return name;
  }

  add(node: AnyNode): string {
    const text = deparse(node);
    const existing = this.byText.get(text);
    if (existing) return existing;
    const name = `c${this.offset + this.targets.length + 1}`;
    this.targets.push({ ResTarget: { val: node } });
    this.names.push(name);
    this.byText.set(text, name);
    return name;
  }
}

/**
 * Each shard's rows are final: the workers run the statement (without OFFSET, LIMIT raised by
 * the offset), plus any sort expression that is not a result column; the coordinator sorts,
 * de-duplicates and limits.
 */
class RowsMerge {
  private readonly outputCount: number;

  constructor(
    private readonly select: AnyNode,
    private readonly types: StatementTypes,
  ) {
    this.outputCount = types.outputNames.length;
  }

  build(): MergeQueries {
    const select = this.select;
    const worker = structuredClone(select) as AnyNode;
    const extras = new WorkerColumns(this.outputCount);
    const targetTexts = this.targetTexts();
    const resolve = (node: AnyNode): AnyNode => {
      const position = positionOf(node, this.types.outputNames, targetTexts);
      return columnNode(position !== undefined ? `c${position + 1}` : extras.add(structuredClone(node)));
    };
    const sortClause = ((select.sortClause ?? []) as AnyNode[]).map((item) => {
      const sortBy = as(item, "SortBy") as AnyNode;
      return { SortBy: { ...sortBy, node: resolve(sortBy.node as AnyNode) } };
    });
    const distinct = select.distinctClause as unknown[] | undefined;
    const distinctClause = distinct?.map((item) => (unwrap(item) ? resolve(item as AnyNode) : item));
    worker.targetList = [...(worker.targetList as AnyNode[]), ...extras.targets];
    worker.limitOffset = undefined;
    if (select.limitCount) {
      worker.limitCount = select.limitOffset
        ? parseExpression(`(${deparse(select.limitCount)}) + (${deparse(select.limitOffset)})`)
        : select.limitCount;
    } else if (!distinct?.some((item) => unwrap(item))) {
      worker.sortClause = undefined; // nothing to cut per shard: the coordinator sorts once
    }
    const columns = [...this.types.outputNames.map((_, i) => `c${i + 1}`), ...extras.names];
    const combine = combineStatement({
      targetList: this.types.outputNames.map((name, i) => target(columnNode(`c${i + 1}`), name)),
      distinctClause,
      sortClause: sortClause.length > 0 ? sortClause : undefined,
      limitCount: select.limitCount,
      limitOffset: select.limitOffset,
      limitOption: select.limitOption,
    });
    const strategy = select.limitCount ? "rows (limit pushed down)" : "rows";
    return { worker: { SelectStmt: worker }, columns, combine, strategy };
  }

  /** Deparsed result expressions by output position (none when `*` makes positions uncertain). */
  private targetTexts(): (string | undefined)[] {
    const targets = (this.select.targetList ?? []) as AnyNode[];
    if (targets.some((item) => isStar(as(item, "ResTarget")?.val))) return [];
    return targets.map((item) => deparse(as(item, "ResTarget")?.val as AnyNode));
  }
}

/**
 * Groups spread over shards: the workers group by the GROUP BY expressions and compute partial
 * aggregates; the coordinator groups again and combines them. `pullRows`: some aggregate cannot
 * be split, so the workers send the rows' columns and the coordinator aggregates them all.
 */
class AggregateMerge {
  private readonly columns = new WorkerColumns();
  /** Deparsed GROUP BY expression → merge-table column. */
  private readonly groupKeys = new Map<string, string>();
  private readonly combineGroupBy: AnyNode[] = [];

  private readonly select: AnyNode;

  constructor(
    private readonly template: MergeTemplate,
    private readonly types: StatementTypes,
    private readonly catalog: CatalogSnapshot,
    private readonly argumentTypes: ReadonlyMap<AnyNode, number>,
    private readonly pullRows: boolean,
  ) {
    this.select = template.select;
  }

  build(): MergeQueries {
    const select = this.select;
    const targets = (select.targetList ?? []) as AnyNode[];
    if (targets.some((item) => isStar(as(item, "ResTarget")?.val)))
      throw PlannerErrors.notSupported("SELECT * with aggregates across several shards");
    if (!this.pullRows) {
      for (const item of (select.groupClause ?? []) as AnyNode[]) {
        const expression = this.groupExpression(item);
        const column = this.columns.groupColumn(deparse(expression));
        this.groupKeys.set(deparse(expression), column);
        this.combineGroupBy.push(columnNode(column));
      }
    }
    const outputNames = this.types.outputNames;
    const targetList = targets.map((item, i) =>
      target(this.combineExpression(as(item, "ResTarget")?.val as AnyNode), outputNames[i] as string),
    );
    const keep = (node: AnyNode) => isPosition(node) || isOutputName(node, outputNames);
    const sortClause = ((select.sortClause ?? []) as AnyNode[]).map((item) => {
      const sortBy = as(item, "SortBy") as AnyNode;
      const node = sortBy.node as AnyNode;
      return { SortBy: { ...sortBy, node: keep(node) ? node : this.combineExpression(node) } };
    });
    const distinct = select.distinctClause as unknown[] | undefined;
    const distinctClause = distinct?.map((item) =>
      unwrap(item) && !keep(item as AnyNode) ? this.combineExpression(item as AnyNode) : item,
    );
    const havingClause = select.havingClause ? this.combineExpression(select.havingClause) : undefined;
    const groupClause = this.pullRows
      ? ((select.groupClause ?? []) as AnyNode[]).map((item) =>
          isPosition(item) ? item : this.combineExpression(this.groupExpression(item)),
        )
      : this.combineGroupBy;
    const worker: AnyNode = {
      withClause: select.withClause,
      fromClause: select.fromClause,
      whereClause: select.whereClause,
      targetList: this.columns.targets.length > 0 ? this.columns.targets : [{ ResTarget: { val: constant(1) } }],
      groupClause: this.columns.groupBy.length > 0 ? this.columns.groupBy : undefined,
      limitOption: "LIMIT_OPTION_DEFAULT",
      op: "SETOP_NONE",
    };
    const combine = combineStatement({
      targetList,
      groupClause: groupClause.length > 0 ? groupClause : undefined,
      havingClause,
      distinctClause,
      sortClause: sortClause.length > 0 ? sortClause : undefined,
      limitCount: select.limitCount,
      limitOffset: select.limitOffset,
      limitOption: select.limitOption,
    });
    const columns = this.columns.targets.length > 0 ? this.columns.names : ["c1"];
    return {
      worker: { SelectStmt: worker },
      columns,
      combine,
      strategy: this.pullRows ? "rows pulled for aggregation" : "partial aggregates",
    };
  }

  /** A GROUP BY item as an expression (`GROUP BY 2` and `GROUP BY alias` name a result column). */
  private groupExpression(item: AnyNode): AnyNode {
    const targets = (this.select.targetList ?? []) as unknown[];
    return groupByExpression(item, targets, (name) => this.isInputColumn(name)) as AnyNode;
  }

  /** A FROM entry may have a column of that name (entries whose columns herd does not know may). */
  private isInputColumn(name: string): boolean {
    return this.template.level.entries.some((entry) => !entry.knownColumns || entry.columns.has(name));
  }

  /** An expression of the original, rewritten over the merge table's columns. */
  private combineExpression(node: AnyNode): AnyNode {
    const map = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(map);
      if (value === null || typeof value !== "object") return value;
      const unwrapped = unwrap(value);
      if (!unwrapped) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, map(v)]));
      const [type, inner] = unwrapped;
      if (!this.pullRows && this.groupKeys.size > 0 && EXPRESSION_TYPES.has(type)) {
        const column = this.groupKeys.get(deparse(value as AnyNode));
        if (column) return columnNode(column);
      }
      // a subquery over nothing but constants (a subplan's rows, recursive-planning.ts) runs as it
      // is in the combine query on the coordinator
      if (type === "SubLink" && selfContained(inner)) return value;
      if (type === "SubLink")
        throw PlannerErrors.cannotPushDown(
          "subqueries in the select list, HAVING or ORDER BY of an aggregate across shards",
        );
      if (type === "FuncCall" && inner.over) throw PlannerErrors.windowFunction();
      if (type === "FuncCall" && isAggregateCall(inner, this.catalog)) {
        if (this.pullRows) return { FuncCall: map(inner) };
        const combined = combineAggregate(inner, this.argumentTypes.get(inner.args?.[0]), this.columns);
        if (combined === undefined) throw new NeedsRows();
        return parseExpression(combined);
      }
      if (type === "ColumnRef" && !isStar(value)) {
        // in the rows: a column the aggregates read; otherwise one that depends on the groups
        return columnNode(this.pullRows ? this.columns.add(value as AnyNode) : this.dependentColumn(value as AnyNode));
      }
      return { [type]: map(inner) };
    };
    return map(node) as AnyNode;
  }

  /** A column outside aggregates and GROUP BY: valid when it depends on a grouped key (PostgreSQL checked). */
  private dependentColumn(node: AnyNode): string {
    const column = this.columns.groupColumn(deparse(node));
    if (!this.combineGroupBy.some((item) => columnRef(item)?.[0] === column))
      this.combineGroupBy.push(columnNode(column));
    return column;
  }
}

const EXPRESSION_TYPES = new Set([
  "ColumnRef",
  "FuncCall",
  "A_Expr",
  "TypeCast",
  "CoalesceExpr",
  "CaseExpr",
  "BoolExpr",
  "NullTest",
  "MinMaxExpr",
  "CollateClause",
  "A_Indirection",
  "RowExpr",
  "SQLValueFunction",
]);

function combineStatement(fields: AnyNode): string {
  const select = {
    SelectStmt: {
      ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)),
      fromClause: [{ RangeVar: { schemaname: "pg_temp", relname: MERGE_TABLE, inh: true, relpersistence: "p" } }],
      limitOption: fields.limitOption ?? "LIMIT_OPTION_DEFAULT",
      op: "SETOP_NONE",
    },
  };
  return deparse(select);
}

function target(val: AnyNode, name: string): AnyNode {
  return { ResTarget: { name, val } };
}

function columnNode(name: string): AnyNode {
  return { ColumnRef: { fields: [{ String: { sval: name } }] } };
}

function constant(value: number): AnyNode {
  return { A_Const: { ival: { ival: value } } };
}

/** Parses one SQL expression into a node. */
export function parseExpression(sql: string): AnyNode {
  const select = as(parseStatements(`SELECT ${sql}`)[0], "SelectStmt") as AnyNode;
  return as(select.targetList[0], "ResTarget")?.val as AnyNode;
}

function isStar(node: unknown): boolean {
  const ref = as(node, "ColumnRef");
  return Boolean(ref && as((ref.fields as unknown[]).at(-1), "A_Star"));
}

/** `2` in ORDER BY / GROUP BY: a result column by position (1-based). */
function positionValue(node: AnyNode): number | undefined {
  const value = as(node, "A_Const")?.ival;
  if (value === undefined) return undefined;
  return typeof value.ival === "number" ? value.ival : 0;
}

function isPosition(node: AnyNode): boolean {
  return positionValue(node) !== undefined;
}

/** A bare name that is a result column's name (ORDER BY prefers result names, as PostgreSQL). */
function isOutputName(node: AnyNode, outputNames: readonly string[]): boolean {
  const parts = columnRef(node);
  return parts?.length === 1 && outputNames.filter((name) => name === parts[0]).length === 1;
}

/** Which result column a sort or DISTINCT ON item means (0-based), if it is one. */
function positionOf(
  node: AnyNode,
  outputNames: readonly string[],
  targetTexts: readonly (string | undefined)[],
): number | undefined {
  const position = positionValue(node);
  if (position !== undefined) return position - 1;
  if (isOutputName(node, outputNames)) return outputNames.indexOf(columnRef(node)?.[0] as string);
  const text = deparse(node);
  const index = targetTexts.indexOf(text);
  return index >= 0 ? index : undefined;
}

/** A sublink that names no column and no relation: its value is the same wherever it runs. */
function selfContained(sublink: AnyNode): boolean {
  if (sublink.testexpr) return false;
  let contained = true;
  walk(sublink.subselect, (child, key) => {
    if (key === "RangeVar" || (key === "ColumnRef" && !isStar({ ColumnRef: child }))) contained = false;
    return contained;
  });
  return contained;
}
