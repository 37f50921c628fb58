import { errorMessage, HerdError, type Logger, SqlState } from "@herd/shared";
import type pg from "pg";
import { PeriodicPass } from "../connection/periodic-pass.js";
import { isConnectionLoss } from "../connection/server-error.js";
import type { ConnectionPool } from "../connection/worker-connection.js";
import type { CatalogSource } from "../metadata/catalog.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { copyShardGroup, type ShardCopyReport, type ShardGroupCopy, type ShardToCopy } from "./shard-copy.js";

export interface PlacementRepairOptions {
  readonly metadata: pg.Pool;
  readonly catalog: CatalogSource;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
  /** How often to look for stale placements, in ms. */
  readonly intervalMs?: number;
}

/** Where a shard placement is copied from and to (citus_copy_shard_placement's arguments). */
export interface PlacementCopyRequest {
  readonly shardId: number;
  readonly source: NodeRef;
  readonly target: NodeRef;
}

/** A node by id, or by host and port as Citus names it. */
export type NodeRef = { readonly id: number } | { readonly host: string; readonly port: number };

/**
 * Brings stale placements back: every few seconds (and at start) each group of colocated shards
 * with stale placements on a worker that answers again is copied there from an active placement
 * (operations/shard-copy.ts) and marked active. `citus_copy_shard_placement` does the same on
 * demand, and also makes a new copy on a worker that has none.
 *
 * Groups are repaired one at a time, reference tables first (other tables' foreign keys point at
 * them). A group that fails is logged and tried again on the next pass.
 */
export class PlacementRepair {
  private readonly passes: PeriodicPass;

  constructor(private readonly options: PlacementRepairOptions) {
    this.passes = new PeriodicPass(() => this.pass(), options.intervalMs ?? 5_000);
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass over every stale placement; resolves with the number of shard placements repaired. */
  repairNow(): Promise<number> {
    return this.passes.now();
  }

  /** citus_copy_shard_placement: the shard and those colocated with it, from source to target. */
  async copyPlacement(request: PlacementCopyRequest): Promise<ShardCopyReport> {
    await this.options.catalog.reload();
    const catalog = this.options.catalog.current;
    const source = findNode(catalog, request.source);
    const target = findNode(catalog, request.target);
    if (source.id === target.id) {
      throw new HerdError("shard placements cannot be copied onto the node they are on", {
        sqlState: SqlState.invalidParameterValue,
      });
    }
    const table = catalog.shardTable(request.shardId);
    const shard = table?.shards.find((s) => s.id === request.shardId);
    if (!table || !shard) {
      throw new HerdError(`could not find valid entry for shard ${request.shardId}`, {
        sqlState: SqlState.undefinedObject,
      });
    }
    if (shard.placements.some((p) => p.nodeId === target.id && p.state === "active")) {
      throw new HerdError(`shard ${shard.id} already has an active placement on ${target.name}`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
      });
    }
    // the shards colocated with it go along, except those the target holds already (active)
    const shards: ShardToCopy[] = [];
    for (const colocated of catalog.tables) {
      if (colocated.colocationId !== table.colocationId) continue;
      const sibling = colocated.shards[shard.index];
      const onTarget = sibling?.placements.find((p) => p.nodeId === target.id)?.state;
      if (!sibling || onTarget === "active") continue;
      shards.push({ table: colocated, shardId: sibling.id, target: onTarget === "stale" ? "stale" : "missing" });
    }
    return this.copy({ shards, source, target });
  }

  private async pass(): Promise<number> {
    const catalog = this.options.catalog.current;
    let repaired = 0;
    for (const copy of staleGroups(catalog)) {
      try {
        await this.copy(copy);
        repaired += copy.shards.length;
      } catch (error) {
        // a worker that is still down is the usual reason: said once per pass, quietly
        const down = isConnectionLoss(error);
        this.options.logger[down ? "debug" : "warn"]("cannot repair placements now; trying again later", {
          node: copy.target.name,
          shards: copy.shards.map((shard) => shard.shardId).join(" "),
          error: errorMessage(error),
        });
      }
    }
    return repaired;
  }

  private async copy(copy: ShardGroupCopy): Promise<ShardCopyReport> {
    const { logger } = this.options;
    const verb = copy.shards.every((shard) => shard.target === "stale") ? "repairing" : "copying";
    logger.info(`${verb} shard placements`, {
      shards: copy.shards.map((shard) => shard.shardId).join(" "),
      from: copy.source.name,
      to: copy.target.name,
    });
    const report = await copyShardGroup(copy, this.options);
    logger.info(verb === "repairing" ? "placements repaired" : "placements copied", {
      shards: copy.shards.map((shard) => shard.shardId).join(" "),
      to: copy.target.name,
      rows: report.rows,
      bytes: report.bytes,
      ms: report.ms,
    });
    await this.options.catalog.reload();
    return report;
  }
}

/**
 * The stale placements as copies to make: per worker, per group of colocated shards (one index
 * of one colocation group), from a worker holding an active placement of each; reference
 * tables first. A group with no such source is left (it cannot be repaired from one place).
 */
export function staleGroups(catalog: CatalogSnapshot): ShardGroupCopy[] {
  const groups = new Map<
    string,
    { shards: ShardToCopy[]; target: number; reference: boolean; sources: Set<number>[] }
  >();
  for (const table of catalog.tables) {
    for (const shard of table.shards) {
      for (const placement of shard.placements) {
        if (placement.state !== "stale") continue;
        const key = `${table.colocationId}:${shard.index}:${placement.nodeId}`;
        const group = groups.get(key) ?? {
          shards: [],
          target: placement.nodeId,
          reference: table.kind === "reference",
          sources: [],
        };
        groups.set(key, group);
        group.shards.push({ table, shardId: shard.id, target: "stale" });
        group.sources.push(new Set(shard.placements.filter((p) => p.state === "active").map((p) => p.nodeId)));
      }
    }
  }
  const copies: ShardGroupCopy[] = [];
  for (const group of [...groups.values()].sort((a, b) => Number(b.reference) - Number(a.reference))) {
    const target = catalog.nodes.get(group.target);
    const [first, ...others] = group.sources;
    const sourceId = [...(first ?? [])].find((id) => others.every((set) => set.has(id)));
    const source = sourceId === undefined ? undefined : catalog.nodes.get(sourceId);
    if (target && source) copies.push({ shards: group.shards, source, target });
  }
  return copies;
}

/** A worker of the catalog by id, or by host and port; 22023 when it is not one. */
export function findNode(catalog: CatalogSnapshot, ref: NodeRef): WorkerNode {
  const node = [...catalog.nodes.values()].find((n) =>
    "id" in ref ? n.id === ref.id : n.host === ref.host && n.port === ref.port,
  );
  if (!node) {
    const named = "id" in ref ? `node ${ref.id}` : `node ${ref.host}:${ref.port}`;
    throw new HerdError(`${named} is not a worker of this cluster`, { sqlState: SqlState.invalidParameterValue });
  }
  return node;
}
