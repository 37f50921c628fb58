import { HerdError, SqlState, shardIndexForHash } from "@herd/shared";
import { hashOfText, type ValueSource } from "../executor/distribution-value.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { parameterValue } from "../executor/shard-selection.js";
import type { StatementRun } from "../executor/statement-run.js";
import { alterDistributedTable } from "./alter-distributed-table.js";
import { distributeTable, truncateLocalData } from "./distribute-table.js";
import { findNode, type PlacementCopyRequest } from "./placement-repair.js";
import { runCommandOnShards, runCommandOnWorkers } from "./run-command.js";
import { distributedTable, tableOid } from "./table-lookup.js";
import { distributedTableSize, type SizeFunction } from "./table-size.js";
import { undistributeTable } from "./undistribute-table.js";

/** A call of one of herd's SQL functions (`SELECT create_distributed_table('events', 'id')`). */
export interface FunctionCall {
  readonly name:
    | "create_distributed_table"
    | "create_reference_table"
    | "get_shard_id_for_distribution_column"
    | "recover_prepared_transactions"
    | "citus_copy_shard_placement"
    | "citus_move_shard_placement"
    | "replicate_reference_tables"
    | "citus_rebalance_start"
    | "citus_rebalance_wait"
    | "citus_drain_node"
    | "get_rebalance_table_shards_plan"
    | SizeFunction
    | "truncate_local_data_after_distributing_table"
    | "run_command_on_workers"
    | "run_command_on_shards"
    | "undistribute_table"
    | "alter_distributed_table";
  /** The column name the result goes under (the function's name or the alias). */
  readonly column: string;
  readonly positional: readonly ValueSource[];
  readonly named: ReadonlyMap<string, ValueSource>;
  /** A set-returning function called as `SELECT f(…)`: its rows as one record column. */
  readonly asRecords?: boolean;
}

/** A function's answer: its columns (name, type) and rows of values as text. */
export interface FunctionAnswer {
  readonly columns: readonly { readonly name: string; readonly typeOid: number }[];
  readonly rows: readonly (readonly (string | null)[])[];
}

const VOID_OID = 2278;
const INT8_OID = 20;
const INT4_OID = 23;
const TEXT_OID = 25;
const REGCLASS_OID = 2205;
const BOOL_OID = 16;
const RECORD_OID = 2249;

