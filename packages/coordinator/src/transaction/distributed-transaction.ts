import { errorMessage, HerdError, isHerdError, type Logger, SqlState } from "@herd/shared";
import type { PgConnection } from "../connection/pg-connection.js";
import { ServerError } from "../connection/server-error.js";
import { applySettings, type SessionSettings } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { PlacementsChanged } from "./placements-changed.js";

/** What a distributed transaction works with: the session's coordinator connection, which decides, and the pool. */
export interface TransactionDeps {
  readonly backend: PgConnection;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
}

/** A worker's part in the transaction. */
interface Participant {
  readonly node: WorkerNode;
  readonly connection: WorkerConnection;
  /** BEGIN (with the block's savepoints) has been sent. */
  begun: boolean;
  /** Shards it wrote: it must PREPARE; a reader only commits. */
  readonly written: Set<number>;
  /** PREPARE TRANSACTION was sent with its statement (a statement's own transaction). */
  prepared: boolean;
}

/** The decision of a transaction, between recording it and carrying it out on the workers. */
interface Decision {
  /** Writers whose parts were prepared (two-phase), by gid. */
  readonly prepared: ReadonlyMap<string, Participant>;
  /** The one writer committed in one phase, if that was all. */
  readonly onePhase: Participant | undefined;
}

/** Key of the shards' write locks on the coordinator (see migration 5, herd.lock_shards). */
const GID_PREFIX = "herd";

/**
 * One distributed transaction: the coordinator's transaction that decides (the client's
 * BEGIN … COMMIT block, or one herd opens around a single statement) and the workers' transactions
 * that take part, one connection per worker.
 *
 * Writes lock their shards on the coordinator first (`lockShards`), so writers of a shard reach
 * its placements one after the other and a deadlock among writers is one PostgreSQL detects on
 * the coordinator. A transaction whose writes reached more than one worker commits in two phases:
 *
 *   worker A, worker B: PREPARE TRANSACTION 'herd_<xid>_<node>'     (all prepared, or all rolled back)
 *   coordinator:        SELECT herd.record_commit(gids, …); COMMIT   (the decision, durable)
 *   worker A, worker B: COMMIT PREPARED 'herd_<xid>_<node>'          (recovery finishes what a crash interrupts)
 *
 * One writer commits in one phase. A worker that cannot be reached, or whose connection is lost
 * before PREPARE, leaves the transaction: its placements missed the write, and the transaction
 * still commits on the other copies when every shard it wrote has one, marking the missed
 * placements stale in the same coordinator transaction as the decision. An error of a statement
 * (a constraint violation) fails the whole transaction; it never marks a placement.
 */
export class DistributedTransaction {
  private readonly participants = new Map<number, Participant>();
  /** Workers that failed in this transaction: never used again in it. */
  private readonly lost = new Set<number>();
  /** Placements whose worker failed before PREPARE: stale when the transaction commits. */
  private readonly missed = new Map<string, { readonly shardId: number; readonly nodeId: number }>();
  /** SAVEPOINT statements still open in the block, to replay on workers joining later. */
  readonly savepoints: { name: string; sql: string }[] = [];
  /** Shards whose write lock this transaction holds. */
  private readonly locked = new Set<number>();
  /** The deciding transaction's id on the coordinator (the prefix of the gids). */
  private xid: string | undefined;
  /** A statement's own coordinator transaction has begun. */
  private opened = false;
  /** The coordinator's transaction changes data of its own (DDL on the shell, metadata): two phases even for one writer. */
  private coordinatorWrites = false;

  constructor(
    private readonly deps: TransactionDeps,
    readonly scope: "block" | "statement",
  ) {}

  get active(): boolean {
    return this.participants.size > 0;
  }

  has(nodeId: number): boolean {
    return this.participants.has(nodeId);
  }

  /** The worker failed in this transaction: reads and writes leave it out until the transaction ends. */
  isLost(nodeId: number): boolean {
    return this.lost.has(nodeId);
  }

  /** Workers that wrote in this transaction (and have not failed). */
  get writers(): number {
    return [...this.participants.values()].filter((participant) => participant.written.size > 0).length;
  }

  // ---- locks ----

