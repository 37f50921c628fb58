import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, HerdError, type Logger, SqlState } from "@herd/shared";
import type pg from "pg";
import { acquirePair } from "../connection/acquire-pair.js";
import type { ClusterCredentials } from "../connection/cluster-credentials.js";
import { applySettings, INTERNAL_SETTINGS } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { DistributedTable, WorkerNode } from "../metadata/catalog-types.js";
import { shardName } from "../metadata/catalog-types.js";
import { qualifiedName, quoteLiteral } from "../parser/identifiers.js";
import { lockShardGroups, rebuildTable, waitForPreparedTransactions } from "./shard-copy.js";

/** A group of colocated shards (one index of one colocation group) to move from one worker to another. */
export interface ShardGroupMove {
  readonly shards: readonly { readonly table: DistributedTable; readonly shardId: number }[];
  readonly source: WorkerNode;
  readonly target: WorkerNode;
}

export interface ShardMoveDeps {
  /** The coordinator's metadata database: the move's record, the write lock and the placements. */
  readonly metadata: pg.Pool;
  readonly pool: ConnectionPool;
  /** The internal password the target's subscription logs in to the source with. */
  readonly credentials: ClusterCredentials;
  readonly logger: Logger;
  /** Gives the target the coordinator's roles (the shard tables' owners and grantees) first. */
  readonly prepareTarget: (node: WorkerNode) => Promise<unknown>;
  /** Bytes the target holds of the moved shards so far, while the initial copy runs. */
  readonly onProgress?: (bytes: number) => void;
}

export interface ShardMoveReport {
  readonly moveId: number;
  readonly shards: number;
  readonly rows: number;
  readonly bytes: number;
  readonly ms: number;
  /** How long writes of the shards waited: from the write lock to the switch's commit. */
  readonly writePauseMs: number;
}

/** How long the switch waits for the target to apply what the source had committed before it. */
const CATCH_UP_MS = 30_000;
/** The initial copy is looked at this often (progress, errors). */
const POLL_MS = 200;
/** A copy whose tables and bytes stay the same this long is logged, with what the source runs. */
const STILL_WARN_MS = 15_000;

/** Moves this process is running now: a `copying` move of no running process is undone (MoveCleanup). */
export const runningMoves = new Set<number>();

/**
 * Moves a group of colocated shards online, with logical replication (as Citus does):
 *
 *   coordinator: herd.shard_moves row 'copying'               (what to undo after a crash)
 *   target:      the coordinator's roles; the shard tables, made from the source's definitions
 *   source:      REPLICA IDENTITY FULL for tables without a key; a marker table; a publication
 *   target:      a subscription: the source's rows as of a snapshot, then every change after it
 *                ... reads and writes go on against the source meanwhile ...
 *   coordinator: BEGIN; the groups' write locks               (writes of these shards wait from here)
 *   source:      prepared transactions of the shards finished; a row into the marker table
 *   target:      the marker row arrives: every change committed before it has been applied
 *   both:        row counts compared
 *   coordinator: target placements active, source placements to_delete, the move 'switched'; COMMIT
 *   target/source: subscription, publication and markers dropped; the source's tables later
 *                (MoveCleanup), once no statement planned before the switch can still read them
 *
 * Writers waiting on the lock re-plan against the new placements (their versions moved on). A
 * failure before the switch drops what the move made on the target; the source is untouched.
 */
