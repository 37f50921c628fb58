import type pg from "pg";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { shardGroups } from "./rebalance-plan.js";

/**
 * Workers not heard from for longer than `ms`: no heartbeat since, or their Pod gone since
 * (node-registry.ts podGone stamps `lost_at`), counting from `since` at the earliest (the
 * coordinator's start). Measured on the metadata server's clock.
 */
export async function silentWorkers(metadata: pg.Pool, ms: number, since?: Date): Promise<Set<number>> {
  const { rows } = await metadata.query<{ id: number }>(
    `SELECT id FROM herd.nodes
      WHERE greatest(coalesce(lost_at, last_seen_at), $2::timestamptz) < now() - make_interval(secs => $1)`,
    [ms / 1000, since ?? null],
  );
  return new Set(rows.map((row) => Number(row.id)));
}

/** What to do about one shard group that has a copy on a lost worker. */
export interface LostCopy {
  /** The group's first shard: the copy is asked for by it (its colocated shards go along). */
  readonly shardId: number;
  readonly shardIds: readonly number[];
  readonly lost: number;
  /** Where the group gets a new copy, from `source`; undefined: it has its copies elsewhere already. */
  readonly copy: { readonly source: number; readonly target: number } | undefined;
  /** The lost worker's placements of the group can go: it has its replication factor without them. */
  readonly retire: boolean;
}

/**
 * The shard groups of hash tables that hold a copy (active or stale) on a lost worker, and what to
 * do about each: copy it from an active copy on a worker that answers to the least loaded
 * answering worker that holds no placement of the group, while it has fewer than
 * `replicationFactor` active copies on answering workers; retire the lost worker's copy only once
 * it has that many (after the copy, or at once when a copy made before a crash is there already).
 * A group that cannot get there now (no active copy answers, no worker to take one) keeps its
 * lost copy: it is never left with fewer copies than it had. Reference tables are on every worker
 * already and need no new copy.
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
    // full copies that answer: active ones on available workers (a stale copy is not one yet)
    const answering = group.nodes.filter((id) => available.includes(id));
    const source = answering[0];
    const occupied = new Set(group.occupied);
    let copies = answering.length;
    for (const lostNode of lostHere) {
      let copy: LostCopy["copy"];
      if (copies < replicationFactor) {
        const target = available
          .filter((id) => !occupied.has(id))
          .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a - b)[0];
        if (source === undefined || target === undefined) continue;
        occupied.add(target);
        load.set(target, (load.get(target) ?? 0) + 1);
        copy = { source, target };
        copies += 1;
      }
      // retired only once the group has its replication factor in copies that answer
      const retire = copies >= replicationFactor;
      if (copy || retire)
        plans.push({ shardId: group.shardId, shardIds: group.shardIds, lost: lostNode, copy, retire });
    }
  }
  return plans;
}
