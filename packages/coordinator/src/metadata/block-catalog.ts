import pg from "pg";
import type { PgConnection } from "../connection/pg-connection.js";
import type { Catalog, SessionCatalogSource } from "./catalog.js";
import { type CatalogQuery, readCatalog } from "./catalog-reader.js";
import type { CatalogSnapshot } from "./catalog-snapshot.js";

/** Versions of block snapshots: negative and never reused, so no shared plan is taken for one. */
let nextBlockVersion = -1;

/**
 * A session's view of the metadata. Outside transaction blocks it is the coordinator's shared
 * catalog. A block that changed the metadata (create_distributed_table, DDL on distributed
 * tables, a view over them) sees its own uncommitted changes, which no other connection can:
 * the snapshot is then read through the session's own connection, inside its block, and serves
 * the session's statements until the block ends (COMMIT or ROLLBACK), when the shared catalog is
 * loaded again.
 */
export class BlockCatalog implements SessionCatalogSource {
  private block: CatalogSnapshot | undefined;

  constructor(
    private readonly shared: Catalog,
    private readonly backend: PgConnection,
  ) {}

  get current(): CatalogSnapshot {
    return this.blockSnapshot() ?? this.shared.current;
  }

  get relationsEpoch(): number {
    return this.shared.relationsEpoch;
  }

  /** The block's own snapshot, while the block that made it lasts. */
  blockSnapshot(): CatalogSnapshot | undefined {
    // a block that ended without herd's COMMIT or ROLLBACK (the connection's state says so)
    if (this.block && this.backend.status === "I") this.block = undefined;
    return this.block;
  }

  reload(): Promise<void> {
    return this.blockSnapshot() ? this.changedInBlock() : this.shared.reload();
  }

  /** The session's block changed the metadata: read it again through the session's connection. */
  async changedInBlock(): Promise<void> {
    const backend = this.backend;
    // the reader sets search_path locally: undone by rolling back to the savepoint
    await backend.query("SAVEPOINT herd_catalog");
    try {
      this.block = await readCatalog(rowsOf(backend), nextBlockVersion--);
    } finally {
      await backend.query("ROLLBACK TO SAVEPOINT herd_catalog; RELEASE SAVEPOINT herd_catalog");
    }
  }

  /** The block ended: its changes are everyone's now, or gone. */
  async blockEnded(): Promise<void> {
    if (this.block === undefined) return;
    this.block = undefined;
    await this.shared.reload();
  }
}

/** Catalog queries on a herd connection, rows parsed as node-postgres parses them. */
function rowsOf(backend: PgConnection): CatalogQuery {
  return async <T>(sql: string) => {
    const result = await backend.query(sql);
    const parsers = result.fields.map((field) => pg.types.getTypeParser(field.typeOid, "text"));
    const rows = result.rows.map((row) => {
      const object: Record<string, unknown> = {};
      result.fields.forEach((field, index) => {
        const value = row[index];
        object[field.name] = value === null || value === undefined ? null : parsers[index]?.(value.toString());
      });
      return object as T;
    });
    return { rows };
  };
}
