import type { DeleteStmt, InsertStmt, Node, RangeVar, SelectStmt, UpdateStmt, WithClause } from "@pgsql/types";
import type { CatalogSnapshot } from "../../metadata/catalog-snapshot.js";
import {
  type AnyNode,
  as,
  columnRef,
  conjuncts,
  isRangeVar,
  names,
  nodeOf,
  unwrap,
  walk,
  walkWithPath,
} from "../../parser/ast.js";
import type { RelationRef } from "../relations.js";
import type { ColumnKey, Condition, QueryLevel, RangeEntry } from "./query-level.js";

/**
 * What a statement's names mean, worked out once and read by every part of the planner: which
 * relations it names (CTEs hide tables of the same name, in their scope only), the query levels
 * (the statement, its subqueries, sublinks, CTE bodies and set-operation arms) with their FROM
 * entries, and what each column reference means (`resolve`), so that shard pruning, colocation
 * and the merge planner agree on every name.
 *
 * Worked example:
 *   WITH recent AS (SELECT * FROM orders WHERE day > $1)
 *   SELECT c.name, r.total FROM customers c JOIN recent r ON r.customer_id = c.id
 *    WHERE c.id = 7 AND EXISTS (SELECT 1 FROM returns x WHERE x.order_id = r.id)
 *   relations: orders, customers, returns (`recent` names the CTE, not a table)
 *   levels, inner ones first: recent's body (entry orders), the EXISTS sublink (entry returns,
 *   parent: the statement), the statement (entries c, r)
 *   resolve(r.customer_id at the statement) = orders' customer_id (through the CTE's outputs);
 *   resolve(r.id in the sublink, outer) = orders' id: the sublink is correlated on it.
 */
export interface Semantics {
  /** Every relation the statement names, in tree order (references to CTEs left out). */
  readonly relations: readonly RelationRef[];
  /** The statement's own level; undefined for statements that are not queries (DDL, COPY). */
  readonly top: QueryLevel | undefined;
  /** Every query level, each after the levels inside it. */
  readonly levels: readonly QueryLevel[];
  /** The distribution columns of every distributed table the statement reads, as keys. */
  readonly distributionKeys: readonly ColumnKey[];
  /** The level of a SELECT (its fields, as in the tree). */
  levelOf(select: SelectStmt | undefined): QueryLevel | undefined;
  /** What a column reference means at `level`: its own entries, then (`outer`) the levels around it. */
  resolve(node: unknown, level: QueryLevel, outer: boolean): ColumnKey | undefined;
}

export function analyzeStatement(statement: unknown, catalog: CatalogSnapshot): Semantics {
  return new Analyzer(catalog).run(statement);
}

interface Entry extends RangeEntry {
  nullable: boolean;
}

interface Level extends QueryLevel {
  readonly entries: Entry[];
  outputs: Map<string, ColumnKey>;
  distributed: boolean;
  readonly conditions: Condition[];
  readonly usingPairs: [ColumnKey, ColumnKey][];
  preservesRowsWithoutShards: boolean;
  /** CTE name → its outputs, for the CTEs visible here. */
  readonly ctes: Map<string, CteOutputs>;
  /** Its outputs name every result column (no `*` over an entry of unknown columns). */
  completeOutputs: boolean;
}

interface CteOutputs {
  readonly columns: Map<string, ColumnKey>;
  readonly complete: boolean;
  readonly distributed: boolean;
}

/** The fields of a SELECT that hold expressions (and so may hold sublinks), besides WHERE. */
const SELECT_EXPRESSION_FIELDS = [
  "targetList",
  "havingClause",
  "sortClause",
  "groupClause",
  "distinctClause",
  "windowClause",
  "limitCount",
  "limitOffset",
  "valuesLists",
  "lockingClause",
] as const;

class Analyzer {
  private readonly levels: Level[] = [];
  private readonly bySelect = new Map<QueryLevel["node"], Level>();
  /** RangeVars that name a CTE: not relations. */
  private readonly cteReferences = new Set<AnyNode>();
  private readonly distributionKeys: ColumnKey[] = [];
  private nextId = 0;

  constructor(private readonly catalog: CatalogSnapshot) {}

