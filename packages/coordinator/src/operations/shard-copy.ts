import { setTimeout as sleep } from "node:timers/promises";
import { HerdError, type Logger, SqlState } from "@herd/shared";
import type pg from "pg";
import { acquirePair } from "../connection/acquire-pair.js";
import { applySettings, INTERNAL_SETTINGS } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import { streamCopy } from "../copy/copy-stream.js";
import type { DistributedTable, WorkerNode } from "../metadata/catalog-types.js";
import { shardName } from "../metadata/catalog-types.js";
import { deparse, parseStatements } from "../parser/ast.js";
import { qualifiedName } from "../parser/identifiers.js";
import { readShellDefinition } from "./shell-definition.js";

/** One shard of a group to copy, and what the target holds of it now. */
export interface ShardToCopy {
  readonly table: DistributedTable;
  readonly shardId: number;
  /** stale: the target's placement missed writes (repair); missing: the target has none (a new copy). */
  readonly target: "stale" | "missing";
}

/** A copy of colocated shards (the same index of tables in one colocation group) from one worker to another. */
export interface ShardGroupCopy {
  readonly shards: readonly ShardToCopy[];
  readonly source: WorkerNode;
  readonly target: WorkerNode;
}

export interface ShardCopyDeps {
  /** The coordinator's metadata database: the write lock and the placements. */
  readonly metadata: pg.Pool;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
}

export interface ShardCopyReport {
  readonly shards: number;
  readonly rows: number;
  readonly bytes: number;
  readonly ms: number;
}

/** How long a copy waits for the source's prepared transactions (decided, being committed) to finish. */
const PREPARED_WAIT_MS = 30_000;
/** A copy logs its progress every this many bytes. */
const PROGRESS_BYTES = 64 * 1024 * 1024;

/**
 * Copies a group of colocated shards from an active placement on `source` to `target`, where
 * each is stale (repair) or missing (a new copy), and marks the target's placements active:
 *
 *   coordinator: BEGIN; herd.lock_shards(group, whole)     no write of the group runs or starts now
 *   coordinator: check the placements (source active, target stale/missing), FOR UPDATE
 *   source:      wait for the prepared transactions it had (decided; their COMMIT PREPARED is under way)
 *   target:      BEGIN; session_replication_role = replica  (foreign keys are the source's business)
 *                per shard: same definition as the source → empty the table; else (DDL ran while it
 *                was stale, or the table is gone) → re-create it from the source's definition
 *                COPY source → target (binary), row counts compared
 *                COMMIT
 *   coordinator: placements active (the placement epoch moves on: writers planned before re-plan); COMMIT
 *
 * Reads never see a target placement before the last step. A failure at any step leaves the
 * target as it was (stale or missing) for the next attempt; a crash between the target's COMMIT
 * and the coordinator's leaves a placement that is stale but correct: repaired again.
 */
export async function copyShardGroup(copy: ShardGroupCopy, deps: ShardCopyDeps): Promise<ShardCopyReport> {
  const started = performance.now();
  const ids = copy.shards.map((shard) => shard.shardId);
  const client = await deps.metadata.connect();
  let source: WorkerConnection | undefined;
  let target: WorkerConnection | undefined;
  try {
    await client.query("BEGIN");
    // the shards' groups, whole (transaction/shard-lock.ts)
    await lockShardGroups(client, ids);
    await checkPlacements(client, copy);
    [source, target] = await acquirePair(deps.pool, copy.source, copy.target);
    await Promise.all([applySettings(source, INTERNAL_SETTINGS), applySettings(target, INTERNAL_SETTINGS)]);
    await waitForPreparedTransactions(source, copy.source);
    let rows = 0;
    let bytes = 0;
    await target.query("BEGIN");
    await target.query("SET LOCAL session_replication_role = replica");
    for (const shard of copy.shards) {
      const copied = await copyShardTable(shard, source, target, copy, deps.logger);
      rows += copied.rows;
      bytes += copied.bytes;
    }
    await target.query("COMMIT");
    const stale = copy.shards.filter((shard) => shard.target === "stale").map((shard) => shard.shardId);
    const missing = copy.shards.filter((shard) => shard.target === "missing").map((shard) => shard.shardId);
    if (stale.length > 0) {
      await client.query(
        "UPDATE herd.placements SET state = 'active' WHERE shard_id = ANY ($1::bigint[]) AND node_id = $2",
        [stale, copy.target.id],
      );
    }
    if (missing.length > 0) {
      await client.query("INSERT INTO herd.placements (shard_id, node_id) SELECT unnest($1::bigint[]), $2", [
        missing,
        copy.target.id,
      ]);
    }
    await client.query("COMMIT");
    return { shards: copy.shards.length, rows, bytes, ms: Math.round(performance.now() - started) };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    if (target && target.status !== "I") await target.query("ROLLBACK").catch(() => target?.destroy());
    throw error;
  } finally {
    client.release();
    if (source) deps.pool.release(source);
    if (target) deps.pool.release(target);
  }
}

