import type { HerdError } from "@herd/shared";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import {
  type AnyNode,
  as,
  columnRef,
  conjuncts,
  groupByExpression,
  names,
  operatorName,
  unwrap,
  walk,
} from "../parser/ast.js";
import { hasAggregates } from "./aggregates.js";
import { PlannerErrors } from "./planner-errors.js";

/**
 * Whether a statement over distributed tables can run shard group by shard group: the answer of
 * each group computed on its own, all of them together the whole answer. That holds when every
 * row combination the statement can form is made of rows of one shard group, i.e. when every
 * distributed table is tied to the others by equality of distribution columns (which colocated
 * tables hash to the same shard group), through joins, WHERE conditions, `IN (subquery)` and
 * correlated subqueries, at any query level.
 *
 * Worked example:
 *   SELECT … FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
 *    WHERE EXISTS (SELECT 1 FROM returns r WHERE r.orderkey = l.l_orderkey)
 *   keys: o.o_orderkey = l.l_orderkey (join), r.orderkey = l.l_orderkey (correlated) → one class
 *   → every combination lives in one shard group: each group answers for its own rows.
 *   SELECT … FROM orders WHERE o_total > (SELECT avg(o_total) FROM orders) → two classes: the
 *   inner average would be per shard, so the statement is refused.
 *
 * A subquery's own GROUP BY, DISTINCT, window or aggregate is exact per group only when it
 * groups by (or is correlated on) its distribution column; a subquery's LIMIT never is. A
 * reference table (or function) on the preserved side of an outer join with a distributed table
 * would repeat its unmatched rows once per shard group.
 */
export interface Colocation {
  /** Why it cannot run group by group; undefined when it can. */
  readonly problem: HerdError | undefined;
  /**
   * Whether a column reference of the top query level is the distribution column of a table
   * whose rows it keeps (not on the nullable side of an outer join): grouping or partitioning by
   * it keeps every group within one shard group.
   */
  isKeyColumn(node: unknown): boolean;
}

interface Entry {
  readonly name: string;
  /** Column name → key (for tables: `<entry>.<column>`). */
  readonly columns: Map<string, string>;
  readonly table: DistributedTable | undefined;
  /** Under the nullable side of an outer join. */
  nullable: boolean;
  /** Holds a distributed table (itself, or a subquery reading one). */
  readonly distributed: boolean;
}

interface Scope {
  readonly entries: Entry[];
  readonly parent: Scope | undefined;
  readonly ctes: Map<string, Map<string, string>>;
}

export function analyzeColocation(statement: AnyNode, catalog: CatalogSnapshot): Colocation {
  return new ColocationAnalysis(catalog).run(statement);
}

class ColocationAnalysis {
  private readonly parent = new Map<string, string>();
  private readonly distributionKeys: string[] = [];
  private problem: HerdError | undefined;
  private nextEntry = 0;
  private top: Scope | undefined;

  constructor(private readonly catalog: CatalogSnapshot) {}

  run(statement: AnyNode): Colocation {
    const [type, node] = unwrap(statement) as [string, AnyNode];
    if (type === "SelectStmt") this.level(node, undefined, true);
    else this.modification(node);
    const roots = new Set(this.distributionKeys.map((key) => this.find(key)));
    // tables not tied together is the more basic problem than what a subquery of them does
    if (roots.size > 1) this.problem = PlannerErrors.complexJoin();
    const top = this.top;
    return {
      problem: this.problem,
      isKeyColumn: (ref) => {
        const key = top && this.resolve(ref, top, false);
        if (!key) return false;
        return top.entries.some(
          (entry) =>
            entry.table?.kind === "hash" &&
            !entry.nullable &&
            entry.columns.get(entry.table.distributionColumn as string) === key,
        );
      },
    };
  }

  /** UPDATE / DELETE: the target, USING / FROM items, WHERE. */
  private modification(node: AnyNode): void {
    const scope: Scope = { entries: [], parent: undefined, ctes: this.ctes(node.withClause, undefined) };
    this.top = scope;
    this.tableEntry(node.relation as AnyNode, scope);
    for (const item of (node.fromClause ?? node.usingClause ?? []) as unknown[]) this.fromItem(item, scope, scope);
    this.quals(node.whereClause, scope);
    this.sublinks(node.targetList, scope);
    this.sublinks(node.returningList, scope);
  }

