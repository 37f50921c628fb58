import { HerdError, SqlState } from "@herd/shared";
import { inCoordinatorTransaction } from "../../operations/operation-transaction.js";
import { type AnyNode, deparse } from "../../parser/ast.js";
import { backendRequest } from "../backend-request.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * ALTER TABLE on an ordinary table adding a foreign key to a distributed or reference table (Knex
 * and other migration tools write a key this way, right after CREATE TABLE): PostgreSQL's, as a
 * key written inline in CREATE TABLE is, until the table is distributed too (its key then holds on
 * the shards; the shell guard refuses the table's use before). PostgreSQL checks a new key by
 * reading the referenced table, whose rows are on the workers, not in its shell: so the table
 * must be empty (a migration's new table is), and the check runs with the shell guard off for
 * this statement alone.
 */
export class KeyToDistributed implements Primitive {
  readonly kind = "key-to-distributed";

  /** `relation` is the ALTER TABLE's RangeVar; `referenced`, the distributed table's name. */
  constructor(
    private readonly relation: AnyNode,
    private readonly referenced: string,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const backend = port.backend;
    const relation = { RangeVar: { ...this.relation, alias: undefined } };
    const table = deparse(relation);
    await inCoordinatorTransaction(port, async () => {
      const probe = deparse({
        SelectStmt: {
          targetList: [{ ResTarget: { val: { A_Const: { boolval: { boolval: true } } } } }],
          fromClause: [relation],
          limitCount: { A_Const: { ival: { ival: 1 } } },
          limitOption: "LIMIT_OPTION_COUNT",
          op: "SETOP_NONE",
        },
      });
      if ((await backend.query(probe)).rows.length > 0) {
        throw new HerdError(`cannot add a foreign key from ${table}, which holds rows, to ${this.referenced}`, {
          sqlState: SqlState.featureNotSupported,
          detail: `${this.referenced} is distributed: its rows are on the workers, where PostgreSQL's check of the new key cannot read them.`,
          hint: `Distribute ${table} first (create_distributed_table or create_reference_table), then add the key; or add it while ${table} is empty.`,
        });
      }
      const previous = (await backend.query("SELECT pg_catalog.current_setting('herd.shell_guard', true)"))
        .rows[0]?.[0];
      await backend.query("SELECT pg_catalog.set_config('herd.shell_guard', 'off', true)");
      const ok = await port.relay(backendRequest(run), sink, run.bind !== undefined);
      if (ok && backend.status !== "E")
        await backend.query("SELECT pg_catalog.set_config('herd.shell_guard', $1, true)", [
          previous?.toString() ?? "on",
        ]);
    });
  }

  describe(): string {
    return `Foreign key to ${this.referenced} on an ordinary table (the coordinator's)`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
