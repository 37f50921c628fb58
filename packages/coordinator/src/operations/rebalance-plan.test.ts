import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type CatalogData, catalogSnapshot } from "../metadata/catalog-snapshot.js";
import { CATALOG_FIXTURE, fixtureCatalog } from "../testing/catalog-fixture.js";
import { planDrain, planRebalance, shardGroups } from "./rebalance-plan.js";

/** The fixture's catalog (3 workers) with `extra` more active workers that hold nothing yet. */
function grown(extra: number) {
  const base = JSON.parse(readFileSync(CATALOG_FIXTURE, "utf8")) as CatalogData;
  const nodes = [...base.nodes];
  const maxId = Math.max(...nodes.map((n) => n.id));
  const added = Array.from({ length: extra }, (_, i) => ({
    id: maxId + 1 + i,
    name: `herd-${maxId + 1 + i}`,
    host: "127.0.0.1",
    port: 9000 + i,
    state: "active" as const,
  }));
  return catalogSnapshot(
    {
      nodes: [...nodes, ...added],
      tables: base.tables,
      indexes: base.indexes,
      functions: base.functions,
    },
    2,
  );
}

/** Placements per node of each colocation group after applying the moves. */
function loadsAfter(catalog: ReturnType<typeof grown>, moves: ReturnType<typeof planRebalance>) {
  const where = new Map(shardGroups(catalog).map((group) => [group.shardId, { group, nodes: new Set(group.nodes) }]));
  for (const move of moves) {
    const entry = where.get(move.shardId);
    if (!entry) throw new Error(`unknown group ${move.shardId}`);
    expect(entry.nodes.has(move.from)).toBe(true);
    expect(entry.nodes.has(move.to)).toBe(false); // copies never share a worker
    entry.nodes.delete(move.from);
    entry.nodes.add(move.to);
  }
  const loads = new Map<number, Map<number, number>>();
  for (const { group, nodes } of where.values()) {
    const perNode = loads.get(group.colocationId) ?? new Map<number, number>();
    for (const id of catalog.nodes.keys()) perNode.set(id, (perNode.get(id) ?? 0) + (nodes.has(id) ? 1 : 0));
    loads.set(group.colocationId, perNode);
  }
  return loads;
}

describe("planRebalance", () => {
  it("has nothing to do on a balanced cluster", () => {
    expect(planRebalance(fixtureCatalog())).toEqual([]);
  });

  it.each([1, 2, 5])("evens out every colocation group after %i new workers join (by shard count)", (extra) => {
    const catalog = grown(extra);
    const moves = planRebalance(catalog);
    expect(moves.length).toBeGreaterThan(0);
    for (const perNode of loadsAfter(catalog, moves).values()) {
      const counts = [...perNode.values()];
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
  });

  it("drains a worker: every group it held goes elsewhere, never onto a worker that has a copy", () => {
    const catalog = grown(1);
    const node = catalog.nodes.get(Math.min(...catalog.nodes.keys())) as NonNullable<
      ReturnType<typeof catalog.nodes.get>
    >;
    const moves = planDrain(catalog, node);
    const held = shardGroups(catalog).filter((group) => group.nodes.includes(node.id));
    expect(moves.map((m) => m.shardId).sort()).toEqual(held.map((g) => g.shardId).sort());
    const loads = loadsAfter(catalog, moves);
    for (const perNode of loads.values()) expect(perNode.get(node.id)).toBe(0);
  });

  it("weighs groups by bytes with by_disk_size", () => {
    const catalog = grown(1);
    const groups = shardGroups(catalog);
    const weights = new Map(groups.map((group, i) => [group.shardId, i === 0 ? 1_000_000 : 1_000]));
    const moves = planRebalance(catalog, "by_disk_size", weights);
    expect(moves.length).toBeGreaterThan(0);
  });
});
