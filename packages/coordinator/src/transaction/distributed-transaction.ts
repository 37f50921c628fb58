import { errorMessage, HerdError, isHerdError, type Logger, SqlState } from "@herd/shared";
import type { PgConnection, QueryResult } from "../connection/pg-connection.js";
import { isConnectionLoss, ServerError } from "../connection/server-error.js";
import { applySettings, type SessionSettings } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { StalePlacement } from "../metadata/catalog.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { activeTransactions } from "./active-transactions.js";
import { PlacementsChanged } from "./placements-changed.js";
import { MAX_VALUE_LOCKS_PER_TRANSACTION, type ShardLock } from "./shard-lock.js";

/** What a distributed transaction works with: the session's coordinator connection, which decides, and the pool. */
export interface TransactionDeps {
  readonly backend: PgConnection;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
  /**
   * The catalog statements plan with: loaded again before a commit that marked placements stale
   * is answered, so that no statement after it (of any session) reads the placements that missed
   * the write.
   */
  readonly catalog: {
    reload(): Promise<void>;
    /** Placements behind a decided commit (its COMMIT PREPARED did not reach them): stale until repaired. */
    markStale(placements: readonly StalePlacement[]): Promise<readonly StalePlacement[]>;
  };
  /**
   * Takes the workers' COMMIT PREPAREDs of a decided transaction, to finish after the client is
   * answered (transaction/finishing-commits.ts: later statements wait for them); resolves when the
   * client may be answered. Without it, commit() waits for them.
   */
  readonly defer?: (finishing: Promise<void>, targets: readonly string[]) => Promise<void>;
}

/** A worker's part in the transaction. */
function isWriter(participant: Participant): boolean {
  return participant.written.size > 0 || participant.changedServer;
}

interface Participant {
  readonly node: WorkerNode;
  readonly connection: WorkerConnection;
  /** BEGIN (with the block's savepoints) has been sent. */
  begun: boolean;
  /** Shards it wrote: it must PREPARE; a reader only commits. */
  readonly written: Set<number>;
  /** It changed the server itself (roles): it must PREPARE, and losing it fails the transaction. */
  changedServer: boolean;
  /** PREPARE TRANSACTION was sent with its statement (a statement's own transaction). */
  prepared: boolean;
}

