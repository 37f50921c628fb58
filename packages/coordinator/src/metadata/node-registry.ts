import type { NodeState, RegisterNodeBody } from "@herd/shared";
import type pg from "pg";
import type { Verdict } from "./node-verification.js";

export interface NodeRecord {
  readonly id: number;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly role: "worker";
  readonly state: NodeState;
  /** Why a pending node is not verified yet. */
  readonly reason: string | undefined;
  readonly registeredAt: Date;
  readonly lastSeenAt: Date;
  /** Its shard placements by state: stale ones missed writes and wait for repair. */
  readonly placements: { readonly active: number; readonly stale: number };
}

export type RemoveResult =
  | { readonly kind: "removed"; readonly node: NodeRecord }
  | { readonly kind: "not_found" }
  | { readonly kind: "holds_placements"; readonly placements: number };

/**
 * The worker nodes in the metadata. A node is known by its stable name (the pod name), so
 * registering again (a bot's heartbeat, a restarted pod) returns the same id and only refreshes
 * the address and `last_seen_at`. `unreachable` is not stored: an active node whose heartbeat is
 * older than the timeout reads as unreachable, which needs no background job to keep true.
 */
export class NodeRegistry {
  constructor(
    private readonly pool: pg.Pool,
    private readonly heartbeatTimeoutMs: number,
  ) {}

  /**
   * Records a registration. `verdict` is what verifying it found (node-verification.ts), or
   * undefined when the node is known at this address and verified already (a heartbeat): a node
   * becomes active only once verified, and stays pending with the reason until then.
   */
  async register(
    node: RegisterNodeBody,
    verdict: Verdict | undefined,
  ): Promise<{ node: NodeRecord; created: boolean }> {
    const state = verdict === undefined ? null : verdict.ok ? "active" : "pending";
    const reason = verdict === undefined || verdict.ok ? null : verdict.reason;
    // UPDATE first: heartbeats are the common case, and an INSERT … ON CONFLICT would draw (and
    // waste) an identity value on every heartbeat. The upsert covers a concurrent first insert.
    // A draining node stays draining whatever a registration says.
    const updated = await this.pool.query<NodeRow>(
      `UPDATE herd.nodes AS n SET host = $2, port = $3, last_seen_at = now(), lost_at = NULL,
              state = CASE WHEN $4::text IS NULL OR n.state = 'draining' THEN n.state ELSE $4 END,
              pending_reason = CASE WHEN $4::text IS NULL THEN n.pending_reason ELSE $5 END
        WHERE n.name = $1 RETURNING ${COLUMNS}`,
      [node.name, node.host, node.port, state, reason],
    );
    if (updated.rows[0]) return { node: this.toRecord(updated.rows[0]), created: false };
    const { rows } = await this.pool.query<NodeRow & { created: boolean }>(
      `INSERT INTO herd.nodes AS n (name, host, port, state, pending_reason) VALUES ($1, $2, $3, coalesce($4, 'pending'), $5)
       ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, last_seen_at = now(), lost_at = NULL
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [node.name, node.host, node.port, state, reason],
    );
    const row = rows[0] as NodeRow & { created: boolean };
    return { node: this.toRecord(row), created: row.created };
  }

  /** The node of that name, if any. */
  async byName(name: string): Promise<NodeRecord | undefined> {
    const { rows } = await this.pool.query<NodeRow>(`SELECT ${COLUMNS} FROM herd.nodes n WHERE n.name = $1`, [name]);
    return rows[0] && this.toRecord(rows[0]);
  }

  /**
   * Adds a node learned of without hearing from it (the coordinator saw its Pod), unless the node
   * is already known: the node's own registration knows its address best and is never overwritten.
   * It is taken as active without reading its volume identity: the Pod comes from the Kubernetes
   * API, which authenticated whoever made it (unlike a registration, which only needs the token).
   */
  async discover(node: RegisterNodeBody): Promise<{ created: boolean }> {
    const { rowCount } = await this.pool.query(
      "INSERT INTO herd.nodes (name, host, port) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
      [node.name, node.host, node.port],
    );
    return { created: rowCount === 1 };
  }

  /**
   * The node's Pod is gone, so its last heartbeat vouches for nothing: forget it, and the node reads
   * `unreachable` now rather than after the heartbeat timeout. Its next registration (the Pod back,
   * same name, same volume) makes it active again under the same id. `lost_at` keeps when (the
   * copies of a worker lost for long are made again elsewhere: operations/lost-workers.ts).
   * Resolves true when the node did not read as gone already.
   */
  async podGone(name: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE herd.nodes SET last_seen_at = '-infinity', lost_at = coalesce(lost_at, now())
        WHERE name = $1 AND last_seen_at > '-infinity'`,
      [name],
    );
    return rowCount === 1;
  }