export async function moveShardGroup(move: ShardGroupMove, deps: ShardMoveDeps): Promise<ShardMoveReport> {
  const started = performance.now();
  const ids = move.shards.map((shard) => shard.shardId);
  const names = move.shards.map(({ table, shardId }) => qualifiedName(table.schema, shardName(table, shardId)));
  await checkMovable(deps.metadata, move, ids);
  const moveId = Number(
    (
      await deps.metadata.query<{ id: string }>(
        "INSERT INTO herd.shard_moves (shard_ids, source_node, target_node, state) VALUES ($1, $2, $3, 'copying') RETURNING id",
        [ids, move.source.id, move.target.id],
      )
    ).rows[0]?.id,
  );
  runningMoves.add(moveId);
  const objects = replicationObjects(moveId);
  let source: WorkerConnection | undefined;
  let target: WorkerConnection | undefined;
  let switched = false;
  try {
    await deps.prepareTarget(move.target);
    [source, target] = await acquirePair(deps.pool, move.source, move.target);
    await Promise.all([applySettings(source, INTERNAL_SETTINGS), applySettings(target, INTERNAL_SETTINGS)]);
    await createTargetTables(names, source, target);
    for (const name of names) {
      // without a key, UPDATE and DELETE could not be published (and would fail on the source)
      const keyless = await source.query(
        `SELECT 1 FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relreplident = 'd'
            AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)`,
        [name],
      );
      if (keyless.rows.length > 0) await source.query(`ALTER TABLE ${name} REPLICA IDENTITY FULL`);
    }
    for (const server of [source, target]) {
      await server.query("CREATE SCHEMA IF NOT EXISTS herd_move");
      await server.query(`CREATE TABLE IF NOT EXISTS ${objects.marker} (n int PRIMARY KEY)`);
    }
    await source.query(`CREATE PUBLICATION ${objects.name} FOR TABLE ${[...names, objects.marker].join(", ")}`);
    await target.query(
      `CREATE SUBSCRIPTION ${objects.name} CONNECTION ${quoteLiteral(conninfo(move.source, deps.credentials, moveId))}
         PUBLICATION ${objects.name} WITH (slot_name = ${quoteLiteral(objects.slot)}, copy_data = true)`,
    );
    deps.logger.info("moving shards: initial copy", {
      move: moveId,
      shards: ids.join(" "),
      from: move.source.name,
      to: move.target.name,
    });
    await waitForInitialCopy(source, target, objects, names, deps);
    const { rows, writePauseMs } = await switchPlacements(move, moveId, ids, names, objects, source, target, deps);
    switched = true;
    const bytes = await sizeOf(target, names);
    deps.logger.info("shards moved", {
      move: moveId,
      shards: ids.join(" "),
      to: move.target.name,
      rows,
      bytes,
      write_pause_ms: writePauseMs,
    });
    return { moveId, shards: ids.length, rows, bytes, ms: Math.round(performance.now() - started), writePauseMs };
  } catch (error) {
    deps.logger.warn("shard move failed; undoing it", { move: moveId, error: errorMessage(error) });
    throw error;
  } finally {
    if (source && target) await dropReplication(objects, source, target, deps.logger);
    if (!switched) await undoMove(deps, { id: moveId, names, source: move.source, target: move.target, shardIds: ids });
    runningMoves.delete(moveId);
    if (source) deps.pool.release(source);
    if (target) deps.pool.release(target);
  }
}

/** Before anything is made: the source holds every shard active, the target none of them at all. */
async function checkMovable(metadata: pg.Pool, move: ShardGroupMove, ids: readonly number[]): Promise<void> {
  if (move.source.id === move.target.id) {
    throw new HerdError("shard placements cannot be moved onto the node they are on", {
      sqlState: SqlState.invalidParameterValue,
    });
  }
  if (move.target.state !== "active") {
    throw new HerdError(`${move.target.name} is ${move.target.state}: shards move only to active workers`, {
      sqlState: SqlState.objectNotInPrerequisiteState,
    });
  }
  const { rows } = await metadata.query<{ shard_id: string; node_id: number; state: string }>(
    "SELECT shard_id, node_id, state FROM herd.placements WHERE shard_id = ANY ($1::bigint[]) AND node_id = ANY ($2::int[])",
    [ids, [move.source.id, move.target.id]],
  );
  for (const id of ids) {
    const on = (node: number) => rows.find((row) => Number(row.shard_id) === id && row.node_id === node)?.state;
    if (on(move.source.id) !== "active") {
      throw new HerdError(`shard ${id} has no active placement on ${move.source.name}`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
      });
    }
    const there = on(move.target.id);
    if (there !== undefined) {
      throw new HerdError(`shard ${id} already has a placement on ${move.target.name} (${there})`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
        hint: there === "to_delete" ? "It is being removed after an earlier move; try again in a minute." : undefined,
      });
    }
  }
  const running = await metadata.query(
    "SELECT id FROM herd.shard_moves WHERE state = 'copying' AND shard_ids && $1::bigint[]",
    [ids],
  );
  if (running.rows.length > 0) {
    throw new HerdError(`shard ${ids[0]} is being moved already (move ${running.rows[0]?.id})`, {
      sqlState: SqlState.objectInUse,
    });
  }
}

/** Empty shard tables on the target, made from the source's definitions (keys and indexes included). */
async function createTargetTables(names: readonly string[], source: WorkerConnection, target: WorkerConnection) {
  const after: string[] = [];
  await target.query("BEGIN");
  for (const name of names) {
    const exists = (await target.query("SELECT to_regclass($1)", [name])).rows[0]?.[0] != null;
    // a table left by a move that was undone while the worker was away goes first
    after.push(...(await rebuildTable(name, source, target, exists)));
  }
  for (const sql of after) await target.query(sql);
  await target.query("COMMIT");
}

