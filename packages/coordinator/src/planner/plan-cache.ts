import type { Primitive } from "../executor/primitives/primitive.js";
import type { Catalog } from "../metadata/catalog.js";
import { type CatalogSnapshot, withSessionNames } from "../metadata/catalog-snapshot.js";
import { type AnyNode, isRangeVar, walk } from "../parser/ast.js";
import { planStatement } from "./plan-statement.js";

interface CachedText {
  readonly version: number;
  /** Its unqualified relation names that name a distributed or reference table (or a view of one) in some schema. */
  readonly names: readonly string[];
  /** Plans by what those names mean in the sessions that ran it ("" : the snapshot's own meaning). */
  readonly plans: Map<string, Primitive>;
}

/**
 * Plans by statement text, planned again when the catalog changed. A plan depends on the
 * statement, the catalog snapshot and what its unqualified table names mean in the session (its
 * search_path), never on parameter values: one plan serves every execution of its text in every
 * session whose names mean the same; parameters choose the shards when it runs.
 */
export class PlanCache {
  private readonly texts = new Map<string, CachedText>();

  constructor(
    private readonly catalog: Catalog,
    private readonly capacity = 4096,
  ) {}

  /**
   * The unqualified names of `statement` whose meaning the plan depends on (see SessionNames).
   * `own`: a transaction block's own snapshot (metadata/block-catalog.ts), planned uncached.
   */
  namesOf(sql: string, statement: AnyNode, own?: CatalogSnapshot): readonly string[] {
    return own ? distributedNames(statement, own) : this.entry(sql, statement).names;
  }

  /** The plan for `statement` with its names resolved as in `resolved` (undefined: by the snapshot alone). */
  plan(sql: string, statement: AnyNode, resolved?: ReadonlyMap<string, number>, own?: CatalogSnapshot): Primitive {
    if (own) return planStatement(statement, resolved ? withSessionNames(own, resolved) : own);
    const entry = this.entry(sql, statement);
    const key = resolved ? entry.names.map((name) => `${resolved.get(name) ?? ""}`).join(",") : "";
    let plan = entry.plans.get(key);
    if (!plan) {
      const snapshot = this.catalog.current;
      plan = planStatement(statement, resolved ? withSessionNames(snapshot, resolved) : snapshot);
      entry.plans.set(key, plan);
    }
    return plan;
  }

  private entry(sql: string, statement: AnyNode): CachedText {
    const snapshot = this.catalog.current;
    const cached = this.texts.get(sql);
    if (cached && cached.version === snapshot.version) return cached;
    if (this.texts.size >= this.capacity) this.texts.delete(this.texts.keys().next().value as string);
    const entry = { version: snapshot.version, names: distributedNames(statement, snapshot), plans: new Map() };
    this.texts.set(sql, entry);
    return entry;
  }
}

/** Unqualified RangeVar names that some distributed or reference table, or view of one, has. */
function distributedNames(statement: AnyNode, snapshot: CatalogSnapshot): string[] {
  const names = new Set<string>();
  walk(statement, (node, key) => {
    const name = node.relname as string;
    if (
      isRangeVar(node, key) &&
      node.schemaname === undefined &&
      (snapshot.resolve(undefined, name) || snapshot.resolveView(undefined, name))
    )
      names.add(name);
    return undefined;
  });
  return [...names];
}
