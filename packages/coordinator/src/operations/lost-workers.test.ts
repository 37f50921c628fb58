import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type CatalogData, catalogSnapshot } from "../metadata/catalog-snapshot.js";
import { CATALOG_FIXTURE } from "../testing/catalog-fixture.js";
import { planLostCopies } from "./lost-workers.js";
import { shardGroups } from "./rebalance-plan.js";

/** The fixture's catalog (3 workers, two copies of each shard) with one more empty worker. */
function fourWorkers() {
  const base = JSON.parse(readFileSync(CATALOG_FIXTURE, "utf8")) as CatalogData;
  const maxId = Math.max(...base.nodes.map((n) => n.id));
  const extra = { id: maxId + 1, name: `herd-${maxId + 1}`, host: "127.0.0.1", port: 9000, state: "active" as const };
  return catalogSnapshot({ ...base, nodes: [...base.nodes, extra] }, 2);
}

describe("planLostCopies", () => {
  it("gives every group of a lost worker a new copy on a worker that answers and holds none, spread evenly", () => {
    const catalog = fourWorkers();
    const lost = [...catalog.nodes.keys()][0] as number;
    const groups = shardGroups(catalog).filter((group) => group.held.includes(lost));
    expect(groups.length).toBeGreaterThan(0);
    const plans = planLostCopies(catalog, new Set([lost]), new Set([lost]), 2);
    expect(plans.map((plan) => plan.shardId).sort()).toEqual(groups.map((group) => group.shardId).sort());
    const targets = new Map<number, number>();
    for (const plan of plans) {
      const group = groups.find((g) => g.shardId === plan.shardId);
      expect(plan.lost).toBe(lost);
      expect(plan.copy).toBeDefined();
      expect(plan.retire).toBe(true);
      expect(group?.nodes).toContain(plan.copy?.source);
      expect(plan.copy?.source).not.toBe(lost);
      expect(group?.occupied).not.toContain(plan.copy?.target); // copies never share a worker
      targets.set(plan.copy?.target as number, (targets.get(plan.copy?.target as number) ?? 0) + 1);
    }
    // the empty worker takes the most
    const extraId = Math.max(...catalog.nodes.keys());
    expect(Math.max(...targets.values())).toBe(targets.get(extraId));
  });

  it("only retires the lost copies of a group that has its copies elsewhere already (a crash after the copy)", () => {
    const catalog = fourWorkers();
    const [lost, other] = [...catalog.nodes.keys()] as [number, number];
    // the lost worker and `other` are silent; a group held by both has no source: nothing to do
    const plans = planLostCopies(catalog, new Set([lost]), new Set([lost, other]), 2);
    for (const plan of plans) {
      const group = shardGroups(catalog).find((g) => g.shardId === plan.shardId);
      expect(group?.held).not.toContain(other);
    }
    // with a replication factor of 1, the one copy elsewhere is enough: retire only
    const retireOnly = planLostCopies(catalog, new Set([lost]), new Set([lost]), 1);
    expect(retireOnly.length).toBeGreaterThan(0);
    expect(retireOnly.every((plan) => plan.copy === undefined && plan.retire)).toBe(true);
  });

  it("never takes a copy away that it cannot replace: every worker silent (a whole cluster restarting), or no room", () => {
    const catalog = fourWorkers();
    const all = new Set(catalog.nodes.keys());
    expect(planLostCopies(catalog, all, all, 2)).toEqual([]);
    // three of four silent: the one that answers holds at most one copy of a group, and there is
    // no second worker to make the other on, so nothing is retired
    const [first, ...rest] = [...catalog.nodes.keys()] as number[];
    const plans = planLostCopies(catalog, new Set(rest), new Set(rest), 2);
    expect(plans.filter((plan) => plan.retire)).toEqual([]);
    expect(plans.every((plan) => plan.copy === undefined || plan.copy.target === first)).toBe(true);
  });

  it("with a higher replication factor than workers that answer, copies what it can and retires nothing", () => {
    const catalog = fourWorkers();
    const lost = [...catalog.nodes.keys()][0] as number;
    const plans = planLostCopies(catalog, new Set([lost]), new Set([lost]), 4);
    expect(plans.length).toBeGreaterThan(0);
    expect(plans.every((plan) => !plan.retire)).toBe(true);
  });

  it("plans nothing when no worker is lost", () => {
    expect(planLostCopies(fourWorkers(), new Set(), new Set(), 2)).toEqual([]);
  });
});