  run(statement: unknown): Semantics {
    const unwrapped = unwrap(statement);
    let top: Level | undefined;
    if (unwrapped) {
      const [type, node] = unwrapped;
      if (type === "SelectStmt") top = this.select(node as SelectStmt, undefined, "statement", new Map());
      else if (type === "UpdateStmt" || type === "DeleteStmt")
        top = this.modification(type, node as UpdateStmt | DeleteStmt, "statement", new Map());
      else if (type === "InsertStmt") top = this.insert(node as InsertStmt, "statement", new Map());
    }
    const relations: RelationRef[] = [];
    // the table CREATE TABLE makes is a new name, not a reference to a table of that name
    const created = unwrapped?.[0] === "CreateStmt" ? unwrapped[1].relation : undefined;
    walkWithPath(statement, (node, key, path) => {
      if (!isRangeVar(node, key) || node === created) return undefined;
      if (!this.cteReferences.has(node)) {
        const table = this.catalog.resolve(node.schemaname as string | undefined, node.relname as string);
        relations.push({ rangeVar: node, key, path: [...path], table });
      }
      return false;
    });
    const bySelect = this.bySelect;
    return {
      relations,
      top,
      levels: this.levels,
      distributionKeys: this.distributionKeys,
      levelOf: (select) => (select ? bySelect.get(select) : undefined),
      resolve: (node, level, outer) => resolve(node, level, outer),
    };
  }

  // ---- levels ----

  private newLevel(
    kind: QueryLevel["kind"],
    role: QueryLevel["role"],
    node: QueryLevel["node"],
    parent: Level | undefined,
    ctes: Map<string, CteOutputs>,
  ): Level {
    return {
      kind,
      role,
      node,
      parent,
      entries: [],
      outputs: new Map(),
      distributed: false,
      conditions: [],
      usingPairs: [],
      preservesRowsWithoutShards: false,
      ctes,
      completeOutputs: true,
    };
  }

  /**
   * A SELECT: its CTEs, FROM entries, conditions and sublinks, then its outputs. `parent` is the
   * level its column references may also mean; `visible` the CTEs around it.
   */
  private select(
    select: SelectStmt,
    parent: Level | undefined,
    role: Level["role"],
    visible: Map<string, CteOutputs>,
  ): Level {
    const ctes = this.withClause(select.withClause, visible);
    if (select.op && select.op !== "SETOP_NONE") {
      const level = this.newLevel("set-operation", role, select, parent, ctes);
      const left = this.select(select.larg ?? {}, parent, "arm", ctes);
      const right = this.select(select.rarg ?? {}, parent, "arm", ctes);
      level.outputs = left.outputs;
      level.completeOutputs = left.completeOutputs;
      level.distributed = left.distributed || right.distributed;
      return this.done(level);
    }
    const level = this.newLevel("select", role, select, parent, ctes);
    for (const item of select.fromClause ?? []) this.fromItem(item, level, parent);
    this.conditions(select.whereClause, "where", level);
    for (const field of SELECT_EXPRESSION_FIELDS) this.sublinks(select[field], level);
    this.outputs(select, level);
    level.distributed = level.entries.some((entry) => entry.distributed);
    return this.done(level);
  }

  /** UPDATE / DELETE: the target, USING / FROM items, WHERE, and sublinks anywhere else. */
  private modification(
    type: "UpdateStmt" | "DeleteStmt",
    node: UpdateStmt | DeleteStmt,
    role: Level["role"],
    visible: Map<string, CteOutputs>,
  ): Level {
    const ctes = this.withClause(node.withClause, visible);
    const level = this.newLevel(type === "UpdateStmt" ? "update" : "delete", role, node, undefined, ctes);
    this.tableEntry(node.relation ?? {}, level);
    const items = "fromClause" in node ? node.fromClause : "usingClause" in node ? node.usingClause : undefined;
    for (const item of items ?? []) this.fromItem(item, level, undefined);
    this.conditions(node.whereClause, "where", level);
    this.sublinks(otherFields(node, ["relation", "fromClause", "usingClause", "whereClause", "withClause"]), level);
    level.distributed = level.entries.some((entry) => entry.distributed);
    return this.done(level);
  }

  /** INSERT: its target, the rows' source (VALUES or a SELECT) as a level of its own, sublinks elsewhere. */
  private insert(node: InsertStmt, role: Level["role"], visible: Map<string, CteOutputs>): Level {
    const ctes = this.withClause(node.withClause, visible);
    const level = this.newLevel("insert", role, node, undefined, ctes);
    this.tableEntry(node.relation ?? {}, level);
    const source = nodeOf(node.selectStmt, "SelectStmt");
    if (source) this.select(source, undefined, "source", ctes);
    this.sublinks(otherFields(node, ["relation", "selectStmt", "withClause"]), level);
    level.distributed = level.entries.some((entry) => entry.distributed);
    return this.done(level);
  }

