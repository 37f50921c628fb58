import { errorMessage, type Logger } from "@herd/shared";
import type pg from "pg";
import { PeriodicPass } from "../connection/periodic-pass.js";
import { applySettings, INTERNAL_SETTINGS } from "../connection/session-settings.js";
import type { ConnectionPool } from "../connection/worker-connection.js";
import type { CatalogSource } from "../metadata/catalog.js";
import type { TransactionBackends } from "./active-transactions.js";

/** The distributed transactions under way, in every coordinator process (processes/cluster-transactions.ts). */
export interface TransactionsView {
  snapshot(): Promise<TransactionBackends[]>;
  /** Marks the session of coordinator backend `pid` as a victim, wherever it runs, before its statement is cancelled. */
  markVictim(pid: number): Promise<void>;
}

/** Who waits for whom on one server: each waiting backend and the backends blocking it. */
const WAITS = `SELECT pid, pg_catalog.pg_blocking_pids(pid) AS blockers
                 FROM pg_catalog.pg_stat_activity WHERE wait_event_type = 'Lock'`;

export interface DeadlockDetectorOptions {
  /** The coordinator's PostgreSQL (its sessions wait there for herd's write locks). */
  readonly metadata: pg.Pool;
  readonly catalog: CatalogSource;
  readonly pool: ConnectionPool;
  readonly transactions: TransactionsView;
  readonly logger: Logger;
  /** How often to look, in ms (Citus: 2 × deadlock_timeout). */
  readonly intervalMs?: number;
}

/** A backend on one server: `c:<pid>` on the coordinator, `<node id>:<pid>` on a worker. */
type ServerPid = string;

/**
 * The distributed deadlock detector (after Citus's): PostgreSQL finds a deadlock only among the
 * backends of one server. herd's write locks put most waits between herd's transactions on the
 * coordinator, where PostgreSQL sees them; a cycle that also passes through waits on the workers
 * (a foreign key check, a row another session holds on a worker) is seen by no server. Every
 * interval this reads who waits for whom on the coordinator and on every worker of a transaction
 * under way (pg_blocking_pids), maps the backends to herd's distributed transactions (backends of
 * other sessions stay nodes of their own), and looks for cycles. A cycle seen in two passes in a
 * row has its youngest herd transaction cancelled where it waits; its session reports `40P01`.
 */
export class DeadlockDetector {
  private readonly passes: PeriodicPass;
  /** Victims chosen in the last pass: cancelled if the same cycle is there in the next. */
  private suspects = new Set<number>();

  constructor(private readonly options: DeadlockDetectorOptions) {
    this.passes = new PeriodicPass(() => this.pass(), options.intervalMs ?? 1_000);
  }

  start(): void {
    this.passes.start(true);
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass; resolves with how many transactions it cancelled. */
  detectOnce(): Promise<number> {
    return this.passes.now();
  }

  private async pass(): Promise<number> {
    const transactions = await this.options.transactions.snapshot();
    // a cycle across servers needs two of herd's transactions at least
    if (transactions.length < 2) {
      this.suspects.clear();
      return 0;
    }
    let waits: Map<ServerPid, ServerPid[]>;
    try {
      waits = await this.readWaits(transactions);
    } catch (error) {
      this.options.logger.debug("could not read the servers' lock waits", { error: errorMessage(error) });
      return 0;
    }
    const owner = new Map<ServerPid, TransactionBackends>();
    for (const transaction of transactions) {
      owner.set(`c:${transaction.coordinatorPid}`, transaction);
      for (const { nodeId, pid } of transaction.workerPids) owner.set(`${nodeId}:${pid}`, transaction);
    }
    const vertex = (backend: ServerPid) => {
      const transaction = owner.get(backend);
      return transaction ? `t${transaction.id}` : backend;
    };
    const edges = new Map<string, Set<string>>();
    for (const [waiter, blockers] of waits) {
      for (const blocker of blockers) {
        const [from, to] = [vertex(waiter), vertex(blocker)];
        if (from === to) continue;
        const set = edges.get(from) ?? new Set<string>();
        set.add(to);
        edges.set(from, set);
      }
    }
    const victims = new Set<number>();
    for (const cycle of stronglyConnected(edges)) {
      const ids = cycle.filter((v) => v.startsWith("t")).map((v) => Number(v.slice(1)));
      if (ids.length > 0) victims.add(Math.max(...ids));
    }
    const confirmed = [...victims].filter((id) => this.suspects.has(id));
    this.suspects = victims;
    for (const id of confirmed) {
      const victim = transactions.find((transaction) => transaction.id === id) as TransactionBackends;
      const waiting = [...waits.keys()].filter((backend) => owner.get(backend) === victim);
      this.options.logger.warn("distributed deadlock: cancelling the youngest transaction of the cycle", {
        waiting: waiting.join(" "),
      });
      await this.options.transactions.markVictim(victim.coordinatorPid);
      await this.cancel(waiting);
      this.suspects.delete(id);
    }
    return confirmed.length;
  }

  /** The lock waits on the coordinator and on the workers the transactions use. */
  private async readWaits(transactions: readonly TransactionBackends[]): Promise<Map<ServerPid, ServerPid[]>> {
    const nodeIds = new Set(transactions.flatMap((transaction) => transaction.workerPids.map((w) => w.nodeId)));
    const waits = new Map<ServerPid, ServerPid[]>();
    const note = (server: string, rows: readonly { pid: unknown; blockers: unknown }[]) => {
      for (const row of rows) {
        const blockers = parseIntArray(row.blockers).filter((pid) => pid !== 0); // 0: a prepared transaction
        waits.set(
          `${server}:${Number(row.pid)}`,
          blockers.map((pid) => `${server}:${pid}`),
        );
      }
    };
    const coordinator = await this.options.metadata.query(WAITS);
    note("c", coordinator.rows);
    await Promise.all(
      [...nodeIds].map(async (nodeId) => {
        const rows = await this.onWorker(nodeId, WAITS);
        if (rows) note(String(nodeId), rows);
      }),
    );
    return waits;
  }

  /** Cancels the statements these backends are waiting in. */
  private async cancel(backends: readonly ServerPid[]): Promise<void> {
    await Promise.all(
      backends.map(async (backend) => {
        const [server, pid] = backend.split(":") as [string, string];
        const sql = "SELECT pg_catalog.pg_cancel_backend($1::int)";
        if (server === "c") await this.options.metadata.query(sql, [pid]).catch(() => {});
        else await this.onWorker(Number(server), sql, [pid]).catch(() => {});
      }),
    );
  }

  private async onWorker(
    nodeId: number,
    sql: string,
    parameters?: readonly string[],
  ): Promise<{ pid: unknown; blockers: unknown }[] | undefined> {
    const node = this.options.catalog.current.nodes.get(nodeId);
    if (!node) return undefined;
    const connection = await this.options.pool.acquire(node);
    try {
      await applySettings(connection, INTERNAL_SETTINGS);
      const result = await connection.query(sql, parameters);
      return result.rows.map((row) => ({ pid: row[0]?.toString(), blockers: row[1]?.toString() }));
    } finally {
      this.options.pool.release(connection);
    }
  }
}

/** `{1,2}` (or an array already parsed) as numbers. */
function parseIntArray(value: unknown): number[] {
  if (Array.isArray(value)) return value.map(Number);
  const text = String(value ?? "").replace(/[{}]/g, "");
  return text === "" ? [] : text.split(",").map(Number);
}

/** The strongly connected components with a cycle in them (Tarjan's algorithm). */
function stronglyConnected(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component);
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}