  /**
   * Takes the write locks of `shards` (shard id → the nodes of its active placements as the plan
   * sees them) on the coordinator, opening a statement's own coordinator transaction first. Under
   * the locks, the placements are read again: when they differ from the plan's (a placement went
   * stale or was repaired since), PlacementsChanged is thrown before anything was written.
   */
  async lockShards(shards: ReadonlyMap<number, readonly number[]>): Promise<void> {
    const fresh = [...shards.keys()].filter((id) => !this.locked.has(id));
    if (fresh.length === 0 && this.xid !== undefined) return;
    const backend = this.deps.backend;
    if (this.scope === "statement" && !this.opened) {
      this.opened = true;
      await backend.query("BEGIN");
    }
    const result = await backend.query("SELECT xid::text, placements FROM herd.lock_shards($1::bigint[])", [
      `{${fresh.join(",")}}`,
    ]);
    const row = result.rows[0] as (Buffer | null)[];
    this.xid = (row[0] as Buffer).toString();
    for (const id of fresh) this.locked.add(id);
    const actual = parsePlacements((row[1] as Buffer).toString());
    for (const id of fresh) {
      const expected = [...(shards.get(id) ?? [])].sort((a, b) => a - b).join(",");
      if ((actual.get(id) ?? []).join(",") !== expected) throw new PlacementsChanged(id);
    }
  }

  // ---- participants ----

  /**
   * The transaction's connection to `node`, joined now if it was not a participant yet; `opening`
   * is the BEGIN (with the block's open savepoints) to send before the first statement, pipelined
   * with it, or undefined once sent.
   */
  async join(node: WorkerNode, settings: SessionSettings): Promise<{ connection: WorkerConnection; opening?: string }> {
    if (this.lost.has(node.id)) throw lostWorker(node);
    let participant = this.participants.get(node.id);
    if (!participant) {
      const connection = await this.deps.pool.acquire(node);
      participant = { node, connection, begun: false, written: new Set(), prepared: false };
      this.participants.set(node.id, participant);
      try {
        await applySettings(connection, settings);
      } catch (error) {
        this.lose(node, error);
        throw error;
      }
    }
    if (participant.begun) return { connection: participant.connection };
    participant.begun = true;
    return {
      connection: participant.connection,
      opening: ["BEGIN", ...this.savepoints.map((savepoint) => savepoint.sql)].join("; "),
    };
  }

  /**
   * The coordinator's own transaction changes data too (the shell's DDL, metadata): the workers
   * prepare even when only one wrote, so that all of it commits or none.
   */
  writesOnCoordinator(): void {
    this.coordinatorWrites = true;
  }

  /** `node` wrote shard `shardId` in this transaction. */
  wrote(nodeId: number, shardId: number): void {
    this.participants.get(nodeId)?.written.add(shardId);
  }

  /**
   * `node` cannot take part any more (it could not be reached, or its connection was lost): what
   * it wrote in this transaction is gone with it, so its placements of those shards, and of
   * `alsoMissed`, missed the transaction's writes.
   */
  lose(node: WorkerNode, reason: unknown, alsoMissed: readonly number[] = []): void {
    const participant = this.participants.get(node.id);
    for (const shardId of [...(participant?.written ?? []), ...alsoMissed])
      this.missed.set(`${shardId}:${node.id}`, { shardId, nodeId: node.id });
    if (!this.lost.has(node.id)) {
      this.deps.logger.warn("a worker left a distributed transaction; its placements missed the writes", {
        node: node.name,
        error: errorMessage(reason),
      });
    }
    this.lost.add(node.id);
    if (participant) {
      participant.connection.destroy();
      this.deps.pool.release(participant.connection);
      this.participants.delete(node.id);
    }
  }

  /** The gid of `node`'s prepared part. */
  gid(nodeId: number): string {
    if (this.xid === undefined)
      throw new HerdError("a distributed write took no shard lock", { sqlState: SqlState.internalError });
    return `${GID_PREFIX}_${this.xid}_${nodeId}`;
  }

  /** `node`'s part was prepared with its statement (a statement's own transaction, pipelined). */
  preparedWithStatement(nodeId: number): void {
    const participant = this.participants.get(nodeId);
    if (participant) participant.prepared = true;
  }