/** Takes the write locks of the shards' groups, whole (transaction/shard-lock.ts), in the client's transaction. */
export async function lockShardGroups(client: pg.PoolClient, shardIds: readonly number[]): Promise<void> {
  await client.query(
    `SELECT herd.lock_shards(ARRAY(SELECT t.colocation_id::bigint * 65536 + s.shard_index
                                     FROM herd.shards s JOIN herd.distributed_tables t ON t.relation = s.relation
                                    WHERE s.id = ANY ($1::bigint[])), '{}', '{}')`,
    [shardIds],
  );
}

/** Under the lock: every shard's source placement is active and its target placement is as the copy expects. */
async function checkPlacements(client: pg.PoolClient, copy: ShardGroupCopy): Promise<void> {
  const { rows } = await client.query<{ shard_id: string; node_id: number; state: string }>(
    `SELECT shard_id, node_id, state FROM herd.placements
      WHERE shard_id = ANY ($1::bigint[]) AND node_id = ANY ($2::int[]) FOR UPDATE`,
    [copy.shards.map((shard) => shard.shardId), [copy.source.id, copy.target.id]],
  );
  const stateOf = (shardId: number, nodeId: number) =>
    rows.find((row) => Number(row.shard_id) === shardId && row.node_id === nodeId)?.state;
  for (const shard of copy.shards) {
    if (stateOf(shard.shardId, copy.source.id) !== "active") {
      throw new HerdError(`shard ${shard.shardId} has no active placement on ${copy.source.name}`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
        detail: "The source of a copy must hold an active placement of every shard it copies.",
      });
    }
    const onTarget = stateOf(shard.shardId, copy.target.id) ?? "missing";
    if (onTarget !== shard.target) {
      throw new HerdError(
        onTarget === "active"
          ? `shard ${shard.shardId} already has an active placement on ${copy.target.name}`
          : `the placement of shard ${shard.shardId} on ${copy.target.name} is ${onTarget}, not ${shard.target}`,
        { sqlState: SqlState.objectNotInPrerequisiteState },
      );
    }
  }
}

/**
 * Writers release their locks when the coordinator has decided; their COMMIT PREPAREDs on the
 * workers may still be under way. The copy reads the source once those it had are done.
 */
export async function waitForPreparedTransactions(source: WorkerConnection, node: WorkerNode): Promise<void> {
  const gids = async () =>
    (await source.query("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'herd\\_%'")).rows.map((row) =>
      String(row[0]),
    );
  const pending = new Set(await gids());
  const deadline = Date.now() + PREPARED_WAIT_MS;
  while (pending.size > 0) {
    const now = new Set(await gids());
    for (const gid of pending) if (!now.has(gid)) pending.delete(gid);
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      throw new HerdError(`prepared transactions on ${node.name} are not finished`, {
        sqlState: SqlState.objectInUse,
        detail: `still prepared: ${[...pending].join(", ")}`,
        hint: "Recovery finishes them once the coordinator can reach every worker; the copy is tried again then.",
      });
    }
    await sleep(50);
  }
}