/** Runs a call of one of herd's SQL functions; resolves with its answer, as PostgreSQL would give it. */
export async function callHerdFunction(
  call: FunctionCall,
  run: StatementRun,
  port: ExecutionPort,
): Promise<FunctionAnswer> {
  const value = (typeOid: number, text: string): FunctionAnswer => ({
    columns: [{ name: call.column, typeOid }],
    rows: [[text]],
  });
  const arg = (position: number, name: string): string | null | undefined => {
    const source = call.named.get(name) ?? call.positional[position];
    return source === undefined ? undefined : textOf(source, run);
  };
  const foreign = port.catalog.foreignDatabase;
  if (foreign !== undefined) {
    throw new HerdError(`herd's distributed tables live in one database; this session is connected to "${foreign}"`, {
      sqlState: SqlState.featureNotSupported,
      detail: `${call.name}() works in the database that holds herd's metadata, where every distributed table is.`,
      hint: "Connect to that database (postgres, unless the cluster was made otherwise) to create and use distributed tables; other databases hold ordinary tables.",
    });
  }
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
        port,
      );
      return value(VOID_OID, "");
    }
    case "create_reference_table":
      await distributeTable({ table: required(arg(0, "table_name"), "table_name"), kind: "reference" }, port);
      return value(VOID_OID, "");
    case "recover_prepared_transactions":
      return value(INT4_OID, String(await port.cluster.recoverPreparedTransactions()));
    case "citus_copy_shard_placement": {
      outsideBlock(call, port);
      await port.cluster.copyShardPlacement(copyRequest(call, arg));
      return value(VOID_OID, "");
    }
    case "citus_move_shard_placement": {
      outsideBlock(call, port);
      // every transfer mode moves online here (logical replication, then a short write pause)
      await port.cluster.moveShardPlacement(copyRequest(call, arg));
      return value(VOID_OID, "");
    }
    case "replicate_reference_tables": {
      outsideBlock(call, port);
      // every transfer mode copies the same way here (a consistent copy under the shard's write lock)
      await port.cluster.replicateReferenceTables();
      return value(VOID_OID, "");
    }
    case "citus_rebalance_start": {
      const strategy = arg(0, "rebalance_strategy");
      const job = await jobsOf(port).startRebalance({
        strategy: strategy === "by_disk_size" ? "by_disk_size" : "by_shard_count",
      });
      return value(INT8_OID, String(job.id));
    }
    case "citus_rebalance_wait": {
      const runner = jobsOf(port);
      const latest = (await runner.list())[0];
      if (latest) await runner.wait(latest.id);
      return value(VOID_OID, "");
    }
    case "citus_drain_node": {
      outsideBlock(call, port);
      const host = required(arg(0, "nodename"), "nodename");
      const nodePort = integer(required(arg(1, "nodeport"), "nodeport"), "nodeport");
      const node = findNode(port.catalog.current, { host, port: nodePort });
      const runner = jobsOf(port);
      const job = await runner.wait((await runner.startDrain(node.id)).id);
      if (job.state !== "done") {
        throw new HerdError(`draining ${node.name} ${job.state}${job.error ? `: ${job.error}` : ""}`, {
          sqlState: SqlState.objectNotInPrerequisiteState,
        });
      }
      return value(VOID_OID, "");
    }
    case "get_rebalance_table_shards_plan": {
      const strategy = arg(5, "rebalance_strategy");
      const relation = arg(0, "relation");
      const drainOnly = arg(4, "drain_only");
      if (drainOnly === "true" || drainOnly === "t") {
        throw new HerdError("drain_only is not supported; drain a node with citus_drain_node", {
          sqlState: SqlState.featureNotSupported,
        });
      }
      const only = relation ? await tableOid(relation, port) : undefined;
      const moves = await jobsOf(port).plan(strategy === "by_disk_size" ? "by_disk_size" : "by_shard_count");
      const catalog = port.catalog.current;
      const rows: (string | null)[][] = [];
      for (const move of moves) {
        const source = catalog.nodes.get(move.from);
        const target = catalog.nodes.get(move.to);
        if (!source || !target) continue;
        // a move takes the colocated shards along (move.shardIds): one row per shard, as Citus lists them
        for (const shardId of move.shardIds) {
          const table = catalog.shardTable(shardId);
          if (!table || (only !== undefined && table.oid !== only)) continue;
          rows.push([
            String(table.oid),
            String(shardId),
            "0",
            source.host,
            String(source.port),
            target.host,
            String(target.port),
          ]);
        }
      }
      // regclass reads as the table's name, qualified when the session's search_path does not
      // find it: the coordinator's PostgreSQL writes it (the shell has the table's oid)
      if (rows.length > 0) {
        const oids = [...new Set(rows.map((row) => row[0] as string))];
        const named = await port.backend.query("SELECT o::text, o::regclass::text FROM unnest($1::oid[]) AS o", [
          `{${oids.join(",")}}`,
        ]);
        const names = new Map(named.rows.map((row) => [row[0]?.toString(), row[1]?.toString()]));
        for (const row of rows) row[0] = names.get(row[0] as string) ?? (row[0] as string);
      }
      return {
        columns: [
          { name: "table_name", typeOid: REGCLASS_OID },
          { name: "shardid", typeOid: INT8_OID },
          { name: "shard_size", typeOid: INT8_OID },
          { name: "sourcename", typeOid: TEXT_OID },
          { name: "sourceport", typeOid: INT4_OID },
          { name: "targetname", typeOid: TEXT_OID },
          { name: "targetport", typeOid: INT4_OID },
        ],
        rows,
      };
    }
    case "citus_relation_size":
    case "citus_table_size":
    case "citus_total_relation_size": {
      const size = await distributedTableSize(call.name, required(arg(0, "logicalrelid"), "logicalrelid"), port);
      return value(INT8_OID, String(size));
    }
    case "run_command_on_workers": {
      const command = required(arg(0, "command"), "command");
      const results = await runCommandOnWorkers(command, port);
      const rows = results.map((row) => [row.host, String(row.port), row.success ? "t" : "f", row.result]);
      return setAnswer(call, rows, [
        { name: "nodename", typeOid: TEXT_OID },
        { name: "nodeport", typeOid: INT4_OID },
        { name: "success", typeOid: BOOL_OID },
        { name: "result", typeOid: TEXT_OID },
      ]);
    }
    case "run_command_on_shards": {
      const relation = required(arg(0, "table_name"), "table_name");
      const table = await distributedTable(
        relation,
        port,
        (name) => new HerdError(`relation ${name} is not distributed`, { sqlState: SqlState.invalidTableDefinition }),
      );
      const results = await runCommandOnShards(table, required(arg(1, "command"), "command"), port);
      const rows = results.map((row) => [String(row.shardId), row.success ? "t" : "f", row.result]);
      return setAnswer(call, rows, [
        { name: "shardid", typeOid: INT8_OID },
        { name: "success", typeOid: BOOL_OID },
        { name: "result", typeOid: TEXT_OID },
      ]);
    }
    case "alter_distributed_table": {
      if (arg(4, "cascade_to_colocated") === "true" || arg(4, "cascade_to_colocated") === "t")
        throw new HerdError("cascade_to_colocated is not supported; alter each table", {
          sqlState: SqlState.featureNotSupported,
        });
      const shardCount = arg(2, "shard_count");
      await alterDistributedTable(
        {
          table: required(arg(0, "table_name"), "table_name"),
          distributionColumn: arg(1, "distribution_column") ?? undefined,
          shardCount: shardCount === undefined || shardCount === null ? undefined : integer(shardCount, "shard_count"),
          colocateWith: arg(3, "colocate_with") ?? undefined,
        },
        port,
      );
      return value(VOID_OID, "");
    }
    case "undistribute_table": {
      if (arg(1, "cascade_via_foreign_keys") === "true" || arg(1, "cascade_via_foreign_keys") === "t")
        throw new HerdError("cascade_via_foreign_keys is not supported", { sqlState: SqlState.featureNotSupported });
      await undistributeTable(required(arg(0, "table_name"), "table_name"), port);
      return value(VOID_OID, "");
    }
    case "truncate_local_data_after_distributing_table":
      await truncateLocalData(required(arg(0, "function_name"), "function_name"), port);
      return value(VOID_OID, "");
    case "get_shard_id_for_distribution_column": {
      const table = required(arg(0, "table_name"), "table_name");
      const id = await shardIdFor(table, arg(1, "distribution_value") ?? null, port);
      return value(INT8_OID, String(id));
    }
  }
}

