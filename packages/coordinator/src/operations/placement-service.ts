import {
  HerdError,
  type Logger,
  type MoveReportJson,
  type PlacementJson,
  type ShardJson,
  SqlState,
  type TableJson,
} from "@herd/shared";
import type pg from "pg";
import type { ClusterCredentials } from "../connection/cluster-credentials.js";
import { applySettings, INTERNAL_SETTINGS } from "../connection/session-settings.js";
import type { ConnectionPool } from "../connection/worker-connection.js";
import type { Catalog } from "../metadata/catalog.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type DistributedTable, shardName, type WorkerNode } from "../metadata/catalog-types.js";
import { findNode, type NodeRef, type PlacementCopyRequest } from "./placement-repair.js";
import { moveShardGroup, type ShardGroupMove } from "./shard-move.js";

export interface PlacementServiceOptions {
  readonly metadata: pg.Pool;
  readonly catalog: Catalog;
  readonly pool: ConnectionPool;
  readonly credentials: ClusterCredentials;
  readonly logger: Logger;
  /** Gives a worker the coordinator's roles before shards are made there. */
  readonly prepareNode: (node: WorkerNode) => Promise<unknown>;
  /** Copies a shard (with its colocated ones) onto a worker that has none (placement-repair.ts). */
  readonly copy: (request: PlacementCopyRequest) => Promise<unknown>;
}

export interface MoveRequest {
  readonly shardId: number;
  readonly source: NodeRef;
  readonly target: NodeRef;
}

/**
 * Where shards live, and moving them: what the admin API (`/v1/tables`, `/v1/shards`,
 * `/v1/placements`, `/v1/nodes/:id`, `POST /v1/shards/:id/move`) and `citus_move_shard_placement`
 * call. Sizes come from the workers (pg_total_relation_size of each shard table), read at the
 * time of the request; a worker that cannot be reached gives null sizes.
 */
export class PlacementService {
  constructor(private readonly options: PlacementServiceOptions) {}

  async tables(): Promise<TableJson[]> {
    const catalog = await this.fresh();
    const sizes = await this.sizes(catalog);
    return [...catalog.tables].map((table) => ({
      name: `${table.schema}.${table.name}`,
      kind: table.kind,
      distributionColumn: table.distributionColumn ?? null,
      colocationId: table.colocationId,
      shardCount: table.shards.length,
      replicationFactor: Math.min(
        ...table.shards.map((shard) => shard.placements.filter((p) => p.state === "active").length),
      ),
      bytes: table.shards.reduce(
        (sum, shard) =>
          sum +
          shard.placements
            .filter((p) => p.state === "active")
            .reduce((s, p) => s + (sizes.get(`${p.nodeId}:${table.schema}.${shardName(table, shard.id)}`) ?? 0), 0),
        0,
      ),
    }));
  }

  async shards(tableName: string | undefined): Promise<ShardJson[]> {
    const catalog = await this.fresh();
    const tables = [...catalog.tables].filter((table) => tableName === undefined || matches(table, tableName));
    if (tableName !== undefined && tables.length === 0) {
      throw new HerdError(`no distributed or reference table is named ${tableName}`, {
        sqlState: SqlState.undefinedTable,
      });
    }
    const sizes = await this.sizes(catalog);
    return tables.flatMap((table) =>
      table.shards.map((shard) => ({
        id: shard.id,
        table: `${table.schema}.${table.name}`,
        index: shard.index,
        minValue: shard.min ?? null,
        maxValue: shard.max ?? null,
        placements: shard.placements.map((p) => placementJson(catalog, table, shard.id, p, sizes)),
      })),
    );
  }

  async placements(nodeId: number | undefined): Promise<PlacementJson[]> {
    const catalog = await this.fresh();
    if (nodeId !== undefined && !catalog.nodes.has(nodeId)) {
      throw new HerdError(`node ${nodeId} does not exist`, { sqlState: SqlState.undefinedObject });
    }
    const sizes = await this.sizes(catalog);
    return [...catalog.tables].flatMap((table) =>
      table.shards.flatMap((shard) =>
        shard.placements
          .filter((p) => nodeId === undefined || p.nodeId === nodeId)
          .map((p) => placementJson(catalog, table, shard.id, p, sizes)),
      ),
    );
  }

  /** One node with its placements and the bytes they hold. */
  async node(nodeId: number): Promise<{
    id: number;
    name: string;
    host: string;
    port: number;
    state: string;
    bytes: number | null;
    placements: PlacementJson[];
  }> {
    const catalog = await this.fresh();
    const node = catalog.nodes.get(nodeId);
    if (!node) throw new HerdError(`node ${nodeId} does not exist`, { sqlState: SqlState.undefinedObject });
    const placements = await this.placements(nodeId);
    const reachable = placements.every((p) => p.bytes !== null);
    return {
      id: node.id,
      name: node.name,
      host: node.host,
      port: node.port,
      state: node.state,
      bytes: reachable ? placements.reduce((sum, p) => sum + (p.bytes ?? 0), 0) : null,
      placements,
    };
  }