  /** Runs `sql` (SAVEPOINT, RELEASE, ROLLBACK TO) on every worker of the block. */
  async everywhere(sql: string): Promise<void> {
    await Promise.all(
      [...this.participants.values()].filter((p) => p.begun).map((participant) => participant.connection.query(sql)),
    );
  }

  /**
   * Keeps the list of open savepoints (as the statements that made them) in step with the block,
   * after SAVEPOINT, RELEASE or ROLLBACK TO succeeded.
   */
  noteSavepoint(
    kind: "TRANS_STMT_SAVEPOINT" | "TRANS_STMT_RELEASE" | "TRANS_STMT_ROLLBACK_TO",
    name: string,
    sql: string,
  ): void {
    const index = this.savepoints.findLastIndex((savepoint) => savepoint.name === name);
    if (kind === "TRANS_STMT_SAVEPOINT") this.savepoints.push({ name, sql });
    else if (index >= 0) this.savepoints.length = kind === "TRANS_STMT_RELEASE" ? index : index + 1;
  }

  // ---- ending ----

  /**
   * Commits a statement's own transaction: the decision, then the coordinator's COMMIT (which
   * releases the shard locks), then the workers. Throws when it did not commit; 08007 when the
   * coordinator's answer to COMMIT was lost and herd cannot tell.
   */
  async commit(): Promise<void> {
    let decision: Decision;
    try {
      decision = await this.decide();
    } catch (error) {
      await this.rollback();
      throw error;
    }
    try {
      if (this.opened) await this.deps.backend.query("COMMIT");
    } catch (error) {
      if (error instanceof ServerError || !isHerdError(error)) {
        await this.complete(decision, false);
        throw error;
      }
      // the decision may or may not be durable: leave the prepared parts to recovery, which reads it
      this.end();
      throw new HerdError("the outcome of the transaction is unknown", {
        sqlState: SqlState.transactionResolutionUnknown,
        detail: `the connection to the coordinator's PostgreSQL was lost at COMMIT: ${errorMessage(error)}`,
        hint: "Recovery commits or rolls back its prepared parts within seconds; check whether the change is there.",
      });
    }
    await this.complete(decision, true);
  }

  /**
   * The block's COMMIT, before the coordinator's own: prepares the writers and records the
   * decision in the block's transaction. `finish(true)` completes it once the coordinator
   * committed, `finish(false)` undoes it when it did not.
   */
  async commitBlock(commitCoordinator: () => Promise<boolean>): Promise<void> {
    let decision: Decision;
    try {
      decision = await this.decide();
    } catch (error) {
      await this.rollback();
      throw error;
    }
    let committed = false;
    try {
      committed = await commitCoordinator();
    } finally {
      await this.complete(decision, committed);
    }
  }

  /** Rolls every worker's part back (prepared or not) and a statement's own coordinator transaction. */
  async rollback(): Promise<void> {
    const participants = [...this.participants.values()];
    await Promise.all(
      participants.map(async (participant) => {
        const sql = participant.prepared ? `ROLLBACK PREPARED '${this.gid(participant.node.id)}'` : "ROLLBACK";
        await participant.connection.query(sql).catch(() => participant.connection.destroy());
      }),
    );
    if (this.opened) await this.deps.backend.query("ROLLBACK").catch(() => {});
    this.end();
  }

  /** The session ended: let go of everything (PostgreSQL rolls back what a closed connection had open). */
  abandon(): void {
    for (const participant of this.participants.values()) {
      participant.connection.destroy();
      this.deps.pool.release(participant.connection);
    }
    this.end();
  }