/** The decision of a transaction, between recording it and carrying it out on the workers. */
interface Decision {
  /** Writers whose parts were prepared (two-phase), by gid. */
  readonly prepared: ReadonlyMap<string, Participant>;
  /** The one writer committed in one phase, if that was all. */
  readonly onePhase: Participant | undefined;
  /** The commit records' insert, sent in the coordinator's transaction (not awaited yet). */
  readonly recording: Promise<unknown> | undefined;
  /** Placements it marks stale (they missed the writes), in the same coordinator transaction. */
  readonly marksStale: boolean;
}

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
  /** A worker that changed its server (roles) was lost: the transaction cannot commit. */
  private serverChangeLost: WorkerNode | undefined;
  /** Placements whose worker failed before PREPARE: stale when the transaction commits. */
  private readonly missedWrites = new Map<string, StalePlacement>();
  /** SAVEPOINT statements still open in the block, to replay on workers joining later. */
  readonly savepoints: { name: string; sql: string }[] = [];
  /** Write locks this transaction holds, by shard group: the whole group, or values (hashes) in it. */
  private readonly locked = new Map<number, "whole" | Set<number>>();
  /** Values it has locked, in all groups (MAX_VALUE_LOCKS_PER_TRANSACTION). */
  private valueLocks = 0;
  /** Placement versions read under this transaction's locks, by shard: still those of a plan made with them. */
  private readonly verified = new Map<number, number>();
  /** The deciding transaction's id on the coordinator (the prefix of the gids). */
  private xid: string | undefined;
  /** A statement's own coordinator transaction has begun. */
  private opened = false;
  /** The coordinator's transaction changes data of its own (DDL on the shell, metadata): two phases even for one writer. */
  private coordinatorWrites = false;
  /** The session is gone: a worker joining late is let go at once instead of kept open by nobody. */
  private abandoned = false;
  /** Its entry in activeTransactions, while it holds locks or workers (what the deadlock detector reads). */
  private registration: number | undefined;

  constructor(
    private readonly deps: TransactionDeps,
    readonly scope: "block" | "statement",
  ) {}

  get active(): boolean {
    return this.participants.size > 0;
  }

  /** The workers (`host:port`) it holds connections to. */
  targets(): string[] {
    return [...this.participants.values()].map((participant) => participant.connection.target);
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
    return [...this.participants.values()].filter((participant) => isWriter(participant)).length;
  }

  // ---- locks ----

  /**
   * Takes the write locks a write needs on the coordinator (transaction/shard-lock.ts): per shard
   * group, the hashes of the distribution values it writes, or the whole group. A statement's own
   * coordinator transaction opens in the same round trip. Under the locks, the placement versions
   * of the groups' shards are read: when a shard's is not the one of the catalog the write was
   * planned with, its placements changed since (one went stale, or was repaired) and
   * PlacementsChanged is thrown before anything was written. A write whose locks are held already
   * and whose shards' versions were read under them takes no round trip: while the locks are held
   * no placement can be repaired or added, so the versions read are still the placements'.
   */
  async lockShards(locks: ReadonlyMap<number, ShardLock>): Promise<void> {
    const whole = new Set<number>();
    const values = new Map<string, [number, number]>();
    for (const [shardId, lock] of locks) {
      const held = this.locked.get(lock.group);
      const checked = this.verified.get(shardId) === lock.version;
      if (held === "whole" || lock.hashes === undefined) {
        if (held !== "whole" || !checked) whole.add(lock.group);
        continue;
      }
      const missing = lock.hashes.filter((hash) => !held?.has(hash));
      if (this.valueLocks + values.size + missing.length > MAX_VALUE_LOCKS_PER_TRANSACTION) {
        // too many values for PostgreSQL's lock table (shard-lock.ts): the group, all of it
        whole.add(lock.group);
        continue;
      }
      // held already but not read under it: locking one of its values again reads the versions
      const wanted = missing.length > 0 || checked ? missing : lock.hashes.slice(0, 1);
      for (const hash of wanted) values.set(`${lock.group}:${hash}`, [lock.group, hash]);
    }
    for (const group of whole) this.locked.set(group, "whole");
    for (const [key, [group, hash]] of values) {
      const held = this.locked.get(group);
      if (held === "whole") {
        values.delete(key);
        continue;
      }
      const set = held ?? new Set<number>();
      set.add(hash);
      this.locked.set(group, set);
      this.valueLocks += 1;
    }
    const locking = whole.size > 0 || values.size > 0;
    if (!locking && this.xid !== undefined) return;
    this.register();
    const backend = this.deps.backend;
    // one round trip: BEGIN (a statement's own transaction) and the locks, which answer the
    // transaction's id and the placement versions read once they are held
    const requests: Promise<QueryResult>[] = [];
    if (this.scope === "statement" && !this.opened) {
      this.opened = true;
      requests.push(backend.query("BEGIN"));
    }
    // the lock functions answer the transaction's id too
    const needsXid = this.xid === undefined && !locking;
    if (needsXid) requests.push(backend.query("SELECT txid_current()::text"));
    const [only] = values.values();
    if (whole.size === 0 && values.size === 1 && only) {
      requests.push(backend.query("SELECT herd.lock_value($1::bigint, $2::int)", [String(only[0]), String(only[1])]));
    } else if (locking) {
      const valueLocks = [...values.values()];
      requests.push(
        backend.query("SELECT herd.lock_shards($1::bigint[], $2::bigint[], $3::int[])", [
          `{${[...whole].join(",")}}`,
          `{${valueLocks.map(([group]) => group).join(",")}}`,
          `{${valueLocks.map(([, hash]) => hash).join(",")}}`,
        ]),
      );
    }
    const answers = await Promise.allSettled(requests);
    const failed = answers.find((answer) => answer.status === "rejected");
    if (failed) throw explainedLockFailure((failed as PromiseRejectedResult).reason);
    const value = (answer: PromiseSettledResult<QueryResult> | undefined) =>
      (answer as PromiseFulfilledResult<QueryResult>).value.rows[0]?.[0]?.toString();
    if (!locking) {
      if (needsXid) this.xid = value(answers.at(-1));
      return;
    }
    // "<xid>/shard:version,…" of every shard in the locked groups (none: the tables were dropped since)
    const [xid, versions] = (value(answers.at(-1)) ?? "").split("/");
    this.xid ??= xid;
    for (const entry of (versions ?? "").split(",")) {
      const [shard, version] = entry.split(":");
      if (shard && version) this.verified.set(Number(shard), Number(version));
    }
    for (const [shardId, lock] of locks)
      if (this.verified.get(shardId) !== lock.version) throw new PlacementsChanged(shardId);
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
      this.register();
      const connection = await this.deps.pool.acquire(node, settings.login);
      if (this.abandoned) {
        // the session ended while the connection was on its way: nothing may start on it
        connection.destroy();
        this.deps.pool.release(connection);
        throw new HerdError("the session ended", { sqlState: SqlState.adminShutdown });
      }
      participant = { node, connection, begun: false, written: new Set(), changedServer: false, prepared: false };
      this.participants.set(node.id, participant);
    }
    try {
      // again for a participant already in: a SET (ROLE, statement_timeout, …) between two
      // statements of the block reaches it as it reached the coordinator, inside the transaction
      await applySettings(participant.connection, settings);
    } catch (error) {
      this.lose(node, error);
      throw error;
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

  /**
   * `node` changed something of the whole server (its roles) in this transaction: every worker
   * must take such a change, so losing one fails the transaction instead of marking placements.
   */
  changedServer(nodeId: number): void {
    const participant = this.participants.get(nodeId);
    if (participant) participant.changedServer = true;
  }

  /** `node` wrote shard `shardId` in this transaction. */
  wrote(nodeId: number, shardId: number): void {
    this.participants.get(nodeId)?.written.add(shardId);
  }

  /**
   * `lock` as this transaction holds it on the coordinator: a group it holds whole (escalated, or
   * written whole before) is locked whole on the workers' copies too, so their lock tables stay
   * as small as the coordinator's.
   */
  heldAs(lock: ShardLock): ShardLock {
    return lock.hashes !== undefined && this.locked.get(lock.group) === "whole" ? { ...lock, hashes: undefined } : lock;
  }

  /**
   * `node` cannot take part any more (it could not be reached, or its connection was lost): what
   * it wrote in this transaction is gone with it, so its placements of those shards, and of
   * `alsoMissed`, missed the transaction's writes.
   */
  lose(node: WorkerNode, reason: unknown, alsoMissed: readonly number[] = []): void {
    const participant = this.participants.get(node.id);
    if (participant?.changedServer) this.serverChangeLost ??= node;
    for (const shardId of [...(participant?.written ?? []), ...alsoMissed])
      this.missedWrites.set(`${shardId}:${node.id}`, { shardId, nodeId: node.id });
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

  /** `node`, lost earlier in the transaction, misses a write of `shardId` too. */
  missed(nodeId: number, shardId: number): void {
    this.missedWrites.set(`${shardId}:${nodeId}`, { shardId, nodeId });
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
    if (kind === "TRANS_STMT_ROLLBACK_TO") {
      // PostgreSQL let go of the locks taken since the savepoint: take any of them again when needed
      // (those taken before it stay held, uncounted: the budget may be passed by that much)
      this.locked.clear();
      this.valueLocks = 0;
      this.verified.clear();
    }
    if (kind === "TRANS_STMT_SAVEPOINT") this.savepoints.push({ name, sql });
    else if (index >= 0) this.savepoints.length = kind === "TRANS_STMT_RELEASE" ? index : index + 1;
  }

  // ---- ending ----

  /**
   * Commits: the decision (writers prepared, records written) and the coordinator's COMMIT in one
   * round trip — a statement's own coordinator transaction, or the client's block itself — then
   * the workers' parts. Throws when nothing committed; 08007 when the coordinator's answer to
   * COMMIT was lost and herd cannot tell. The COMMIT PREPAREDs may finish after this resolves
   * (`deps.defer`): the decision is durable, and the session waits for them before its next
   * statement reaches a worker.
   */
  async commit(options: { chain?: boolean } = {}): Promise<void> {
    let decision: Decision;
    try {
      decision = await this.decide();
    } catch (error) {
      await this.rollback();
      throw error;
    }
    try {
      // a failed insert of the records makes the COMMIT a rollback: nothing is decided then
      const sql = options.chain ? "COMMIT AND CHAIN" : "COMMIT";
      const committing = this.scope === "block" || this.opened ? this.deps.backend.query(sql) : undefined;
      const [recorded, committed] = await Promise.allSettled([decision.recording, committing]);
      if (committed.status === "rejected") throw committed.reason;
      if (recorded.status === "rejected") {
        await this.complete(decision, false);
        throw recorded.reason;
      }
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
    // the NOTIFY of the stale marks reaches the catalog on its own, but maybe after the next read
    const reloading = decision.marksStale ? this.deps.catalog.reload() : undefined;
    await this.complete(decision, true);
    await reloading;
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
    this.abandoned = true;
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
    const writers = [...this.participants.values()].filter(isWriter);
    if (writers.length === 0 && this.missedWrites.size === 0)
      return { prepared: new Map(), onePhase: undefined, recording: undefined, marksStale: false };
    if (writers.length === 1 && this.missedWrites.size === 0 && !writers[0]?.prepared && !this.coordinatorWrites) {
      const only = writers[0] as Participant;
      try {
        await only.connection.query("COMMIT");
      } catch (error) {
        if (!isConnectionLoss(error)) throw error;
        // the worker may have committed before its connection went: nobody can tell now
        throw new HerdError("the outcome of the transaction is unknown", {
          sqlState: SqlState.transactionResolutionUnknown,
          detail: `the connection to ${only.node.name} was lost at COMMIT: ${errorMessage(error)}`,
          hint: "Check whether the change is there before running it again.",
        });
      }
      return { prepared: new Map(), onePhase: only, recording: undefined, marksStale: false };
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
    const missed = [...this.missedWrites.values()];
    const backend = this.deps.backend;
    const requests = [
      backend.query("SELECT herd.record_commit($1::text[], $2::int[])", [
        `{${[...prepared.keys()].join(",")}}`,
        `{${[...prepared.values()].map((p) => p.node.id).join(",")}}`,
      ]),
    ];
    if (missed.length > 0) {
      requests.push(
        backend.query("SELECT herd.mark_stale($1::bigint[], $2::int[])", [
          `{${missed.map((m) => m.shardId).join(",")}}`,
          `{${missed.map((m) => m.nodeId).join(",")}}`,
        ]),
      );
    }
    const recording = Promise.all(requests);
    recording.catch(() => {}); // awaited by the caller; never unhandled
    if (missed.length > 0) {
      this.deps.logger.warn("placements marked stale: they missed a committed write", {
        placements: missed.map((m) => `${m.shardId}@${m.nodeId}`).join(" "),
      });
    }
    return { prepared, onePhase: undefined, recording, marksStale: missed.length > 0 };
  }

  /** Every shard a lost worker wrote must have been written by a worker still in the transaction. */
  private checkEveryShardKept(writers: readonly Participant[]): void {
    if (this.serverChangeLost) {
      throw new HerdError(`worker ${this.serverChangeLost.name} could not take the change`, {
        sqlState: SqlState.connectionFailure,
        detail: "A change of every server (roles) needs every active worker.",
      });
    }
    const kept = new Set(
      writers.filter((p) => this.participants.has(p.node.id)).flatMap((participant) => [...participant.written]),
    );
    for (const { shardId } of this.missedWrites.values()) {
      if (!kept.has(shardId)) {
        throw new HerdError(`no placement of shard ${shardId} could take the write`, {
          sqlState: SqlState.connectionFailure,
          detail: "Every worker holding an active placement of the shard failed during the transaction.",
        });
      }
    }
  }

  /**
   * Carries the decision out on the workers: COMMIT PREPARED (or ROLLBACK PREPARED), readers end.
   *
   * A committed part whose COMMIT PREPARED did not get through (its worker crashed) stays
   * prepared there until recovery commits it, and until then the worker's copies lack its writes:
   * a row it inserted is invisible, so a later UPDATE or DELETE of that row would change the
   * other copies and not this one, and the copies would differ for good. Those placements are
   * marked stale before the commit counts as finished (statements of this process wait for it;
   * other processes re-plan on the placement versions): no write reaches them until a repair has
   * copied them again, after recovery.
   */
  private async complete(decision: Decision, committed: boolean): Promise<void> {
    const decided = new Set([...decision.prepared.values(), decision.onePhase]);
    const participants = [...this.participants.values()];
    const readers = participants.filter((participant) => !decided.has(participant));
    const behind: Participant[] = [];
    const finishing = Promise.all([
      ...[...decision.prepared].map(async ([gid, participant]) => {
        const sql = committed ? `COMMIT PREPARED '${gid}'` : `ROLLBACK PREPARED '${gid}'`;
        await participant.connection.query(sql).catch((error) => {
          // finished already: recovery found the decision first
          if (error instanceof ServerError && error.sqlState === SqlState.undefinedObject) return;
          // recovery finishes it (herd.transactions says which way) once the worker answers again
          this.deps.logger.warn("a worker did not finish its prepared transaction; recovery will", {
            node: participant.node.name,
            gid,
            error: errorMessage(error),
          });
          participant.connection.destroy();
          if (committed) behind.push(participant);
        });
      }),
      ...readers.map((participant) =>
        participant.connection.query(committed ? "COMMIT" : "ROLLBACK").catch(() => participant.connection.destroy()),
      ),
    ]).then(async () => {
      for (const participant of participants) this.deps.pool.release(participant.connection);
      if (behind.length > 0) await this.markBehind(behind);
    });
    this.reset();
    const targets = [...decision.prepared.values()].map((participant) => participant.connection.target);
    if (committed && this.deps.defer) await this.deps.defer(finishing, targets);
    else await finishing;
  }

  /** The placements these workers wrote, stale: their part of a committed transaction is still prepared there. */
  private async markBehind(behind: readonly Participant[]): Promise<void> {
    const placements = behind.flatMap((participant) =>
      [...participant.written].map((shardId) => ({ shardId, nodeId: participant.node.id })),
    );
    if (placements.length === 0) return;
    const where = placements.map((p) => `${p.shardId}@${p.nodeId}`).join(" ");
    try {
      const refused = await this.deps.catalog.markStale(placements);
      this.deps.logger.warn("placements marked stale: a committed write is not finished on them yet", {
        placements: where,
      });
      if (refused.length > 0) {
        this.deps.logger.error("the last active copy of a shard lacks a committed write until recovery finishes it", {
          shards: refused.map((p) => p.shardId).join(" "),
        });
      }
    } catch (error) {
      this.deps.logger.error("could not mark placements stale that lack a committed write", {
        placements: where,
        error: errorMessage(error),
      });
    }
  }

  /** Gives every connection back and forgets the transaction's state. */
  private end(): void {
    for (const participant of this.participants.values()) this.deps.pool.release(participant.connection);
    this.reset();
  }

  /** Known to the deadlock detector from its first lock or worker on. */
  private register(): void {
    if (this.registration !== undefined) return;
    this.deps.pool.transactionBegun?.();
    this.registration = activeTransactions.register(() => ({
      coordinatorPid: this.deps.backend.processId,
      workerPids: [...this.participants.values()].map((p) => ({ nodeId: p.node.id, pid: p.connection.processId })),
    }));
  }

  private reset(): void {
    if (this.registration !== undefined) {
      activeTransactions.unregister(this.registration);
      this.deps.pool.transactionEnded?.();
    }
    this.registration = undefined;
    this.participants.clear();
    this.lost.clear();
    this.missedWrites.clear();
    this.serverChangeLost = undefined;
    this.savepoints.length = 0;
    this.locked.clear();
    this.valueLocks = 0;
    this.verified.clear();
    this.xid = undefined;
    this.opened = false;
  }
}

/**
 * PostgreSQL's deadlock report names advisory locks; the client learns what they stand for (the
 * rows of distributed tables), keeping PostgreSQL's code (40P01) and its detail.
 */
function explainedLockFailure(error: unknown): unknown {
  if (!(error instanceof ServerError) || error.sqlState !== SqlState.deadlockDetected) return error;
  return new HerdError("deadlock detected", {
    sqlState: SqlState.deadlockDetected,
    detail:
      `This transaction and another wait for rows of distributed tables the other has written or locked (write locks on the coordinator). ${error.detail ?? ""}`.trim(),
    hint: "The transaction was rolled back; run it again. Touching rows in one order (by distribution value) avoids this.",
  });
}

function lostWorker(node: WorkerNode): HerdError {
  return new HerdError(`worker ${node.name} left this transaction`, {
    sqlState: SqlState.connectionFailure,
    detail: `its connection failed earlier in the transaction (${node.host}:${node.port})`,
  });
}
