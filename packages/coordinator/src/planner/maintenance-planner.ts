import { MaintainShards, type PlacementMaintenance } from "../executor/primitives/maintain-shards.js";
import { activeNodes } from "../executor/shard-selection.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse } from "../parser/ast.js";

/**
 * VACUUM / ANALYZE naming distributed or reference tables: the same statement (options and
 * column lists kept) for each shard on each of its active placements. Undefined when it names
 * none (a database-wide VACUUM stays the coordinator's: the shards are their workers' own).
 */
export function planMaintenance(vacuum: AnyNode, catalog: CatalogSnapshot): MaintainShards | undefined {
  const placements: PlacementMaintenance[] = [];
  for (const item of (vacuum.rels ?? []) as unknown[]) {
    const relation = as(item, "VacuumRelation") as AnyNode | undefined;
    const rangeVar = relation?.relation as AnyNode | undefined;
    const table = rangeVar && catalog.resolve(rangeVar.schemaname, rangeVar.relname);
    if (!relation || !rangeVar || !table) continue;
    for (const shard of table.shards) {
      const statement = structuredClone(vacuum);
      statement.rels = [
        {
          VacuumRelation: {
            ...relation,
            relation: { ...rangeVar, schemaname: table.schema, relname: shardName(table, shard.id) },
          },
        },
      ];
      const sql = deparse({ VacuumStmt: statement });
      for (const node of activeNodes(shard, catalog.nodes)) placements.push({ sql, shardId: shard.id, node });
    }
  }
  return placements.length > 0 ? new MaintainShards(Boolean(vacuum.is_vacuumcmd), placements) : undefined;
}