  /**
   * One SELECT level; returns its output columns (name → key) and whether it reads a
   * distributed table.
   */
  private level(
    select: AnyNode,
    outer: Scope | undefined,
    top = false,
  ): { outputs: Map<string, string>; distributed: boolean } {
    if (select.op && select.op !== "SETOP_NONE") {
      const left = this.level(select.larg as AnyNode, outer);
      const right = this.level(select.rarg as AnyNode, outer);
      if ((left.distributed || right.distributed) && !top)
        this.fail(PlannerErrors.cannotPushDown("UNION, INTERSECT or EXCEPT in a subquery is not supported yet"));
      return { outputs: left.outputs, distributed: left.distributed || right.distributed };
    }
    const scope: Scope = { entries: [], parent: outer, ctes: this.ctes(select.withClause, outer) };
    if (top) this.top = scope;
    for (const item of (select.fromClause ?? []) as unknown[]) this.fromItem(item, scope, outer);
    this.quals(select.whereClause, scope);
    for (const field of ["targetList", "havingClause", "sortClause", "groupClause"])
      this.sublinks(select[field], scope);
    const outputs = this.outputs(select, scope);
    const distributed = scope.entries.some((entry) => entry.distributed);
    if (!top && distributed) {
      const problem = this.subqueryProblem(select, scope);
      if (problem) this.fail(problem);
    }
    return { outputs, distributed };
  }

  /** What a subquery that reads distributed tables may not do per shard group. */
  private subqueryProblem(select: AnyNode, scope: Scope): HerdError | undefined {
    if (select.limitCount || select.limitOffset)
      return PlannerErrors.cannotPushDown("LIMIT or OFFSET in a subquery would apply per shard");
    const targets = (select.targetList ?? []) as unknown[];
    const isInput = (name: string) => scope.entries.some((entry) => entry.columns.has(name));
    const grouped = ((select.groupClause ?? []) as unknown[]).some((item) =>
      this.isLevelKey(groupByExpression(item, targets, isInput), scope),
    );
    const distinctOnKey = ((select.distinctClause ?? []) as unknown[]).some((item) => this.isLevelKey(item, scope));
    const distinctAll =
      Array.isArray(select.distinctClause) && select.distinctClause.length === 1 && !unwrap(select.distinctClause[0]);
    const outputsKey = ((select.targetList ?? []) as unknown[]).some((item) =>
      this.isLevelKey(as(item, "ResTarget")?.val, scope),
    );
    const correlated = this.correlatedOnKey(select, scope);
    if (select.distinctClause && !(distinctOnKey || (distinctAll && outputsKey) || grouped || correlated))
      return PlannerErrors.cannotPushDown("DISTINCT in a subquery must include the distribution column");
    const aggregates = select.groupClause || select.havingClause || hasAggregates(select, this.catalog);
    if (aggregates && !grouped && !correlated)
      return PlannerErrors.cannotPushDown("aggregates in a subquery must be grouped by the distribution column");
    let windowProblem = false;
    walk(select.targetList, (child, key) => {
      if (key === "FuncCall" && child.over) {
        const partition = (as(child.over, "WindowDef") ?? child.over).partitionClause as unknown[] | undefined;
        if (!(partition ?? []).some((item) => this.isLevelKey(item, scope)) && !correlated) windowProblem = true;
      }
      return undefined;
    });
    return windowProblem
      ? PlannerErrors.cannotPushDown("window functions in a subquery must be partitioned by the distribution column")
      : undefined;
  }

  /** A WHERE equality ties this level's distribution column to a column of an outer level. */
  private correlatedOnKey(select: AnyNode, scope: Scope): boolean {
    for (const qual of conjuncts(select.whereClause)) {
      const expr = as(qual, "A_Expr");
      if (expr?.kind !== "AEXPR_OP" || operatorName(expr) !== "=") continue;
      const sides = [expr.lexpr, expr.rexpr];
      for (const [mine, other] of [sides, [...sides].reverse()]) {
        if (this.isLevelKey(mine, scope) && !this.resolveHere(other, scope) && this.resolve(other, scope, true))
          return true;
      }
    }
    return false;
  }

  /** The column is the distribution column of a distributed table of this level. */
  private isLevelKey(node: unknown, scope: Scope): boolean {
    const key = this.resolveHere(node, scope);
    return (
      key !== undefined &&
      scope.entries.some(
        (entry) => entry.table?.kind === "hash" && entry.columns.get(entry.table.distributionColumn as string) === key,
      )
    );
  }