  /**
   * Prepares the writers (two phases when more than one, or when a placement missed the writes)
   * and records the decision in the coordinator's open transaction; one writer alone commits.
   */
  private async decide(): Promise<Decision> {
    const writers = [...this.participants.values()].filter((participant) => participant.written.size > 0);
    if (writers.length === 0 && this.missed.size === 0) return { prepared: new Map(), onePhase: undefined };
    if (writers.length === 1 && this.missed.size === 0 && !writers[0]?.prepared && !this.coordinatorWrites) {
      const only = writers[0] as Participant;
      await only.connection.query("COMMIT");
      return { prepared: new Map(), onePhase: only };
    }
    const results = await Promise.allSettled(
      writers.map(async (participant) => {
        if (!participant.prepared) {
          participant.prepared = true;
          await participant.connection.query(`PREPARE TRANSACTION '${this.gid(participant.node.id)}'`);
        }
      }),
    );
    results.forEach((result, i) => {
      if (result.status === "fulfilled") return;
      const participant = writers[i] as Participant;
      if (result.reason instanceof ServerError || !isHerdError(result.reason)) throw result.reason;
      // lost before it could prepare: its writes are gone, its placements missed them
      this.lose(participant.node, result.reason);
    });
    const prepared = new Map(
      writers.filter((p) => this.participants.has(p.node.id)).map((p) => [this.gid(p.node.id), p] as const),
    );
    this.checkEveryShardKept(writers);
    const missed = [...this.missed.values()];
    await this.deps.backend.query("SELECT herd.record_commit($1::text[], $2::int[], $3::bigint[], $4::int[])", [
      `{${[...prepared.keys()].join(",")}}`,
      `{${[...prepared.values()].map((p) => p.node.id).join(",")}}`,
      `{${missed.map((m) => m.shardId).join(",")}}`,
      `{${missed.map((m) => m.nodeId).join(",")}}`,
    ]);
    if (missed.length > 0) {
      this.deps.logger.warn("placements marked stale: they missed a committed write", {
        placements: missed.map((m) => `${m.shardId}@${m.nodeId}`).join(" "),
      });
    }
    return { prepared, onePhase: undefined };
  }

  /** Every shard a lost worker wrote must have been written by a worker still in the transaction. */
  private checkEveryShardKept(writers: readonly Participant[]): void {
    const kept = new Set(
      writers.filter((p) => this.participants.has(p.node.id)).flatMap((participant) => [...participant.written]),
    );
    for (const { shardId } of this.missed.values()) {
      if (!kept.has(shardId)) {
        throw new HerdError(`no placement of shard ${shardId} could take the write`, {
          sqlState: SqlState.connectionFailure,
          detail: "Every worker holding an active placement of the shard failed during the transaction.",
        });
      }
    }
  }

  /** Carries the decision out on the workers: COMMIT PREPARED (or ROLLBACK PREPARED), readers end. */
  private async complete(decision: Decision, committed: boolean): Promise<void> {
    const decided = new Set([...decision.prepared.values(), decision.onePhase]);
    const readers = [...this.participants.values()].filter((participant) => !decided.has(participant));
    await Promise.all([
      ...[...decision.prepared].map(async ([gid, participant]) => {
        const sql = committed ? `COMMIT PREPARED '${gid}'` : `ROLLBACK PREPARED '${gid}'`;
        await participant.connection.query(sql).catch((error) => {
          // recovery finishes it (herd.transactions says which way) once the worker answers again
          this.deps.logger.warn("a worker did not finish its prepared transaction; recovery will", {
            node: participant.node.name,
            gid,
            error: errorMessage(error),
          });
          participant.connection.destroy();
        });
      }),
      ...readers.map((participant) =>
        participant.connection.query(committed ? "COMMIT" : "ROLLBACK").catch(() => participant.connection.destroy()),
      ),
    ]);
    this.end();
  }

  private end(): void {
    for (const participant of this.participants.values()) this.deps.pool.release(participant.connection);
    this.participants.clear();
    this.lost.clear();
    this.missed.clear();
    this.savepoints.length = 0;
    this.locked.clear();
    this.xid = undefined;
    this.opened = false;
  }
}

function parsePlacements(text: string): Map<number, number[]> {
  const placements = new Map<number, number[]>();
  for (const item of text
    .replace(/^\{|\}$/g, "")
    .split(",")
    .filter(Boolean)) {
    const [shard, node] = item.split(":").map(Number) as [number, number];
    placements.set(
      shard,
      [...(placements.get(shard) ?? []), node].sort((a, b) => a - b),
    );
  }
  return placements;
}

function lostWorker(node: WorkerNode): HerdError {
  return new HerdError(`worker ${node.name} left this transaction`, {
    sqlState: SqlState.connectionFailure,
    detail: `its connection failed earlier in the transaction (${node.host}:${node.port})`,
  });
}