  private done(level: Level): Level {
    this.levels.push(level);
    this.bySelect.set(level.node, level);
    return level;
  }

  /** The CTEs of a WITH clause, each visible to the ones after it and to the query. */
  private withClause(withClause: WithClause | undefined, visible: Map<string, CteOutputs>): Map<string, CteOutputs> {
    const ctes = new Map(visible);
    for (const item of withClause?.ctes ?? []) {
      const cte = nodeOf(item, "CommonTableExpr");
      if (!cte?.ctename) continue;
      const query = nodeOf(cte.ctequery, "SelectStmt");
      if (!query) {
        // a data-modifying CTE (WITH x AS (DELETE …)): a level of its own kind, its RETURNING rows unknown here
        const insert = nodeOf(cte.ctequery, "InsertStmt");
        const update = nodeOf(cte.ctequery, "UpdateStmt");
        const remove = nodeOf(cte.ctequery, "DeleteStmt");
        const inner = insert
          ? this.insert(insert, "cte", ctes)
          : update
            ? this.modification("UpdateStmt", update, "cte", ctes)
            : remove
              ? this.modification("DeleteStmt", remove, "cte", ctes)
              : undefined;
        ctes.set(cte.ctename, { columns: new Map(), complete: false, distributed: inner?.distributed ?? false });
        continue;
      }
      const body = this.select(query, undefined, "cte", ctes);
      ctes.set(cte.ctename, {
        columns: renameOutputs(body.outputs, names(cte.aliascolnames)),
        complete: body.completeOutputs,
        distributed: body.distributed,
      });
    }
    return ctes;
  }

  // ---- FROM ----

  /** Adds a FROM item's entries to `level`; `outer` is what its subqueries may see (LATERAL: `level` too). */
  private fromItem(item: unknown, level: Level, outer: Level | undefined): Entry[] {
    const rangeVar = nodeOf(item, "RangeVar");
    if (rangeVar) return [this.tableEntry(rangeVar, level)];
    const sub = nodeOf(item, "RangeSubselect");
    if (sub) {
      const inner = this.select(
        nodeOf(sub.subquery, "SelectStmt") ?? {},
        sub.lateral ? level : outer,
        "from",
        level.ctes,
      );
      return [
        this.addEntry(level, {
          name: sub.alias?.aliasname ?? "",
          kind: "subquery",
          table: undefined,
          columns: renameOutputs(inner.outputs, names(sub.alias?.colnames)),
          knownColumns: inner.completeOutputs,
          nullable: false,
          distributed: inner.distributed,
          rangeVar: undefined,
        }),
      ];
    }
    const join = nodeOf(item, "JoinExpr");
    if (join) {
      const left = this.fromItem(join.larg, level, outer);
      const right = this.fromItem(join.rarg, level, outer);
      const type = join.jointype;
      const leftDistributed = left.some((entry) => entry.distributed);
      const rightDistributed = right.some((entry) => entry.distributed);
      if (
        ((type === "JOIN_LEFT" || type === "JOIN_FULL") && !leftDistributed && rightDistributed) ||
        ((type === "JOIN_RIGHT" || type === "JOIN_FULL") && !rightDistributed && leftDistributed)
      )
        level.preservesRowsWithoutShards = true;
      if (type === "JOIN_LEFT" || type === "JOIN_FULL") for (const entry of right) entry.nullable = true;
      if (type === "JOIN_RIGHT" || type === "JOIN_FULL") for (const entry of left) entry.nullable = true;
      this.conditions(
        join.quals,
        type === "JOIN_FULL" ? "full-join" : type === "JOIN_INNER" ? "join" : "outer-join",
        level,
      );
      for (const column of names(join.usingClause)) {
        const l = left.find((entry) => entry.columns.has(column))?.columns.get(column);
        const r = right.find((entry) => entry.columns.has(column))?.columns.get(column);
        if (l && r) level.usingPairs.push([l, r]);
      }
      return [...left, ...right];
    }
    // a function in FROM (or another row source): rows with no shard, columns herd does not know
    this.sublinks(item, level);
    return [
      this.addEntry(level, {
        name: (unwrap(item)?.[1].alias?.aliasname as string | undefined) ?? "",
        kind: "function",
        table: undefined,
        columns: new Map(),
        knownColumns: false,
        nullable: false,
        distributed: false,
        rangeVar: undefined,
      }),
    ];
  }