  private ctes(withClause: AnyNode | undefined, outer: Scope | undefined): Map<string, Map<string, string>> {
    const ctes = new Map<string, Map<string, string>>(outer?.ctes ?? []);
    for (const item of (withClause?.ctes ?? []) as unknown[]) {
      const cte = as(item, "CommonTableExpr");
      const query = cte && as(cte.ctequery, "SelectStmt");
      if (!cte) continue;
      if (!query) {
        // a data-modifying CTE: its target is not a row source here
        this.fail(PlannerErrors.cannotPushDown("data-modifying CTEs are not supported in multi-shard queries yet"));
        continue;
      }
      const { outputs } = this.level(query, { entries: [], parent: undefined, ctes });
      ctes.set(cte.ctename as string, renameOutputs(outputs, names(cte.aliascolnames)));
    }
    return ctes;
  }

  /** Adds a FROM item's entries to `scope`; `outer` is what its subqueries may see (LATERAL). */
  private fromItem(item: unknown, scope: Scope, outer: Scope | undefined): Entry[] {
    const rangeVar = as(item, "RangeVar");
    if (rangeVar) return [this.tableEntry(rangeVar, scope)];
    const sub = as(item, "RangeSubselect");
    if (sub) {
      const inner = this.level(as(sub.subquery, "SelectStmt") as AnyNode, sub.lateral ? scope : outer);
      const entry: Entry = {
        name: (sub.alias?.aliasname as string | undefined) ?? "",
        columns: renameOutputs(inner.outputs, names(sub.alias?.colnames)),
        table: undefined,
        nullable: false,
        distributed: inner.distributed,
      };
      scope.entries.push(entry);
      return [entry];
    }
    const join = as(item, "JoinExpr");
    if (join) {
      const left = this.fromItem(join.larg, scope, outer);
      const right = this.fromItem(join.rarg, scope, outer);
      const type = join.jointype as string;
      const leftDistributed = left.some((e) => e.distributed);
      const rightDistributed = right.some((e) => e.distributed);
      const preservedWithoutShards =
        ((type === "JOIN_LEFT" || type === "JOIN_FULL") && !leftDistributed && rightDistributed) ||
        ((type === "JOIN_RIGHT" || type === "JOIN_FULL") && !rightDistributed && leftDistributed);
      if (preservedWithoutShards) this.fail(PlannerErrors.referenceOuterJoin());
      if (type === "JOIN_LEFT" || type === "JOIN_FULL") for (const e of right) e.nullable = true;
      if (type === "JOIN_RIGHT" || type === "JOIN_FULL") for (const e of left) e.nullable = true;
      this.quals(join.quals, scope);
      for (const column of names(join.usingClause)) {
        const l = left.find((e) => e.columns.has(column));
        const r = right.find((e) => e.columns.has(column));
        if (l && r) this.union(l.columns.get(column) as string, r.columns.get(column) as string);
      }
      return [...left, ...right];
    }
    // a function in FROM: rows with no shard; fine unless it is the preserved side of an outer join
    const entry: Entry = { name: "", columns: new Map(), table: undefined, nullable: false, distributed: false };
    this.sublinks(item, scope);
    scope.entries.push(entry);
    return [entry];
  }

  private tableEntry(rangeVar: AnyNode, scope: Scope): Entry {
    const name = (rangeVar.alias?.aliasname as string | undefined) ?? (rangeVar.relname as string);
    const id = `${this.nextEntry++}`;
    const cte = rangeVar.schemaname === undefined ? this.cteOf(rangeVar.relname as string, scope) : undefined;
    if (cte) {
      const entry: Entry = { name, columns: new Map(cte), table: undefined, nullable: false, distributed: false };
      scope.entries.push(entry);
      return entry;
    }
    const table = this.catalog.resolve(rangeVar.schemaname as string | undefined, rangeVar.relname as string);
    const columns = new Map((table?.columns ?? []).map((column) => [column.name, `${id}.${column.name}`]));
    const entry: Entry = { name, columns, table, nullable: false, distributed: table?.kind === "hash" };
    if (table?.kind === "hash") this.distributionKeys.push(`${id}.${table.distributionColumn}`);
    scope.entries.push(entry);
    return entry;
  }

