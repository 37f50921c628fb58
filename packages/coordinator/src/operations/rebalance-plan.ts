import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { WorkerNode } from "../metadata/catalog-types.js";

/**
 * A unit of placement: one shard index of one colocation group of hash tables (its shards move
 * together, so joins on the distribution column stay on one worker), and where its active copies
 * are. Reference tables are on every worker and are not balanced.
 */
export interface ShardGroup {
  readonly colocationId: number;
  readonly index: number;
  /** A shard of the group (the first table's), by which a move is asked for. */
  readonly shardId: number;
  readonly shardIds: readonly number[];
  /** Where its active copies are. */
  readonly nodes: readonly number[];
  /** Where it has a copy that counts as load: active, or stale (repaired when its worker answers). */
  readonly held: readonly number[];
  /** Every worker holding any placement of it (stale, or moved away and not dropped yet): no target. */
  readonly occupied: readonly number[];
}

export interface PlannedMove {
  readonly shardId: number;
  readonly shardIds: readonly number[];
  readonly from: number;
  readonly to: number;
}

export type RebalanceStrategy = "by_shard_count" | "by_disk_size";

export function shardGroups(catalog: CatalogSnapshot): ShardGroup[] {
  const groups = new Map<
    string,
    {
      colocationId: number;
      index: number;
      shardIds: number[];
      nodes: Set<number>;
      held: Set<number>;
      occupied: Set<number>;
    }
  >();
  const tables = [...catalog.tables].filter((table) => table.kind === "hash").sort((a, b) => a.oid - b.oid);
  for (const table of tables) {
    for (const shard of table.shards) {
      const key = `${table.colocationId}:${shard.index}`;
      const group = groups.get(key) ?? {
        colocationId: table.colocationId,
        index: shard.index,
        shardIds: [],
        nodes: new Set<number>(),
        held: new Set<number>(),
        occupied: new Set<number>(),
      };
      groups.set(key, group);
      group.shardIds.push(shard.id);
      for (const placement of shard.placements) {
        group.occupied.add(placement.nodeId);
        if (placement.state !== "to_delete") group.held.add(placement.nodeId);
        if (placement.state === "active") group.nodes.add(placement.nodeId);
      }
    }
  }
  return [...groups.values()].map((group) => ({
    colocationId: group.colocationId,
    index: group.index,
    shardId: group.shardIds[0] as number,
    shardIds: group.shardIds,
    nodes: [...group.nodes].sort((a, b) => a - b),
    held: [...group.held].sort((a, b) => a - b),
    occupied: [...group.occupied].sort((a, b) => a - b),
  }));
}

/**
 * Moves that even out the shard groups over the active workers: each colocation group on its own
 * (as Citus balances), until no worker holds more than one group more than another; each move goes
 * from the most loaded worker to the least loaded one that holds no copy of the group (copies of a
 * shard never share a worker). `by_disk_size` weighs each group by its bytes instead of 1 and
 * stops when a move would not make the spread smaller. `weights` maps a group's first shard id to
 * its bytes (absent: 1). Workers in `unavailable` (not heard from) are left out.
 */
export function planRebalance(
  catalog: CatalogSnapshot,
  strategy: RebalanceStrategy = "by_shard_count",
  weights: ReadonlyMap<number, number> = new Map(),
  unavailable: ReadonlySet<number> = new Set(),
): PlannedMove[] {
  const active = [...catalog.nodes.values()]
    .filter((node) => node.state === "active" && !unavailable.has(node.id))
    .map((node) => node.id);
  if (active.length < 2) return [];
  const byColocation = new Map<number, ShardGroup[]>();
  for (const group of shardGroups(catalog)) {
    byColocation.set(group.colocationId, [...(byColocation.get(group.colocationId) ?? []), group]);
  }
  const moves: PlannedMove[] = [];
  for (const groups of byColocation.values()) {
    // load counts stale copies too (they are repaired where they are); a move needs an active source
    const where = new Map(groups.map((group) => [group, new Set(group.held)]));
    const occupied = new Map(groups.map((group) => [group, new Set(group.occupied)]));
    const weight = (group: ShardGroup) =>
      strategy === "by_disk_size" ? Math.max(weights.get(group.shardId) ?? 1, 1) : 1;
    const load = (node: number) =>
      groups.reduce((sum, group) => sum + (where.get(group)?.has(node) ? weight(group) : 0), 0);
    for (let guard = 0; guard < groups.length * active.length; guard += 1) {
      const sorted = [...active].sort((a, b) => load(b) - load(a) || a - b);
      const heaviest = sorted[0] as number;
      const lightest = sorted.at(-1) as number;
      const spread = load(heaviest) - load(lightest);
      // by count: stop at a spread of one; by size: stop when the best move would not narrow it
      const candidates = groups
        .filter(
          (group) =>
            where.get(group)?.has(heaviest) && group.nodes.includes(heaviest) && !occupied.get(group)?.has(lightest),
        )
        .sort((a, b) => weight(a) - weight(b) || a.index - b.index);
      const pick =
        strategy === "by_shard_count"
          ? spread > 1
            ? candidates[0]
            : undefined
          : candidates.find((group) => Math.abs(spread - 2 * weight(group)) < spread);
      if (!pick) break;
      where.get(pick)?.delete(heaviest);
      where.get(pick)?.add(lightest);
      occupied.get(pick)?.add(lightest);
      moves.push({ shardId: pick.shardId, shardIds: pick.shardIds, from: heaviest, to: lightest });
    }
  }
  return moves;
}

/** Moves that take every shard group off `node`, each to the least loaded active worker without a copy of it. */
export function planDrain(
  catalog: CatalogSnapshot,
  node: WorkerNode,
  unavailable: ReadonlySet<number> = new Set(),
): PlannedMove[] {
  const others = [...catalog.nodes.values()]
    .filter((n) => n.state === "active" && n.id !== node.id && !unavailable.has(n.id))
    .map((n) => n.id);
  const groups = shardGroups(catalog);
  const where = new Map(groups.map((group) => [group, new Set(group.nodes)]));
  const occupied = new Map(groups.map((group) => [group, new Set(group.occupied)]));
  const load = (id: number) => groups.filter((group) => where.get(group)?.has(id)).length;
  const moves: PlannedMove[] = [];
  for (const group of groups) {
    if (!where.get(group)?.has(node.id)) continue;
    const target = others.filter((id) => !occupied.get(group)?.has(id)).sort((a, b) => load(a) - load(b) || a - b)[0];
    // nowhere to go now (every other worker holds some copy): the drain waits and plans again
    if (target === undefined) continue;
    where.get(group)?.delete(node.id);
    where.get(group)?.add(target);
    occupied.get(group)?.add(target);
    moves.push({ shardId: group.shardId, shardIds: group.shardIds, from: node.id, to: target });
  }
  return moves;
}
