import type { Primitive } from "../executor/primitives/primitive.js";
import type { Catalog } from "../metadata/catalog.js";
import type { AnyNode } from "../parser/ast.js";
import { planStatement } from "./plan-statement.js";

/**
 * Plans by statement text, planned again when the catalog changed. A plan depends on the
 * statement and the catalog snapshot only (never on parameter values), so one plan serves every
 * execution of its text; parameters choose the shards when it runs.
 */
export class PlanCache {
  private readonly plans = new Map<string, { version: number; plan: Primitive }>();

  constructor(
    private readonly catalog: Catalog,
    private readonly capacity = 4096,
  ) {}

  plan(sql: string, statement: AnyNode): Primitive {
    const snapshot = this.catalog.current;
    const cached = this.plans.get(sql);
    if (cached && cached.version === snapshot.version) return cached.plan;
    const plan = planStatement(statement, snapshot);
    if (this.plans.size >= this.capacity) this.plans.delete(this.plans.keys().next().value as string);
    this.plans.set(sql, { version: snapshot.version, plan });
    return plan;
  }
}
