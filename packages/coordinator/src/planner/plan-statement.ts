import type { Catalog } from "../metadata/catalog.js";
import { type AnyNode, unwrap } from "../parser/ast.js";
import { planDdl } from "./ddl-planner.js";
import { planFunctionCall } from "./function-call.js";
import { planInsert } from "./insert-planner.js";
import type { Plan } from "./plan.js";
import { PlannerErrors } from "./planner-errors.js";
import { findRelations } from "./relations.js";
import { planRoute } from "./route-planner.js";

const LOCAL: Plan = { kind: "local" };

/**
 * The planner's cascade (after Citus): transaction control → herd's functions → DDL on
 * distributed tables → COPY → INSERT → SELECT/UPDATE/DELETE routed to shards; whatever names
 * no distributed or reference table is local and runs on the coordinator's PostgreSQL as is.
 */
export function planStatement(statement: AnyNode, catalog: Catalog): Plan {
  const unwrapped = unwrap(statement);
  if (!unwrapped) return LOCAL;
  const [type, node] = unwrapped;
  if (type === "TransactionStmt") return { kind: "transaction", statement };
  if (type === "SelectStmt") {
    const call = planFunctionCall(node);
    if (call) return call;
  }
  if (type === "ExplainStmt") {
    const inner = planStatement(node.query as AnyNode, catalog);
    if (inner.kind === "local" || inner.kind === "error") return inner;
    const analyze = ((node.options ?? []) as AnyNode[]).some(
      (option) => option.DefElem?.defname === "analyze" && option.DefElem?.arg?.Boolean?.boolval !== false,
    );
    return { kind: "explain", inner, statement: node.query as AnyNode, analyze };
  }
  const ddl = planDdl(type, node, statement, catalog);
  if (ddl) return ddl;
  const refs = findRelations(statement, catalog);
  if (!refs.some((ref) => ref.table)) return LOCAL;
  switch (type) {
    case "SelectStmt":
    case "UpdateStmt":
    case "DeleteStmt":
      return planRoute(statement, catalog, refs);
    case "InsertStmt": {
      const table = catalog.resolve(node.relation.schemaname, node.relation.relname);
      if (!table)
        return {
          kind: "error",
          error: PlannerErrors.notSupported("INSERT … SELECT from distributed tables into ordinary tables"),
        };
      return planInsert(node, statement, table);
    }
    case "CopyStmt": {
      const table = node.relation ? catalog.resolve(node.relation.schemaname, node.relation.relname) : undefined;
      if (!table || !node.is_from)
        return {
          kind: "error",
          error: PlannerErrors.notSupported(
            "COPY TO on distributed tables",
            "Use COPY (SELECT …) TO STDOUT with a filter on the distribution column.",
          ),
        };
      if (node.is_program || node.filename)
        return {
          kind: "error",
          error: PlannerErrors.notSupported(
            "COPY FROM a file into distributed tables",
            "Use COPY … FROM STDIN (psql: \\copy).",
          ),
        };
      const columns = node.attlist
        ? (node.attlist as unknown[]).map((item) => (item as AnyNode).String.sval as string)
        : table.columns.filter((column) => !column.generated).map((column) => column.name);
      return { kind: "copy", copy: { tree: statement, table, columns } };
    }
    default:
      return {
        kind: "error",
        error: PlannerErrors.notSupported(`${type.replace(/Stmt$/, "")} statements on distributed tables`),
      };
  }
}

/** Plans by statement text, planned again when the catalog changed. */
export class PlanCache {
  private readonly plans = new Map<string, { version: number; plan: Plan }>();

  constructor(
    private readonly catalog: Catalog,
    private readonly capacity = 4096,
  ) {}

  plan(sql: string, statement: AnyNode): Plan {
    const cached = this.plans.get(sql);
    if (cached && cached.version === this.catalog.version) return cached.plan;
    const plan = planStatement(statement, this.catalog);
    if (this.plans.size >= this.capacity) this.plans.delete(this.plans.keys().next().value as string);
    this.plans.set(sql, { version: this.catalog.version, plan });
    return plan;
  }
}
