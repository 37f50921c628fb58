import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CatalogData, type CatalogSnapshot, catalogSnapshot } from "../metadata/catalog-snapshot.js";

/** Where the fixture lives; `pnpm test` with HERD_UPDATE_GOLDEN=1 rewrites it from a fresh cluster. */
export const CATALOG_FIXTURE = join(import.meta.dirname, "testdata", "catalog.json");

/**
 * The catalog of a fresh 3-worker `herd up` cluster after test/distributed/schema.ts (customers
 * and orders colocated by tenant_id, countries a reference table, events by uuid with 8 shards),
 * as plain data: the planner's in-process tests plan against it exactly as the coordinator would.
 */
export function fixtureCatalog(): CatalogSnapshot {
  return catalogSnapshot(JSON.parse(readFileSync(CATALOG_FIXTURE, "utf8")) as CatalogData, 1);
}

/**
 * The data of a catalog with what differs between equal clusters left out (table oids, the
 * workers' names and ports: which worker registers first is a race, and takes id 1), as JSON
 * would carry it: two clusters made by the same statements compare equal. The function lists
 * are left out too: every function herd's migrations add would change them, and the golden cases
 * (run on both sides) tell whether the ones they use are classified alike.
 */
export function comparableCatalog(loaded: CatalogData): unknown {
  const data = JSON.parse(JSON.stringify(loaded)) as CatalogData;
  const nameOf = new Map(data.tables.map((table) => [table.oid, `${table.schema}.${table.name}`]));
  return {
    nodes: data.nodes.map(({ id, state }) => ({ id, state })),
    // placement versions count the changes a cluster's placements went through, not what they are
    tables: data.tables
      .map(({ oid: _oid, ...table }) => ({
        ...table,
        shards: table.shards.map(({ placementVersion: _version, ...shard }) => shard),
      }))
      .sort((a, b) => `${a.schema}.${a.name}`.localeCompare(`${b.schema}.${b.name}`)),
    indexes: data.indexes
      .map((index) => ({ ...index, table: nameOf.get(index.table) }))
      .sort((a, b) => `${a.schema}.${a.name}`.localeCompare(`${b.schema}.${b.name}`)),
  };
}
