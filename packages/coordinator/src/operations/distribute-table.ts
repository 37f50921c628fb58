import { HerdError, hashRanges, SqlState, shardIndexForHash } from "@herd/shared";
import { firstValue, type PgConnection, ResultCollector } from "../connection/pg-connection.js";
import { asHerd } from "../connection/session-settings.js";
import { CopyKeyReader } from "../copy/copy-key.js";
import { CopyRowSplitter, copyField, TEXT_FORMAT } from "../copy/copy-rows.js";
import { hashOfText, isHashableType } from "../executor/distribution-value.js";
import { ExecutionErrors } from "../executor/execution-errors.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { shardName, type WorkerNode } from "../metadata/catalog-types.js";
import type { AnyNode } from "../parser/ast.js";
import { qualifiedName, quoteIdent } from "../parser/identifiers.js";
import { foreignKeyProblem } from "../planner/foreign-keys.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";
import { inCoordinatorTransaction, inOperationTransaction } from "./operation-transaction.js";
import { readServerSecurity, syncServer } from "./role-propagation.js";
import { ShardRowFiles } from "./shard-row-files.js";
import { CLOSE_SHELLS, OPEN_SHELLS } from "./shell-access.js";
import { copyColumns, readShellDefinition, shardDefinition } from "./shell-definition.js";
import { distributedTable, ensureOwner } from "./table-lookup.js";

export interface DistributeRequest {
  /** The table as the user wrote it (resolved with the session's search_path). */
  readonly table: string;
  readonly kind: "hash" | "reference";
  readonly column?: string;
  /** 'default', 'none', or a table to colocate with. */
  readonly colocateWith?: string;
  readonly shardCount?: number;
}

export interface DistributeDefaults {
  readonly shardCount: number;
  readonly replicationFactor: number;
}

interface ShellTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
}

/**
 * create_distributed_table / create_reference_table. In one coordinator transaction (the
 * session's own connection, so the session's search_path resolves the name): lock the shell,
 * write the metadata (colocation group, table, shards with their hash ranges, placements), read
 * the shell's rows and empty it; on each worker, in a prepared transaction: create the shard
 * tables and load their rows. The coordinator commits once every worker prepared.
 *
 * Inside a transaction block (a migration), all of it is part of the block's distributed
 * transaction: it commits with the block's other statements or not at all, and the block's
 * statements after it see the table distributed (the block's own metadata snapshot).
 *
 * Placement (DESIGN.md): with the active workers ordered by id, shard i goes to worker i mod W
 * and its replicas to the workers after it; a table colocated with another takes the same
 * workers shard by shard, so joins on the distribution column stay on one worker.
 */