/** One shard table, source → target, inside the target's open transaction. */
async function copyShardTable(
  shard: ShardToCopy,
  source: WorkerConnection,
  target: WorkerConnection,
  copy: ShardGroupCopy,
  logger: Logger,
): Promise<{ rows: number; bytes: number }> {
  const name = qualifiedName(shard.table.schema, shardName(shard.table, shard.shardId));
  const [sourceShape, targetShape] = await Promise.all([shapeOf(source, name), shapeOf(target, name)]);
  if (sourceShape === undefined) {
    throw new HerdError(`shard table ${name} is missing on ${copy.source.name}`, {
      sqlState: SqlState.undefinedTable,
    });
  }
  const rebuild = targetShape !== sourceShape;
  let after: string[] = [];
  if (!rebuild) {
    // the same table: emptied (DELETE when other tables' foreign keys point at it: TRUNCATE refuses)
    const referenced = await target.query(
      "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass($1) AND conrelid <> confrelid",
      [name],
    );
    await target.query(`${referenced.rows.length > 0 ? "DELETE FROM" : "TRUNCATE"} ${name}`);
  } else {
    after = await rebuildTable(name, source, target, targetShape !== undefined);
    logger.info("re-creating a shard table whose definition differs from its active placement's", {
      shard: shard.shardId,
      node: copy.target.name,
      existed: targetShape !== undefined,
    });
  }
  let logged = 0;
  const result = await streamCopy(
    source,
    `COPY ${name} TO STDOUT (FORMAT binary)`,
    target,
    `COPY ${name} FROM STDIN (FORMAT binary)`,
    (bytes) => {
      if (bytes - logged < PROGRESS_BYTES) return;
      logged = bytes;
      logger.info("copying a shard", { shard: shard.shardId, to: copy.target.name, mb: Math.round(bytes / 2 ** 20) });
    },
  );
  for (const sql of after) await target.query(sql);
  const counted = Number((await target.query(`SELECT count(*) FROM ${name}`)).rows[0]?.[0]?.toString());
  if (result.rowsIn !== result.rowsOut || counted !== result.rowsOut) {
    throw new HerdError(`the copy of shard ${shard.shardId} does not match its source`, {
      sqlState: SqlState.dataCorrupted,
      detail: `${copy.source.name} sent ${result.rowsOut} rows, ${copy.target.name} took ${result.rowsIn} and holds ${counted}`,
    });
  }
  return { rows: result.rowsOut, bytes: result.bytes };
}

/**
 * Re-creates the target's table from the source's definition (columns now; constraints and
 * indexes returned, to run after the rows are in), with the foreign keys of other tables that
 * pointed at it. The statements come from the source's catalog, parsed and printed again.
 */
export async function rebuildTable(
  name: string,
  source: WorkerConnection,
  target: WorkerConnection,
  exists: boolean,
): Promise<string[]> {
  const oid = Number((await source.query("SELECT to_regclass($1)::oid", [name])).rows[0]?.[0]?.toString());
  const [create, ...rest] = (await readShellDefinition(source, oid)).map(deparse);
  let dependents: string[] = [];
  if (exists) {
    const referencing = await target.query(
      `SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
         FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass($1) AND conrelid <> confrelid`,
      [name],
    );
    dependents = referencing.rows.flatMap((row) => parseStatements(String(row[0])).map(deparse));
    await target.query(`DROP TABLE ${name} CASCADE`);
  }
  if (!create) throw new HerdError(`no definition of ${name} on the source`, { sqlState: SqlState.undefinedTable });
  await target.query(create);
  return [...rest, ...dependents];
}

/**
 * A table's definition as one text (columns with types and NOT NULL, constraints, indexes), to
 * tell whether two placements have the same; undefined when there is no such table.
 */
async function shapeOf(connection: WorkerConnection, name: string): Promise<string | undefined> {
  const { rows } = await connection.query(
    `SELECT concat_ws(E'\\n',
              (SELECT string_agg(format('%I %s %s %s', attname, format_type(atttypid, atttypmod), attnotnull, attgenerated),
                                 ', ' ORDER BY attnum)
                 FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped),
              (SELECT string_agg(format('%I %s', conname, pg_get_constraintdef(oid)), ', ' ORDER BY conname)
                 FROM pg_constraint WHERE conrelid = c.oid),
              (SELECT string_agg(pg_get_indexdef(indexrelid), ', ' ORDER BY 1) FROM pg_index WHERE indrelid = c.oid))
       FROM pg_class c WHERE c.oid = to_regclass($1)`,
    [name],
  );
  const shape = rows[0]?.[0];
  return shape === undefined || shape === null ? undefined : shape.toString();
}