  private tableEntry(rangeVar: RangeVar, level: Level): Entry {
    const name = rangeVar.alias?.aliasname ?? rangeVar.relname ?? "";
    const cte = rangeVar.schemaname === undefined ? level.ctes.get(rangeVar.relname ?? "") : undefined;
    if (cte) {
      this.cteReferences.add(rangeVar);
      return this.addEntry(level, {
        name,
        kind: "cte",
        table: undefined,
        columns: new Map(cte.columns),
        knownColumns: cte.complete,
        nullable: false,
        distributed: cte.distributed,
        rangeVar,
      });
    }
    const table = this.catalog.resolve(rangeVar.schemaname, rangeVar.relname ?? "");
    const id = this.nextId++;
    const columns = new Map((table?.columns ?? []).map((column) => [column.name, `${id}.${column.name}`]));
    if (table?.kind === "hash") this.distributionKeys.push(`${id}.${table.distributionColumn}`);
    return this.addEntry(level, {
      name,
      kind: "table",
      table,
      columns,
      knownColumns: table !== undefined,
      nullable: false,
      distributed: table?.kind === "hash",
      rangeVar,
    });
  }

  private addEntry(level: Level, entry: Entry): Entry {
    level.entries.push(entry);
    return entry;
  }

  // ---- conditions and sublinks ----

  /** The conjuncts of a WHERE or ON condition; an `IN (subquery)` conjunct's subquery becomes a level. */
  private conditions(condition: unknown, source: Condition["source"], level: Level): void {
    for (const qual of conjuncts(condition)) {
      level.conditions.push({ node: qual as AnyNode, source });
      this.sublinks(qual, level);
    }
  }

  /** Every sublink under `node` (not inside other sublinks), as a level correlated to `level`. */
  private sublinks(node: unknown, level: Level): void {
    walk(node, (child, key) => {
      if (key !== "SubLink") return undefined;
      this.select(nodeOf(child.subselect, "SelectStmt") ?? {}, level, "sublink", level.ctes);
      this.sublinks(child.testexpr, level);
      return false;
    });
  }

  /** Output columns of a SELECT level: alias or column name → key (a fresh key when not a plain column). */
  private outputs(select: SelectStmt, level: Level): void {
    let position = 0;
    for (const item of select.targetList ?? []) {
      const target = nodeOf(item, "ResTarget");
      if (!target) continue;
      const ref = nodeOf(target.val, "ColumnRef");
      const fields: Node[] = ref?.fields ?? [];
      if (ref && as(fields.at(-1), "A_Star")) {
        const qualifier = fields.length > 1 ? names(fields.slice(0, -1)).at(-1) : undefined;
        for (const entry of level.entries) {
          if (qualifier !== undefined && entry.name !== qualifier) continue;
          if (!entry.knownColumns) level.completeOutputs = false;
          for (const [name, key] of entry.columns) level.outputs.set(name, key);
        }
        continue;
      }
      position += 1;
      const key = resolve(target.val, level, false) ?? `out${this.nextId++}`;
      const name = target.name ?? columnRef(target.val)?.at(-1) ?? `?column?${position}`;
      level.outputs.set(name, key);
    }
  }
}

/** The fields of a statement's node but `handled` (the ones its own analysis reads), for their sublinks. */
function otherFields(node: object, handled: readonly string[]): unknown[] {
  return Object.entries(node)
    .filter(([key]) => !handled.includes(key))
    .map(([, value]) => value);
}

/** The key of a column reference, looked up in `level`, then (when `outer`) the levels around it. */
function resolve(node: unknown, level: QueryLevel, outer: boolean): ColumnKey | undefined {
  for (let at: QueryLevel | undefined = level; at; at = outer ? at.parent : undefined) {
    const key = resolveAt(node, at);
    if (key) return key;
  }
  return undefined;
}

function resolveAt(node: unknown, level: QueryLevel): ColumnKey | undefined {
  const parts = columnRef(node);
  if (!parts) return undefined;
  const column = parts.at(-1) as string;
  if (parts.length >= 2) {
    const qualifier = parts.at(-2) as string;
    return level.entries.find((entry) => entry.name === qualifier)?.columns.get(column);
  }
  const owners = level.entries.filter((entry) => entry.columns.has(column));
  return owners.length === 1 ? owners[0]?.columns.get(column) : undefined;
}

function renameOutputs(outputs: ReadonlyMap<string, ColumnKey>, aliases: string[]): Map<string, ColumnKey> {
  if (aliases.length === 0) return new Map(outputs);
  const renamed = new Map<string, ColumnKey>();
  const keys = [...outputs.keys()];
  [...outputs.values()].forEach((key, i) => {
    renamed.set(aliases[i] ?? keys[i] ?? "", key);
  });
  return renamed;
}