  /** The name of every node. */
  async names(): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>("SELECT name FROM herd.nodes ORDER BY id");
    return rows.map((row) => row.name);
  }

  async list(): Promise<NodeRecord[]> {
    const { rows } = await this.pool.query<NodeRow>(`SELECT ${COLUMNS} FROM herd.nodes n ORDER BY n.id`);
    return rows.map((row) => this.toRecord(row));
  }

  async get(id: number): Promise<NodeRecord | undefined> {
    const { rows } = await this.pool.query<NodeRow>(`SELECT ${COLUMNS} FROM herd.nodes n WHERE n.id = $1`, [id]);
    return rows[0] && this.toRecord(rows[0]);
  }

  /**
   * Removes a node, unless it still holds shard placements (those must be moved first). Placements
   * only waiting to be dropped (moved away, or retired on a lost worker) go with it.
   */
  async remove(id: number): Promise<RemoveResult> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const { rows } = await client.query<NodeRow>(`SELECT ${COLUMNS} FROM herd.nodes n WHERE n.id = $1 FOR UPDATE`, [
        id,
      ]);
      const row = rows[0];
      if (!row) {
        await client.query("ROLLBACK");
        return { kind: "not_found" };
      }
      const placements = await client.query<{ count: string }>(
        `SELECT count(*) AS count FROM herd.placements WHERE node_id = $1 AND state <> 'to_delete'`,
        [id],
      );
      const count = Number(placements.rows[0]?.count ?? 0);
      if (count > 0) {
        await client.query("ROLLBACK");
        return { kind: "holds_placements", placements: count };
      }
      await client.query("DELETE FROM herd.placements WHERE node_id = $1", [id]);
      await client.query("DELETE FROM herd.shard_moves WHERE state = 'switched' AND source_node = $1", [id]);
      await client.query("DELETE FROM herd.nodes WHERE id = $1", [id]);
      await client.query("COMMIT");
      return { kind: "removed", node: this.toRecord(row) };
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  private toRecord(row: NodeRow): NodeRecord {
    const silent = row.state === "active" && row.silent_ms > this.heartbeatTimeoutMs;
    return {
      id: row.id,
      name: row.name,
      host: row.host,
      port: row.port,
      role: row.role,
      state: silent ? "unreachable" : row.state,
      reason: row.state === "pending" ? (row.pending_reason ?? undefined) : undefined,
      registeredAt: row.registered_at,
      lastSeenAt: row.last_seen_at,
      placements: { active: row.active_placements, stale: row.stale_placements },
    };
  }
}

/** The select list of a node; `silent_ms` is measured on the metadata server's clock. */
const COLUMNS = `n.id, n.name, n.host, n.port, n.role, n.state, n.pending_reason, n.registered_at, n.last_seen_at,
  (extract(epoch FROM now() - n.last_seen_at) * 1000)::float8 AS silent_ms,
  (SELECT count(*) FROM herd.placements p WHERE p.node_id = n.id AND p.state = 'active')::int AS active_placements,
  (SELECT count(*) FROM herd.placements p WHERE p.node_id = n.id AND p.state = 'stale')::int AS stale_placements`;

interface NodeRow {
  id: number;
  name: string;
  host: string;
  port: number;
  role: "worker";
  state: "pending" | "active" | "draining";
  pending_reason: string | null;
  registered_at: Date;
  last_seen_at: Date;
  silent_ms: number;
  active_placements: number;
  stale_placements: number;
}