  /** citus_move_shard_placement / POST /v1/shards/:id/move: the shard with those colocated with it. */
  async move(request: MoveRequest): Promise<MoveReportJson> {
    const catalog = await this.fresh();
    const source = findNode(catalog, request.source);
    const target = findNode(catalog, request.target);
    const table = catalog.shardTable(request.shardId);
    const shard = table?.shards.find((s) => s.id === request.shardId);
    if (!table || !shard) {
      throw new HerdError(`could not find valid entry for shard ${request.shardId}`, {
        sqlState: SqlState.undefinedObject,
      });
    }
    const shards: ShardGroupMove["shards"][number][] = [];
    for (const colocated of catalog.tables) {
      if (colocated.colocationId !== table.colocationId) continue;
      const sibling = colocated.shards[shard.index];
      if (sibling) shards.push({ table: colocated, shardId: sibling.id });
    }
    if (table.kind !== "reference") await this.ensureReferenceTables(catalog, target);
    try {
      const report = await moveShardGroup(
        { shards, source, target },
        {
          metadata: this.options.metadata,
          pool: this.options.pool,
          credentials: this.options.credentials,
          logger: this.options.logger,
          prepareTarget: this.options.prepareNode,
        },
      );
      return {
        moveId: report.moveId,
        shards: shards.map((s) => s.shardId),
        from: source.name,
        to: target.name,
        rows: report.rows,
        bytes: report.bytes,
        ms: report.ms,
        writePauseMs: report.writePauseMs,
      };
    } finally {
      await this.options.catalog.reload();
    }
  }

  /**
   * A new copy of a shard (with its colocated ones) on a worker that has none: a reference table
   * for a worker that joined, or a shard group of a worker that was lost.
   */
  async copyOnto(shardId: number, source: number, target: number): Promise<void> {
    const catalog = await this.fresh();
    const node = catalog.nodes.get(target);
    if (node) await this.options.prepareNode(node);
    if (node && catalog.shardTable(shardId)?.kind !== "reference") await this.ensureReferenceTables(catalog, node);
    await this.options.copy({ shardId, source: { id: source }, target: { id: target } });
  }

  /**
   * replicate_reference_tables(): every active worker gets an active copy of every reference table
   * now (the background pass does it every few seconds, but not while a job runs); resolves with
   * how many copies it made. A worker that cannot be reached fails it, as in Citus.
   */
  async replicateReferenceTables(): Promise<number> {
    const catalog = await this.fresh();
    let made = 0;
    for (const node of catalog.nodes.values()) {
      if (node.state === "active") made += await this.ensureReferenceTables(await this.fresh(), node);
    }
    return made;
  }

  /**
   * A worker about to hold a shard of a distributed table gets an active copy of every reference
   * table first (as Citus's rebalancer replicates them before it moves anything): a query that
   * joins the shard with a reference table runs on one worker, which must hold both. The
   * background pass of job-runner.ts does the same for every worker, but only between jobs.
   */
  private async ensureReferenceTables(catalog: CatalogSnapshot, target: WorkerNode): Promise<number> {
    let prepared = false;
    let made = 0;
    for (const table of catalog.tables) {
      if (table.kind !== "reference") continue;
      for (const shard of table.shards) {
        if (shard.placements.some((p) => p.nodeId === target.id && p.state === "active")) continue;
        const source = shard.placements.find((p) => p.state === "active" && p.nodeId !== target.id);
        if (!source) {
          throw new HerdError(
            `reference table ${table.schema}.${table.name} has no active copy to give ${target.name}`,
            {
              sqlState: SqlState.objectNotInPrerequisiteState,
            },
          );
        }
        if (!prepared) await this.options.prepareNode(target);
        prepared = true;
        this.options.logger.info("copying a reference table to a worker before it gets shards", {
          table: `${table.schema}.${table.name}`,
          to: target.name,
        });
        try {
          await this.options.copy({ shardId: shard.id, source: { id: source.nodeId }, target: { id: target.id } });
          made += 1;
        } catch (error) {
          // the background pass (or another move) may have made the same copy meanwhile
          const now = (await this.fresh()).shardTable(shard.id)?.shards.find((s) => s.id === shard.id);
          if (!now?.placements.some((p) => p.nodeId === target.id && p.state === "active")) throw error;
        }
      }
    }
    return made;
  }

  private async fresh(): Promise<CatalogSnapshot> {
    await this.options.catalog.reload();
    return this.options.catalog.current;
  }

  /** `nodeId:schema.shard_table` → bytes, from every worker that answers. */
  private async sizes(catalog: CatalogSnapshot): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    await Promise.all(
      [...catalog.nodes.values()].map(async (node) => {
        try {
          const connection = await this.options.pool.acquire(node);
          try {
            await applySettings(connection, INTERNAL_SETTINGS);
            const { rows } = await connection.query(
              `SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND c.relname ~ '_[0-9]+$'
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
            );
            for (const row of rows) sizes.set(`${node.id}:${row[0]?.toString()}`, Number(row[1]?.toString()));
          } finally {
            this.options.pool.release(connection);
          }
        } catch {
          // unreachable now: its placements show null
          sizes.set(`${node.id}:unreachable`, -1);
        }
      }),
    );
    return sizes;
  }
}

function placementJson(
  catalog: CatalogSnapshot,
  table: DistributedTable,
  shardId: number,
  placement: { readonly nodeId: number; readonly state: "active" | "stale" | "to_delete" },
  sizes: ReadonlyMap<string, number>,
): PlacementJson {
  const unreachable = sizes.has(`${placement.nodeId}:unreachable`);
  return {
    shardId,
    table: `${table.schema}.${table.name}`,
    nodeId: placement.nodeId,
    node: catalog.nodes.get(placement.nodeId)?.name ?? String(placement.nodeId),
    state: placement.state,
    bytes: unreachable ? null : (sizes.get(`${placement.nodeId}:${table.schema}.${shardName(table, shardId)}`) ?? 0),
  };
}

function matches(table: DistributedTable, name: string): boolean {
  return name === `${table.schema}.${table.name}` || (!name.includes(".") && name === table.name);
}