async function waitForInitialCopy(
  source: WorkerConnection,
  target: WorkerConnection,
  objects: ReplicationObjects,
  names: readonly string[],
  deps: ShardMoveDeps,
): Promise<void> {
  let reported = 0;
  let seen = "";
  let stillSince = Date.now();
  for (;;) {
    const { rows } = await target.query(
      `SELECT count(*) FILTER (WHERE r.srsubstate = 'r'), count(*)
         FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid WHERE s.subname = $1`,
      [objects.name],
    );
    const [ready, all] = (rows[0] ?? []).map((value) => Number(value?.toString()));
    if (all === names.length + 1 && ready === all) return;
    const bytes = await sizeOf(target, names);
    const now = `${ready}/${all} ${bytes}`;
    if (now !== seen) [seen, stillSince] = [now, Date.now()];
    else if (Date.now() - stillSince >= STILL_WARN_MS) {
      // a copy that does not move waits for something on the source: say what, without its SQL
      stillSince = Date.now();
      deps.logger.warn("moving shards: the initial copy has not moved", {
        subscription: objects.name,
        tables_ready: `${ready}/${all}`,
        bytes,
        source_transactions: await openTransactions(source),
      });
    }
    // a source that crashed fails the move now (it is undone), not after the copy
    await source.query("SELECT 1");
    deps.onProgress?.(bytes);
    if (bytes - reported >= 64 * 2 ** 20) {
      reported = bytes;
      deps.logger.info("moving shards: copying", { subscription: objects.name, mb: Math.round(bytes / 2 ** 20) });
    }
    await sleep(POLL_MS);
  }
}

/**
 * The source's oldest open and prepared transactions: a replication slot is made only once every
 * transaction running when it was asked for has ended, so one left open stalls the initial copy.
 */
async function openTransactions(source: WorkerConnection): Promise<string> {
  const { rows } = await source.query(
    `SELECT coalesce(nullif(application_name, ''), backend_type) || ' ' || state || ' ' ||
            coalesce(wait_event, '-') || ' ' || round(extract(epoch FROM now() - xact_start)) || 's'
       FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
      UNION ALL
     SELECT 'prepared ' || gid || ' ' || round(extract(epoch FROM now() - prepared)) || 's' FROM pg_prepared_xacts
      LIMIT 8`,
  );
  return rows.map((row) => String(row[0])).join("; ") || "none";
}