  private cteOf(name: string, scope: Scope): Map<string, string> | undefined {
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const found = s.ctes.get(name);
      if (found) return found;
    }
    return undefined;
  }

  /** Equalities of a condition's conjuncts; its subqueries, as levels of their own. */
  private quals(condition: unknown, scope: Scope): void {
    for (const qual of conjuncts(condition)) {
      const expr = as(qual, "A_Expr");
      if (expr?.kind === "AEXPR_OP" && operatorName(expr) === "=") {
        const left = this.resolve(expr.lexpr, scope, true);
        const right = this.resolve(expr.rexpr, scope, true);
        if (left && right) this.union(left, right);
      }
      // NOT IN (subquery) on the distribution column: an anti-join within the shard group (the
      // column is never NULL, so NOT IN's NULL rule cannot reach across groups)
      const negated = as(qual, "BoolExpr");
      const sublink =
        as(qual, "SubLink") ??
        (negated?.boolop === "NOT_EXPR" && negated.args?.length === 1 ? as(negated.args[0], "SubLink") : undefined);
      if (sublink?.subLinkType === "ANY_SUBLINK" && names(sublink.operName).at(-1) !== "<>") {
        const { outputs } = this.level(as(sublink.subselect, "SelectStmt") as AnyNode, scope);
        const left = this.resolve(sublink.testexpr, scope, true);
        const first = [...outputs.values()][0];
        if (left && first && (sublink.operName === undefined || names(sublink.operName).at(-1) === "="))
          this.union(left, first);
        continue;
      }
      this.sublinks(qual, scope);
    }
  }

  /** Every subquery under `node` (not crossing into other subqueries), as a correlated level. */
  private sublinks(node: unknown, scope: Scope): void {
    walk(node, (child, key) => {
      if (key === "SubLink") {
        this.level(as(child.subselect, "SelectStmt") as AnyNode, scope);
        if (child.testexpr) this.sublinks(child.testexpr, scope);
        return false;
      }
      return undefined;
    });
  }

  /** Output columns of a SELECT level: alias or column name → key (when it is a plain column). */
  private outputs(select: AnyNode, scope: Scope): Map<string, string> {
    const outputs = new Map<string, string>();
    let position = 0;
    for (const item of (select.targetList ?? []) as unknown[]) {
      const target = as(item, "ResTarget") as AnyNode;
      const ref = as(target.val, "ColumnRef");
      const fields = ref ? (ref.fields as unknown[]) : [];
      if (ref && as(fields.at(-1), "A_Star")) {
        const qualifier = fields.length > 1 ? names(fields.slice(0, -1)).at(-1) : undefined;
        for (const entry of scope.entries) {
          if (qualifier !== undefined && entry.name !== qualifier) continue;
          for (const [name, key] of entry.columns) outputs.set(name, key);
        }
        continue;
      }
      position += 1;
      const key = this.resolve(target.val, scope, false) ?? `out${this.nextEntry++}`;
      const name = (target.name as string | undefined) ?? columnRef(target.val)?.at(-1) ?? `?column?${position}`;
      outputs.set(name, key);
    }
    return outputs;
  }

  /** The key of a column reference, looked up in this level, then (when `withOuter`) outer levels. */
  private resolve(node: unknown, scope: Scope, withOuter: boolean): string | undefined {
    for (let s: Scope | undefined = scope; s; s = withOuter ? s.parent : undefined) {
      const key = this.resolveHere(node, s);
      if (key) return key;
    }
    return undefined;
  }

  private resolveHere(node: unknown, scope: Scope): string | undefined {
    const parts = columnRef(node);
    if (!parts) return undefined;
    const column = parts.at(-1) as string;
    if (parts.length >= 2) {
      const qualifier = parts.at(-2) as string;
      return scope.entries.find((entry) => entry.name === qualifier)?.columns.get(column);
    }
    const owners = scope.entries.filter((entry) => entry.columns.has(column));
    return owners.length === 1 ? owners[0]?.columns.get(column) : undefined;
  }

  private fail(error: HerdError): void {
    this.problem ??= error;
  }

  private union(a: string, b: string): void {
    const rootA = this.find(a);
    const rootB = this.find(b);
    if (rootA !== rootB) this.parent.set(rootB, rootA);
  }

  private find(key: string): string {
    let root = key;
    for (let up = this.parent.get(root); up !== undefined; up = this.parent.get(root)) root = up;
    return root;
  }
}

function renameOutputs(outputs: Map<string, string>, aliases: string[]): Map<string, string> {
  if (aliases.length === 0) return outputs;
  const renamed = new Map<string, string>();
  [...outputs.values()].forEach((key, i) => {
    renamed.set(aliases[i] ?? [...outputs.keys()][i] ?? "", key);
  });
  return renamed;
}
