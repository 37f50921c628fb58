import type pg from "pg";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { shardGroups } from "./rebalance-plan.js";

/**
 * Workers not heard from for longer than `ms`: no heartbeat since, or their Pod gone since
 * (node-registry.ts podGone stamps `lost_at`). Measured on the metadata server's clock.
 */
export async function silentWorkers(metadata: pg.Pool, ms: number): Promise<Set<number>> {
  const { rows } = await metadata.query<{ id: number }>(
    `SELECT id FROM herd.nodes
      WHERE coalesce(lost_at, last_seen_at) < now() - make_interval(secs => $1)`,
    [ms / 1000],
  );
  return new Set(rows.map((row) => Number(row.id)));
}

/** What to do about one shard group that has a copy on a lost worker. */
export interface LostCopy {
  /** The group's first shard: the copy is asked for by it (its colocated shards go along). */
  readonly shardId: number;
  readonly shardIds: readonly number[];
  readonly lost: number;
  /**
   * Where the group gets its new copy, from `source`; undefined when the group has its copies
   * elsewhere already (a copy made before a crash): the lost placements are only retired.
   */
  readonly copy: { readonly source: number; readonly target: number } | undefined;
}

/**
 * The shard groups of hash tables that hold a copy (active or stale) on a lost worker, each with
 * the copy that brings it back to `replicationFactor` copies on workers that answer: from an
 * active copy, to the least loaded available worker that holds no placement of the group. A
 * group with no active copy left, or no worker to take it, is not listed (nothing can be done
 * now). Reference tables are on every worker already and need no new copy.
 */
export function planLostCopies(
  catalog: CatalogSnapshot,
  lost: ReadonlySet<number>,
  unavailable: ReadonlySet<number>,
  replicationFactor: number,
): LostCopy[] {
  const available = [...catalog.nodes.values()]
    .filter((node) => node.state === "active" && !unavailable.has(node.id))
    .map((node) => node.id);
  const groups = shardGroups(catalog);
  const load = new Map(available.map((id) => [id, groups.filter((group) => group.held.includes(id)).length]));
  const plans: LostCopy[] = [];
  for (const group of groups) {
    const lostHere = group.held.filter((id) => lost.has(id));
    if (lostHere.length === 0) continue;
    const live = group.held.filter((id) => !unavailable.has(id));
    const source = group.nodes.find((id) => !unavailable.has(id));
    const occupied = new Set(group.occupied);
    let copies = live.length;
    for (const lostNode of lostHere) {
      if (copies >= Math.min(replicationFactor, available.length)) {
        plans.push({ shardId: group.shardId, shardIds: group.shardIds, lost: lostNode, copy: undefined });
        continue;
      }
      const target = available
        .filter((id) => !occupied.has(id))
        .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a - b)[0];
      if (source === undefined || target === undefined) continue;
      occupied.add(target);
      load.set(target, (load.get(target) ?? 0) + 1);
      copies += 1;
      plans.push({ shardId: group.shardId, shardIds: group.shardIds, lost: lostNode, copy: { source, target } });
    }
  }
  return plans;
}