/** The switch, under the shards' write locks: the target caught up, counts equal, placements swapped. */
async function switchPlacements(
  move: ShardGroupMove,
  moveId: number,
  ids: readonly number[],
  names: readonly string[],
  objects: ReplicationObjects,
  source: WorkerConnection,
  target: WorkerConnection,
  deps: ShardMoveDeps,
): Promise<{ rows: number; writePauseMs: number }> {
  const client = await deps.metadata.connect();
  try {
    await client.query("BEGIN");
    await lockShardGroups(client, ids);
    const paused = performance.now();
    const { rows: placements } = await client.query<{ shard_id: string; node_id: number; state: string }>(
      "SELECT shard_id, node_id, state FROM herd.placements WHERE shard_id = ANY ($1::bigint[]) FOR UPDATE",
      [ids],
    );
    for (const id of ids) {
      const on = (node: number) => placements.find((p) => Number(p.shard_id) === id && p.node_id === node)?.state;
      if (on(move.source.id) !== "active" || on(move.target.id) !== undefined) {
        throw new HerdError(`the placements of shard ${id} changed while it was being moved`, {
          sqlState: SqlState.objectNotInPrerequisiteState,
        });
      }
    }
    await waitForPreparedTransactions(source, move.source);
    await source.query(`INSERT INTO ${objects.marker} VALUES (1)`);
    const deadline = Date.now() + CATCH_UP_MS;
    while ((await target.query(`SELECT 1 FROM ${objects.marker}`)).rows.length === 0) {
      if (Date.now() > deadline) {
        throw new HerdError(`${move.target.name} did not catch up with ${move.source.name} in time`, {
          sqlState: SqlState.objectNotInPrerequisiteState,
          hint: "The move was undone; writes to the shards went on against the source. Try again.",
        });
      }
      await sleep(5);
    }
    let rows = 0;
    for (const name of names) {
      const count = async (server: WorkerConnection) =>
        Number((await server.query(`SELECT count(*) FROM ${name}`)).rows[0]?.[0]?.toString());
      const [atSource, atTarget] = await Promise.all([count(source), count(target)]);
      if (atSource !== atTarget) {
        throw new HerdError(`the moved copy of ${name} does not match its source`, {
          sqlState: SqlState.dataCorrupted,
          detail: `${move.source.name} holds ${atSource} rows, ${move.target.name} ${atTarget}`,
        });
      }
      rows += atSource;
    }
    await client.query("INSERT INTO herd.placements (shard_id, node_id) SELECT unnest($1::bigint[]), $2", [
      ids,
      move.target.id,
    ]);
    await client.query(
      "UPDATE herd.placements SET state = 'to_delete' WHERE shard_id = ANY ($1::bigint[]) AND node_id = $2",
      [ids, move.source.id],
    );
    await client.query("UPDATE herd.shard_moves SET state = 'switched', switched_at = now() WHERE id = $1", [moveId]);
    await client.query("COMMIT");
    return { rows, writePauseMs: Math.round(performance.now() - paused) };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

interface ReplicationObjects {
  /** The publication's and the subscription's name. */
  readonly name: string;
  readonly slot: string;
  readonly marker: string;
}

function replicationObjects(moveId: number): ReplicationObjects {
  return { name: `herd_move_${moveId}`, slot: `herd_move_${moveId}`, marker: `herd_move.marker_${moveId}` };
}

/** How the target's subscription reaches the source: its address as the cluster knows it, as herd's superuser. */
function conninfo(source: WorkerNode, credentials: ClusterCredentials, moveId: number): string {
  const value = (text: string) => `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  return [
    `host=${value(source.host)}`,
    `port=${source.port}`,
    "user=postgres",
    `password=${value(credentials.internalPassword)}`,
    "dbname=postgres",
    `application_name=${value(`herd_move_${moveId}`)}`,
  ].join(" ");
}

async function sizeOf(server: WorkerConnection, names: readonly string[]): Promise<number> {
  const { rows } = await server.query(
    "SELECT coalesce(sum(pg_total_relation_size(to_regclass(n))), 0) FROM jsonb_array_elements_text($1::jsonb) n",
    [JSON.stringify(names)],
  );
  return Number(rows[0]?.[0]?.toString());
}

/** Drops the subscription (and with it the source's slot), the publication and the marker tables. */
async function dropReplication(
  objects: ReplicationObjects,
  source: WorkerConnection,
  target: WorkerConnection,
  logger: Logger,
): Promise<void> {
  const attempts = [
    () => target.query(`DROP SUBSCRIPTION IF EXISTS ${objects.name}`),
    () => source.query(`DROP PUBLICATION IF EXISTS ${objects.name}`),
    () => source.query(`DROP TABLE IF EXISTS ${objects.marker}`),
    () => target.query(`DROP TABLE IF EXISTS ${objects.marker}`),
  ];
  for (const attempt of attempts) {
    await attempt().catch((error: unknown) =>
      logger.warn("shard move: cleaning up replication failed", { name: objects.name, error: errorMessage(error) }),
    );
  }
}

export interface UnfinishedMove {
  readonly id: number;
  readonly shardIds: readonly number[];
  readonly names: readonly string[];
  readonly source: WorkerNode;
  readonly target: WorkerNode;
}

/**
 * Undoes a move that did not switch: the target's subscription (detached from its slot when the
 * source cannot be reached), its shard tables (it holds no placement of them) and markers; the
 * source's publication, slot and marker; then the record. What cannot be reached now is left to
 * the next pass (the record stays).
 */
export async function undoMove(deps: Pick<ShardMoveDeps, "metadata" | "pool" | "logger">, move: UnfinishedMove) {
  const objects = replicationObjects(move.id);
  let target: WorkerConnection | undefined;
  let source: WorkerConnection | undefined;
  try {
    // both ends, or neither: the subscription is dropped while its publisher answers, so that
    // PostgreSQL drops the slots it made there (its own and the table-sync ones) with it
    [target, source] = await acquirePair(deps.pool, move.target, move.source);
    await Promise.all([applySettings(target, INTERNAL_SETTINGS), applySettings(source, INTERNAL_SETTINGS)]);
    const subscription = await target.query("SELECT oid FROM pg_subscription WHERE subname = $1", [objects.name]);
    const subscriptionOid = subscription.rows[0]?.[0]?.toString();
    if (subscriptionOid !== undefined) {
      await target.query(`ALTER SUBSCRIPTION ${objects.name} DISABLE`);
      try {
        await target.query(`DROP SUBSCRIPTION ${objects.name}`);
      } catch {
        // the slot could not be dropped from here (in use): detach it and drop it on the source below
        await target.query(`ALTER SUBSCRIPTION ${objects.name} SET (slot_name = NONE)`);
        await target.query(`DROP SUBSCRIPTION ${objects.name}`);
      }
    }
    const held = await deps.metadata.query(
      "SELECT shard_id FROM herd.placements WHERE shard_id = ANY ($1::bigint[]) AND node_id = $2",
      [move.shardIds, move.target.id],
    );
    if (held.rows.length === 0)
      for (const name of move.names) await target.query(`DROP TABLE IF EXISTS ${name} CASCADE`);
    await target.query(`DROP TABLE IF EXISTS ${objects.marker}`);
    await source.query(`DROP PUBLICATION IF EXISTS ${objects.name}`);
    await dropSlot(source, objects.slot);
    if (subscriptionOid !== undefined) {
      const syncSlots = await source.query("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1", [
        `pg\\_${subscriptionOid}\\_sync\\_%`,
      ]);
      for (const row of syncSlots.rows) await dropSlot(source, row[0]?.toString() ?? "");
    }
    await source.query(`DROP TABLE IF EXISTS ${objects.marker}`);
    await restoreReplicaIdentity(deps.metadata, source, move);
    await deps.metadata.query("DELETE FROM herd.shard_moves WHERE id = $1 AND state = 'copying'", [move.id]);
  } catch (error) {
    deps.logger.warn("shard move: could not undo it now; trying again later", {
      move: move.id,
      error: errorMessage(error),
    });
  } finally {
    if (target) deps.pool.release(target);
    if (source) deps.pool.release(source);
  }
}

/**
 * Drops the move's replication slot on the source. The target's subscription is gone by now, but
 * its walsender may still hold the slot for a while (a source that restarted is reconnected to
 * before the undo): it is ended first. A slot left behind would keep the source's WAL forever, so
 * one that cannot be dropped fails the undo, and the next pass tries again.
 */
async function dropSlot(source: WorkerConnection, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const { rows } = await source.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [slot]);
    if (rows.length === 0) return;
    if (rows[0]?.[0]?.toString() === "t") {
      await source.query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active",
        [slot],
      );
      await sleep(100);
      continue;
    }
    try {
      await source.query("SELECT pg_drop_replication_slot($1)", [slot]);
      return;
    } catch {
      await sleep(100); // taken again in between: once more
    }
  }
  throw new HerdError(`the replication slot ${slot} is still in use`, { sqlState: SqlState.objectInUse });
}

/**
 * The move set REPLICA IDENTITY FULL on the source's tables without a key; an undone move puts
 * back the identity of the table's shell on the coordinator (DEFAULT unless someone chose FULL),
 * so that a failed move leaves no extra WAL behind on every later UPDATE and DELETE.
 */
async function restoreReplicaIdentity(metadata: pg.Pool, source: WorkerConnection, move: UnfinishedMove) {
  for (const [index, name] of move.names.entries()) {
    const suffix = `_${move.shardIds[index]}`;
    const shell = name.endsWith(`${suffix}"`) ? `${name.slice(0, -suffix.length - 1)}"` : name.slice(0, -suffix.length);
    const atSource = await source.query("SELECT relreplident FROM pg_class WHERE oid = to_regclass($1)", [name]);
    if (atSource.rows[0]?.[0]?.toString() !== "f") continue;
    const { rows } = await metadata.query<{ identity: string }>(
      "SELECT relreplident AS identity FROM pg_class WHERE oid = to_regclass($1)",
      [shell],
    );
    if (rows[0]?.identity !== "f") await source.query(`ALTER TABLE ${name} REPLICA IDENTITY DEFAULT`);
  }
}

/** The moved-away tables of a switched move, dropped on the source; then its placements and record. */
export async function finishMove(deps: Pick<ShardMoveDeps, "metadata" | "pool" | "logger">, move: UnfinishedMove) {
  const source = await deps.pool.acquire(move.source);
  try {
    await applySettings(source, INTERNAL_SETTINGS);
    for (const name of move.names) await source.query(`DROP TABLE IF EXISTS ${name} CASCADE`);
  } finally {
    deps.pool.release(source);
  }
  const client = await deps.metadata.connect();
  try {
    await client.query("BEGIN");
    await client.query(
      "DELETE FROM herd.placements WHERE shard_id = ANY ($1::bigint[]) AND node_id = $2 AND state = 'to_delete'",
      [move.shardIds, move.source.id],
    );
    await client.query("DELETE FROM herd.shard_moves WHERE id = $1", [move.id]);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