export async function distributeTable(request: DistributeRequest, port: ExecutionPort): Promise<void> {
  await port.catalog.reload();
  let catalog = port.catalog.current;
  // a worker that joined moments ago may not hold the reference tables yet: its shards' foreign
  // keys and joins reach them there, so it gets them first (in a block, the copies' own
  // transactions cannot be part of it: the background pass gives them, and joins are refused until)
  if (request.kind === "hash" && !port.inTransactionBlock() && lacksReferenceTables(catalog)) {
    await port.cluster.replicateReferenceTables();
    await port.catalog.reload();
    catalog = port.catalog.current;
  }
  const defaults = port.defaults;
  const backend = port.backend;
  const shell = await resolveShell(backend, request.table);
  if (catalog.byOid(shell.oid)) {
    throw new HerdError(`table "${shell.name}" is already distributed`, { sqlState: SqlState.invalidTableDefinition });
  }
  await ensureOwner(backend, shell.oid, shell.name);
  const workers = [...catalog.nodes.values()].filter((node) => node.state === "active");
  const columnType =
    request.kind === "hash" ? await distributionColumnType(backend, shell, request.column as string) : undefined;

  let shardCount = 1;
  let replicationFactor = workers.length;
  let colocationId: number | undefined;
  let placementsOf: (index: number) => WorkerNode[];
  if (request.kind === "hash") {
    // Citus's session settings, when the session set them: citus.shard_count, citus.shard_replication_factor
    const settings = await backend.query(
      "SELECT current_setting('citus.shard_count', true), current_setting('citus.shard_replication_factor', true)",
    );
    const setting = (index: number) => {
      const text = settings.rows[0]?.[index]?.toString();
      return text === undefined || text === "" ? undefined : Number(text);
    };
    const colocated = colocationSource(request, catalog, columnType as number, shell.name, {
      shardCount: setting(0),
      replicationFactor: setting(1),
    });
    shardCount = colocated?.shards.length ?? request.shardCount ?? setting(0) ?? defaults.shardCount;
    replicationFactor = setting(1) ?? defaults.replicationFactor;
    if (!Number.isInteger(replicationFactor) || replicationFactor < 1 || replicationFactor > 100) {
      throw new HerdError("citus.shard_replication_factor must be between 1 and 100", {
        sqlState: SqlState.invalidParameterValue,
      });
    }
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 64000) {
      throw new HerdError("shard_count must be between 1 and 64000", { sqlState: SqlState.invalidParameterValue });
    }
    if (colocated) {
      colocationId = colocated.colocationId;
      placementsOf = (index) =>
        (colocated.shards[index]?.placements ?? [])
          .map((p) => catalog.nodes.get(p.nodeId))
          .filter((n) => n !== undefined);
    } else {
      if (replicationFactor > workers.length) {
        throw new HerdError(
          `replication_factor (${replicationFactor}) exceeds number of worker nodes (${workers.length})`,
          {
            sqlState: SqlState.invalidParameterValue,
            hint: "Add more worker nodes or try again with a lower replication factor.",
          },
        );
      }
      placementsOf = (index) =>
        Array.from({ length: replicationFactor }, (_, r) => workers[(index + r) % workers.length] as WorkerNode);
    }
  } else {
    if (workers.length === 0) {
      throw new HerdError("couldn't find any worker nodes", {
        sqlState: SqlState.invalidParameterValue,
        hint: "Add more worker nodes",
      });
    }
    placementsOf = () => workers;
  }

  const definition = await readShellDefinition(backend, shell.oid);
  // its foreign keys must be ones each placement can enforce on its own worker
  const owner = {
    schema: shell.schema,
    name: shell.name,
    kind: request.kind,
    distributionColumn: request.column,
    colocationId: colocationId ?? -1,
  };
  for (const constraint of foreignKeysOf(definition)) {
    const problem = foreignKeyProblem(constraint, owner, catalog);
    if (problem) throw problem;
  }
  await inOperationTransaction(port, async (transaction) => {
    // the new shards are nobody else's yet: no shard to lock, but the coordinator's transaction opens
    await transaction.lockShards(new Map());
    transaction.writesOnCoordinator();
    await backend.query(`LOCK TABLE ${quoted(shell)} IN EXCLUSIVE MODE`);
    if (colocationId === undefined) {
      // reference tables share one colocation group; a hash table not colocated with another gets its own
      const existing =
        request.kind === "reference"
          ? firstValue(
              await backend.query(
                `SELECT g.id FROM herd.colocation_groups g WHERE g.distribution_column_type IS NULL AND g.shard_count = 1
                  ORDER BY g.id LIMIT 1`,
              ),
            )
          : null;
      colocationId = Number(
        existing ??
          firstValue(
            await backend.query(
              `INSERT INTO herd.colocation_groups (shard_count, replication_factor, distribution_column_type)
               VALUES ($1, $2, $3::oid) RETURNING id`,
              [String(shardCount), String(replicationFactor), columnType === undefined ? null : String(columnType)],
            ),
          ),
      );
    }
    await backend.query(
      "INSERT INTO herd.distributed_tables (relation, kind, distribution_column, colocation_id) VALUES ($1::oid, $2, $3, $4)",
      [String(shell.oid), request.kind, request.column ?? null, String(colocationId)],
    );
    const ranges = request.kind === "hash" ? hashRanges(shardCount) : [undefined];
    const shardIds: number[] = [];
    for (const [index, range] of ranges.entries()) {
      const inserted = await backend.query(
        "INSERT INTO herd.shards (relation, shard_index, min_value, max_value) VALUES ($1::oid, $2, $3, $4) RETURNING id",
        [String(shell.oid), String(index), range ? String(range.min) : null, range ? String(range.max) : null],
      );
      const shardId = Number(firstValue(inserted));
      shardIds.push(shardId);
      for (const node of placementsOf(index)) {
        await backend.query("INSERT INTO herd.placements (shard_id, node_id) VALUES ($1, $2)", [
          String(shardId),
          String(node.id),
        ]);
      }
    }
    // the shell's rows sorted by shard on the coordinator's disk (memory holds a few buffers of them)
    const files = new ShardRowFiles(shardCount);
    try {
      const columns = await takeRows(backend, shell, request, shardCount, columnType, files);
      // what the shards' owner, grantees, policies' roles and schema need on each worker, as it is now
      const security = await readServerSecurity(backend, shell.schema === "public" ? [] : [shell.schema]);
      // the coordinator's PostgreSQL checked the session's privileges on the shell: herd does the rest
      const settings = asHerd(port.settings());
      const outcomes = await Promise.allSettled(
        workers.map(async (node) => {
          const mine = shardIds
            .map((id, index) => ({ id, index }))
            .filter(({ index }) => placementsOf(index).some((n) => n.id === node.id));
          if (mine.length === 0) return;
          const { connection, opening } = await transaction.join(node, settings);
          if (opening) await connection.query(opening);
          for (const { id } of mine) transaction.wrote(node.id, id);
          if (shell.schema !== "public")
            await connection.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(shell.schema)}`);
          await syncServer(security, connection, port.cluster.credentials);
          for (const { id, index } of mine) {
            for (const sql of shardDefinition(definition, shell, id, index, catalog)) await connection.query(sql);
            if (files.has(index)) {
              const target = `${quoteIdent(shell.schema)}.${quoteIdent(shardName(shell, id))}`;
              await files.copyInto(index, connection, `COPY ${target} (${columns}) FROM STDIN`);
            }
          }
        }),
      );
      const failed = outcomes.find((outcome) => outcome.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    } finally {
      await files.dispose();
    }
    await emptyShell(backend, shell);
    await backend.query("SELECT herd.guard_shell($1::oid::regclass)", [String(shell.oid)]);
  });
}

/** Some active worker holds no active copy of some reference table. */
function lacksReferenceTables(catalog: CatalogSnapshot): boolean {
  const workers = [...catalog.nodes.values()].filter((node) => node.state === "active");
  return [...catalog.tables].some(
    (table) =>
      table.kind === "reference" &&
      table.shards.some((shard) =>
        workers.some((node) => !shard.placements.some((p) => p.nodeId === node.id && p.state === "active")),
      ),
  );
}

/** The FOREIGN KEY constraints of a shell's definition (its ALTER TABLE … ADD CONSTRAINT statements). */
function foreignKeysOf(definition: readonly AnyNode[]): AnyNode[] {
  const found: AnyNode[] = [];
  for (const statement of definition) {
    for (const command of (statement.AlterTableStmt?.cmds ?? []) as AnyNode[]) {
      const constraint = command.AlterTableCmd?.def?.Constraint;
      if (constraint?.contype === "CONSTR_FOREIGN") found.push(constraint);
    }
  }
  return found;
}

/**
 * Empties the shell once its rows are in the shards: TRUNCATE, unless tables reference it by
 * foreign key (PostgreSQL refuses to truncate it then). Then DELETE, whose checks fail while an
 * ordinary table still has rows that reference it (a dump restored into herd: every table is
 * ordinary, and each is distributed in turn, referenced tables first): its rows then stay in the
 * shell, unread (the shell guard refuses reads), until the tables that reference them are
 * distributed too; every distribution empties the shells it can (purgeShells).
 */
async function emptyShell(backend: PgConnection, shell: ShellTable): Promise<void> {
  const referenced = await backend.query(
    "SELECT 1 FROM pg_constraint WHERE confrelid = $1::oid AND contype = 'f' AND conrelid <> confrelid LIMIT 1",
    [String(shell.oid)],
  );
  if (referenced.rows.length === 0) await backend.query(`TRUNCATE ${quoted(shell)}`);
  await purgeShells(backend, shell.oid);
}

/**
 * truncate_local_data_after_distributing_table: herd empties a shell when it distributes the
 * table, except for rows that ordinary tables' rows still reference (see emptyShell); this tries
 * again, and says so when such rows are still there.
 */
export async function truncateLocalData(relation: string, port: ExecutionPort): Promise<void> {
  const table = await distributedTable(
    relation,
    port,
    () =>
      new HerdError("supplied parameter is not a distributed relation", { sqlState: SqlState.invalidParameterValue }),
  );
  const backend = port.backend;
  await inCoordinatorTransaction(port, async () => {
    await purgeShells(backend, table.oid);
    await backend.query("SET LOCAL herd.shell_guard = off");
    const left = firstValue(
      await backend.query(`SELECT EXISTS (SELECT FROM ONLY ${qualifiedName(table.schema, table.name)})`),
    );
    await backend.query("RESET herd.shell_guard");
    if (left === "t") {
      throw new HerdError("cannot truncate a table referenced in a foreign key constraint by a local table", {
        sqlState: SqlState.featureNotSupported,
        detail: `Rows of ordinary tables reference rows of "${table.name}" still held on the coordinator.`,
        hint: "Distribute the referencing tables too, or delete their rows that reference it.",
      });
    }
  });
}

/**
 * Deletes the rows left in shells (`also`: a table being distributed, not yet in the metadata)
 * where no ordinary table's row references them any more; a shell still referenced keeps its
 * rows. The session's own rights apply: a shell it may not empty is left as it is.
 */
async function purgeShells(backend: PgConnection, also: number): Promise<void> {
  await backend.query(OPEN_SHELLS);
  await backend.query("SELECT pg_catalog.set_config('herd.purge_also', $1, true)", [String(also)]);
  // (a failure aborts the transaction, which undoes the settings too)
  await backend.query(
    `DO $purge$
       DECLARE shell regclass; has_rows boolean;
       BEGIN
         FOR shell IN SELECT s.relation FROM (SELECT relation FROM herd.distributed_tables
                                              UNION SELECT pg_catalog.current_setting('herd.purge_also')::oid::regclass) s
                       WHERE pg_catalog.has_table_privilege(s.relation, 'SELECT, DELETE') LOOP
           BEGIN
             EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM ONLY %s)', shell) INTO has_rows;
             CONTINUE WHEN NOT has_rows;
             EXECUTE pg_catalog.format('DELETE FROM ONLY %s', shell);
           EXCEPTION WHEN foreign_key_violation OR insufficient_privilege THEN
             RAISE NOTICE 'the rows of "%" stay in its shell on the coordinator, unread, until the ordinary tables whose rows reference them are distributed too', shell;
           END;
         END LOOP;
       END $purge$`,
  );
  await backend.query(`${CLOSE_SHELLS}; RESET herd.purge_also`);
}

async function resolveShell(backend: PgConnection, name: string): Promise<ShellTable> {
  const result = await backend.query(
    `SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = $1::regclass`,
    [name],
  );
  const row = result.rows[0] as Buffer[];
  const kind = (row[3] as Buffer).toString();
  if (kind !== "r") {
    throw new HerdError(`"${name}" is not a regular table`, {
      sqlState: SqlState.wrongObjectType,
      detail: kind === "p" ? "Partitioned tables cannot be distributed yet." : undefined,
    });
  }
  return {
    oid: Number((row[0] as Buffer).toString()),
    schema: (row[1] as Buffer).toString(),
    name: (row[2] as Buffer).toString(),
  };
}

/** The column's type, after the checks Citus makes: it exists, it can be hashed, unique keys include it. */
async function distributionColumnType(backend: PgConnection, shell: ShellTable, column: string): Promise<number> {
  const found = await backend.query(
    `SELECT a.atttypid, a.attnum, format_type(a.atttypid, NULL) FROM pg_attribute a
      WHERE a.attrelid = $1::oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [String(shell.oid), column],
  );
  const row = found.rows[0];
  if (!row) {
    throw new HerdError(`column "${column}" of relation "${shell.name}" does not exist`, {
      sqlState: SqlState.undefinedColumn,
    });
  }
  const type = Number((row[0] as Buffer).toString());
  if (!isHashableType(type)) {
    throw new HerdError(
      `data type ${(row[2] as Buffer).toString()} has no default operator class for specified partition method`,
      {
        sqlState: SqlState.undefinedObject,
        detail: "Partition column types must have a default operator class defined.",
      },
    );
  }
  const uniques = await backend.query(
    `SELECT 1 FROM pg_index i WHERE i.indrelid = $1::oid AND (i.indisunique OR i.indisexclusion)
        AND NOT $2::int2 = ANY (i.indkey::int2[])`,
    [String(shell.oid), (row[1] as Buffer).toString()],
  );
  if (uniques.rows.length > 0) throw ExecutionErrors.constraintWithoutPartitionColumn(shell.name);
  return type;
}

/** The distributed table whose shards and workers a new table takes, if it is colocated with one. */
/**
 * The table a new one is colocated with. By default (as Citus): the first group of the same
 * distribution column type, with the shard count and replication factor asked for (argument or
 * the session's citus.* settings) when they are.
 */
function colocationSource(
  request: DistributeRequest,
  catalog: CatalogSnapshot,
  columnType: number,
  name: string,
  session: { readonly shardCount: number | undefined; readonly replicationFactor: number | undefined },
) {
  const target = request.colocateWith ?? "default";
  if (target === "none") return undefined;
  if (target === "default") {
    const shardCount = request.shardCount ?? session.shardCount;
    const copies = session.replicationFactor;
    return [...catalog.tables]
      .filter(
        (t) =>
          t.kind === "hash" &&
          t.distributionType === columnType &&
          (shardCount === undefined || t.shards.length === shardCount) &&
          (copies === undefined || t.shards[0]?.placements.length === copies),
      )
      .sort((a, b) => a.colocationId - b.colocationId)[0];
  }
  if (request.shardCount !== undefined) {
    throw new HerdError("Cannot use colocate_with with a table and shard_count at the same time", {
      sqlState: SqlState.invalidParameterValue,
    });
  }
  const [schema, table] = target.includes(".") ? target.split(".", 2) : [undefined, target];
  const source = catalog.resolve(schema, table as string);
  if (source?.kind !== "hash") {
    throw new HerdError(`relation ${target} is not distributed`, { sqlState: SqlState.invalidTableDefinition });
  }
  if (source.distributionType !== columnType) {
    throw new HerdError(`cannot colocate tables ${source.name} and ${name}`, {
      sqlState: SqlState.datatypeMismatch,
      detail: `Distribution column types don't match for ${source.name} and ${name}.`,
    });
  }
  return source;
}

/**
 * The shell's rows (COPY text format) sorted by shard index into `files`, streamed (the
 * coordinator's PostgreSQL is paused while a full buffer goes to disk); the shell is locked, so
 * none can be added meanwhile. Resolves with the column list the COPYs name.
 */
async function takeRows(
  backend: PgConnection,
  shell: ShellTable,
  request: DistributeRequest,
  shardCount: number,
  columnType: number | undefined,
  files: ShardRowFiles,
): Promise<string> {
  const columnIndex =
    request.kind === "hash"
      ? Number(
          firstValue(
            await backend.query(
              `SELECT count(*) FROM pg_attribute a, pg_attribute d WHERE a.attrelid = $1::oid AND d.attrelid = a.attrelid
                AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND d.attname = $2 AND a.attnum < d.attnum`,
              [String(shell.oid), request.column as string],
            ),
          ),
        )
      : 0;
  const splitter = new CopyRowSplitter(TEXT_FORMAT);
  const keys = request.kind === "hash" ? new CopyKeyReader(TEXT_FORMAT, columnIndex, columnType as number) : undefined;
  let failure: Error | undefined;
  const collector = new ResultCollector();
  const w = new BufferWriter(128);
  const columns = await copyColumns(backend, shell.oid);
  encodeQuery(w, `COPY ${quoted(shell)} (${columns}) TO STDOUT`);
  await backend.exchange(w.flush(), {
    message(frame: Frame) {
      if (frame.type !== BackendMessage.copyData) return collector.message(frame);
      if (failure) return;
      for (const row of splitter.push(frame.body)) {
        let index = 0;
        const fast = keys?.hash(row);
        if (fast !== undefined) index = shardIndexForHash(fast, shardCount);
        else if (request.kind === "hash") {
          const value = copyField(row, columnIndex, TEXT_FORMAT);
          if (value === null || value === undefined) {
            failure = new HerdError(`the partition column of table ${shell.name} cannot be NULL`, {
              sqlState: SqlState.nullValueNotAllowed,
            });
            return;
          }
          index = shardIndexForHash(hashOfText(columnType as number, value), shardCount);
        }
        if (!files.add(index, row)) {
          backend.pause();
          files.onceDrained(() => backend.resume());
        }
      }
    },
  });
  collector.result();
  if (failure) throw failure;
  await files.finish();
  return columns;
}

function quoted(shell: ShellTable): string {
  return qualifiedName(shell.schema, shell.name);
}
