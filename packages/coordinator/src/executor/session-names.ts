import type { PgConnection } from "../connection/pg-connection.js";
import type { CatalogSource } from "../metadata/catalog.js";
import { type AnyNode, names, unwrap, walk } from "../parser/ast.js";

/**
 * What the unqualified relation names of a session's statements mean, asked of the session's own
 * PostgreSQL (`to_regclass`, which follows its search_path exactly: pg_temp first, pg_catalog,
 * `"$user"`, schemas that exist, whatever set it: SET, set_config, the startup packet, ALTER ROLE
 * … SET) and kept until something could change the answer:
 *
 * - the metadata changed (a table was distributed or dropped): the catalog's version;
 * - DDL of any session (migration 6's event trigger NOTIFYs herd_relations): relationsEpoch;
 * - this session ran SET, RESET, DISCARD, set_config() or DDL (`changed`, from the session);
 *   when that happened inside a transaction block, the answers are asked again once the block
 *   has ended too, as ROLLBACK may have undone it.
 *
 * A name maps to the relation's oid, or 0 when no relation has that name on the search_path.
 */
export class SessionNames {
  private readonly resolved = new Map<string, number>();
  private catalogVersion = -1;
  private relationsEpoch = -1;
  private changedSinceIdle = false;

  constructor(
    private readonly backend: PgConnection,
    private readonly catalog: Pick<CatalogSource, "current" | "relationsEpoch">,
  ) {}

  /** The session ran something that may change what its names mean. */
  changed(): void {
    this.resolved.clear();
    this.changedSinceIdle = true;
  }

  /**
   * The oids `names` resolve to, when every one is known and still valid: the common case, with
   * no round trip and no await (statements run this per execution).
   */
  known(names: readonly string[]): ReadonlyMap<string, number> | undefined {
    this.forgetStale();
    return names.every((name) => this.resolved.has(name)) ? this.resolved : undefined;
  }

  /** The oids `names` resolve to now (and every other name known already). */
  async resolve(names: readonly string[]): Promise<ReadonlyMap<string, number>> {
    this.forgetStale();
    const missing = names.filter((name) => !this.resolved.has(name));
    if (missing.length > 0) {
      const result = await this.backend.query(
        `SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(n))::oid
           FROM unnest($1::text[]) WITH ORDINALITY AS u (n, i) ORDER BY i`,
        [textArray(missing)],
      );
      missing.forEach((name, i) => {
        this.resolved.set(name, Number(result.rows[i]?.[0]?.toString() ?? 0));
      });
    }
    return this.resolved;
  }

  /** Empties the answers when the catalog, another session's DDL or a block that changed them ended. */
  private forgetStale(): void {
    const { relationsEpoch } = this.catalog;
    const version = this.catalog.current.version;
    const idle = this.backend.status === "I";
    if (version === this.catalogVersion && relationsEpoch === this.relationsEpoch && !(this.changedSinceIdle && idle))
      return;
    this.resolved.clear();
    this.catalogVersion = version;
    this.relationsEpoch = relationsEpoch;
    if (idle) this.changedSinceIdle = false;
  }
}

/** A text[] literal (`{"a","b \"c\""}`): every element quoted, `"` and `\` escaped. */
function textArray(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(",")}}`;
}

/** Statements that never change what a relation name means (unless they call set_config). */
const KEEPS_NAMES = new Set([
  "SelectStmt",
  "InsertStmt",
  "UpdateStmt",
  "DeleteStmt",
  "MergeStmt",
  "CopyStmt",
  "TransactionStmt",
  "VariableShowStmt",
  "ExplainStmt",
  "PrepareStmt",
  "ExecuteStmt",
  "DeallocateStmt",
  "LockStmt",
  "NotifyStmt",
  "ListenStmt",
  "UnlistenStmt",
  "DeclareCursorStmt",
  "FetchStmt",
  "ClosePortalStmt",
  "CheckPointStmt",
  "VacuumStmt",
]);

/** Settings that decide where an unqualified name is looked up (`"$user"` follows the role). */
const NAME_SETTINGS = new Set(["search_path", "role", "session_authorization"]);

/**
 * Whether running `statement` may change what the session's unqualified relation names mean: a
 * SET/RESET of the search_path (or the role, or all settings), DISCARD, DDL, a procedure or DO
 * block, set_config().
 */
export function changesNames(statement: AnyNode): boolean {
  let answer = changesNamesOf.get(statement);
  if (answer === undefined) {
    answer = findsNameChange(statement);
    changesNamesOf.set(statement, answer);
  }
  return answer;
}

/** Parse trees are kept (statement cache, prepared statements): each is looked at once. */
const changesNamesOf = new WeakMap<AnyNode, boolean>();

function findsNameChange(statement: AnyNode): boolean {
  const [type, node] = unwrap(statement) ?? ["", {}];
  if (type === "VariableSetStmt")
    return node.kind === "VAR_RESET_ALL" || NAME_SETTINGS.has((node.name as string | undefined) ?? "");
  if (!KEEPS_NAMES.has(type)) return type !== "";
  let setsConfig = false;
  walk(node, (child, key) => {
    if (key === "FuncCall" && names(child.funcname).at(-1) === "set_config") setsConfig = true;
    return !setsConfig;
  });
  return setsConfig;
}