/**
 * A set-returning function's answer: its rows under `columns` (`SELECT * FROM f(…)`), or one
 * record per row (`SELECT f(…)`, Citus's habit).
 */
function setAnswer(call: FunctionCall, rows: readonly string[][], columns: FunctionAnswer["columns"]): FunctionAnswer {
  if (call.asRecords)
    return { columns: [{ name: call.column, typeOid: RECORD_OID }], rows: rows.map((row) => [recordText(row)]) };
  return { columns, rows };
}

/** A row as PostgreSQL writes a record: (a,b,"c d"), quoting fields that need it. */
function recordText(fields: readonly string[]): string {
  const quoted = fields.map((field) =>
    field === "" || /[(),"\\\s]/.test(field) ? `"${field.replaceAll("\\", "\\\\").replaceAll('"', '""')}"` : field,
  );
  return `(${quoted.join(",")})`;
}

async function shardIdFor(table: string, value: string | null, port: ExecutionPort): Promise<number> {
  const distributed = port.catalog.current.byOid(await tableOid(table, port));
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

/**
 * citus_copy_shard_placement's two forms: (shard_id, source_node_id, target_node_id
 * [, transfer_mode]) and (shard_id, source_node_name, source_node_port, target_node_name,
 * target_node_port [, transfer_mode]). Every transfer mode copies the same way here (a
 * consistent copy under the shards' write lock).
 */
function copyRequest(
  call: FunctionCall,
  arg: (position: number, name: string) => string | null | undefined,
): PlacementCopyRequest {
  const shardId = integer(required(arg(0, "shard_id"), "shard_id"), "shard_id");
  const byName =
    call.named.has("source_node_name") || (!call.named.has("source_node_id") && call.positional.length >= 5);
  if (!byName) {
    return {
      shardId,
      source: { id: integer(required(arg(1, "source_node_id"), "source_node_id"), "source_node_id") },
      target: { id: integer(required(arg(2, "target_node_id"), "target_node_id"), "target_node_id") },
    };
  }
  return {
    shardId,
    source: {
      host: required(arg(1, "source_node_name"), "source_node_name"),
      port: integer(required(arg(2, "source_node_port"), "source_node_port"), "source_node_port"),
    },
    target: {
      host: required(arg(3, "target_node_name"), "target_node_name"),
      port: integer(required(arg(4, "target_node_port"), "target_node_port"), "target_node_port"),
    },
  };
}

/** Functions that wait for the shards' write locks (which the session's own block may hold): not in a block. */
function outsideBlock(call: FunctionCall, port: ExecutionPort): void {
  if (port.inTransactionBlock()) {
    throw new HerdError(`${call.name} cannot run inside a transaction block`, {
      sqlState: SqlState.activeSqlTransaction,
    });
  }
}

function integer(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new HerdError(`invalid input syntax for type integer: "${text}"`, {
      sqlState: SqlState.invalidTextRepresentation,
      detail: `in argument ${name}`,
    });
  }
  return value;
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

function jobsOf(port: ExecutionPort) {
  const runner = port.cluster.jobs();
  if (!runner)
    throw new HerdError("the coordinator is starting; try again in a moment", { sqlState: SqlState.cannotConnectNow });
  return runner;
}
