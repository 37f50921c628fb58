import type { AnyNode } from "./ast.js";
import { walk } from "./ast.js";
import { normalizeLiterals } from "./literal-normalizer.js";
import type { StatementCache } from "./statement-cache.js";

/** A simple-protocol statement as herd runs it: its literals as parameters. */
export interface NormalizedStatement {
  /** The text with `$n` for its literals: what plans and shard statements are cached by. */
  readonly text: string;
  /** Its parse tree (the RawStmt's `stmt`). */
  readonly statement: AnyNode;
  readonly parameterTypes: readonly number[];
  /** The literals' values, as text-format parameters. */
  readonly parameters: readonly Buffer[];
}

const STATEMENT_TYPES = new Set(["SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"]);

/**
 * Simple-protocol statements with their literals as parameters (parser/literal-normalizer.ts),
 * so that `… WHERE aid = 1` and `… WHERE aid = 2` share one parse, one plan and one shard
 * statement per shard. A normalized text is used only when it parses as one SELECT, INSERT,
 * UPDATE or DELETE whose parameters all stand where a value may (not a select list's item, an
 * ORDER BY or GROUP BY ordinal); that verdict is kept per normalized text. Shared by the sessions.
 */
export class NormalizedStatements {
  private readonly verdicts = new Map<string, AnyNode | null>();
  hits = 0;

  constructor(
    private readonly statements: StatementCache,
    private readonly capacity = 4096,
  ) {}

  /** `sql` with its literals as parameters; undefined to run it as written. */
  of(sql: string): NormalizedStatement | undefined {
    const normalized = normalizeLiterals(sql);
    if (!normalized) return undefined;
    let statement = this.verdicts.get(normalized.text);
    if (statement === undefined) {
      statement = this.judge(normalized.text, normalized.values.length);
      if (this.verdicts.size >= this.capacity) this.verdicts.delete(this.verdicts.keys().next().value as string);
      this.verdicts.set(normalized.text, statement);
    } else this.hits += 1;
    if (statement === null) return undefined;
    return {
      text: normalized.text,
      statement,
      parameterTypes: normalized.types,
      parameters: normalized.values.map((value) => Buffer.from(value, "utf8")),
    };
  }

  /** The parse of a normalized text when herd may run it so, else null. */
  private judge(text: string, parameters: number): AnyNode | null {
    const parsed = this.statements.parse(text);
    if (!parsed.ok) return null;
    const raws = (parsed.tree.stmts ?? []) as AnyNode[];
    if (raws.length !== 1) return null;
    const statement = (raws[0] as AnyNode).stmt as AnyNode;
    const type = Object.keys(statement)[0] as string;
    if (!STATEMENT_TYPES.has(type)) return null;
    return parametersInValuePlaces(statement, parameters) ? statement : null;
  }
}

/** Every `$n` is one of the literals and stands where a value may: not a list item of its own, an ordinal, a target. */
function parametersInValuePlaces(statement: AnyNode, parameters: number): boolean {
  let ok = true;
  const bare = (node: unknown) => (node as AnyNode | undefined)?.ParamRef !== undefined;
  walk(statement, (node, key) => {
    if (!ok) return false;
    if (key === "ParamRef" && ((node.number as number) < 1 || (node.number as number) > parameters)) ok = false;
    else if (key === "SortBy" && bare(node.node)) ok = false;
    // a type modifier (numeric(10, 2)) must be a constant
    else if ((key === "TypeName" || key === "typeName") && ((node.typmods ?? []) as unknown[]).some(bare)) ok = false;
    else if (key === "SelectStmt") {
      // a parameter alone as a result column would have no type; as an ordinal it would be a constant
      for (const item of (node.targetList ?? []) as AnyNode[]) if (bare(item.ResTarget?.val)) ok = false;
      for (const item of (node.groupClause ?? []) as unknown[]) if (bare(item)) ok = false;
      for (const item of (node.distinctClause ?? []) as unknown[]) if (bare(item)) ok = false;
    } else if (key === "InsertStmt" || key === "UpdateStmt" || key === "DeleteStmt") {
      for (const item of (node.returningList ?? []) as AnyNode[]) if (bare(item.ResTarget?.val)) ok = false;
    }
    return undefined;
  });
  return ok;
}
