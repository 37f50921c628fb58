import { HerdError, SqlState, shardIndexForHash } from "@herd/shared";
import { firstValue } from "../connection/pg-connection.js";
import type { SessionContext, StatementRun } from "../executor/execution-port.js";
import type { ShardTaskDeps } from "../executor/fan-out.js";
import { parameterValue } from "../executor/shard-selection.js";
import type { ValueSource } from "../planner/distribution-value.js";
import { hashOfText } from "../planner/distribution-value.js";
import type { FunctionCall } from "../planner/plan.js";
import { encodeCommandComplete, encodeDataRow, encodeRowDescription } from "../protocol/backend-messages.js";
import { type DistributeDefaults, distributeTable } from "./distribute-table.js";

const VOID_OID = 2278;
const INT8_OID = 20;

/** Runs a call of one of herd's SQL functions and answers with its one row, as PostgreSQL would. */
export async function runHerdFunction(
  call: FunctionCall,
  run: StatementRun,
  session: SessionContext,
  deps: ShardTaskDeps,
  defaults: DistributeDefaults,
): Promise<void> {
  const arg = (position: number, name: string): string | null | undefined => {
    const source = call.named.get(name) ?? call.positional[position];
    return source === undefined ? undefined : textOf(source, run);
  };
  let type = VOID_OID;
  let value = "";
  switch (call.name) {
    case "create_distributed_table": {
      const table = required(arg(0, "table_name"), "table_name");
      const column = required(arg(1, "distribution_column"), "distribution_column");
      const method = arg(2, "distribution_type") ?? "hash";
      if (method !== "hash")
        throw new HerdError(`herd distributes by hash only, not by ${method}`, {
          sqlState: SqlState.featureNotSupported,
        });
      const shardCount = arg(4, "shard_count");
      await distributeTable(
        {
          table,
          kind: "hash",
          column,
          colocateWith: arg(3, "colocate_with") ?? "default",
          shardCount: shardCount === undefined || shardCount === null ? undefined : Number(shardCount),
        },
        session,
        deps,
        defaults,
      );
      break;
    }
    case "create_reference_table":
      await distributeTable(
        { table: required(arg(0, "table_name"), "table_name"), kind: "reference" },
        session,
        deps,
        defaults,
      );
      break;
    case "get_shard_id_for_distribution_column": {
      type = INT8_OID;
      value = String(
        await shardIdFor(
          required(arg(0, "table_name"), "table_name"),
          arg(1, "distribution_value") ?? null,
          session,
          deps,
        ),
      );
      break;
    }
  }
  const w = session.output.writer;
  if (run.describe) {
    encodeRowDescription(w, [
      {
        name: call.column,
        tableOid: 0,
        columnNumber: 0,
        typeOid: type,
        typeSize: type === INT8_OID ? 8 : 4,
        typeModifier: -1,
        format: 0,
      },
    ]);
  }
  encodeDataRow(w, [value]);
  encodeCommandComplete(w, "SELECT 1");
}

async function shardIdFor(
  table: string,
  value: string | null,
  session: SessionContext,
  deps: ShardTaskDeps,
): Promise<number> {
  const resolved = await session.backend.query("SELECT $1::regclass::oid", [table]);
  const distributed = deps.catalog.byOid(Number(firstValue(resolved)));
  if (!distributed) throw new HerdError("relation is not distributed", { sqlState: SqlState.invalidTableDefinition });
  if (distributed.kind === "reference") return (distributed.shards[0] as { id: number }).id;
  if (value === null) {
    throw new HerdError("distribution value cannot be NULL for tables other than reference tables.", {
      sqlState: SqlState.nullValueNotAllowed,
    });
  }
  const index = shardIndexForHash(hashOfText(distributed.distributionType as number, value), distributed.shards.length);
  return (distributed.shards[index] as { id: number }).id;
}

function textOf(source: ValueSource, run: StatementRun): string | null {
  if (source.kind === "literal") return source.text;
  return parameterValue(run.bind, source.number)?.toString("utf8") ?? null;
}

function required(value: string | null | undefined, name: string): string {
  if (value === undefined || value === null)
    throw new HerdError(`${name} cannot be NULL`, { sqlState: SqlState.nullValueNotAllowed });
  return value;
}
