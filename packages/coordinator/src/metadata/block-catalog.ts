import pg from "pg";
import type { PgConnection } from "../connection/pg-connection.js";
import type { Catalog, SessionCatalogSource, StalePlacement } from "./catalog.js";
import { type CatalogQuery, readCatalog } from "./catalog-reader.js";
import { type CatalogSnapshot, catalogSnapshot } from "./catalog-snapshot.js";

const NO_FUNCTIONS = { volatile: [], stable: [], aggregates: [] } as const;

/** Versions of block snapshots: negative and never reused, so no shared plan is taken for one. */
let nextBlockVersion = -1;

/**
 * A session's view of the metadata. Outside transaction blocks it is the coordinator's shared
 * catalog. A block that changed the metadata (create_distributed_table, DDL on distributed
 * tables, a view over them) sees its own uncommitted changes, which no other connection can:
 * the snapshot is then read through the session's own connection, inside its block, and serves
 * the session's statements until the block ends (COMMIT or ROLLBACK), when the shared catalog is
 * loaded again. A session connected to another database than the metadata's sees no
 * distributed table at all: every table there is an ordinary one.
 */
export class BlockCatalog implements SessionCatalogSource {
  private block: CatalogSnapshot | undefined;
  /** A session in another database than the metadata's: no distributed table, ever. */
  private readonly none: CatalogSnapshot | undefined;

  constructor(
    private readonly shared: Catalog,
    private readonly backend: PgConnection,
    readonly foreignDatabase?: string,
  ) {
    if (foreignDatabase !== undefined)
      this.none = catalogSnapshot({ nodes: [], tables: [], indexes: [], functions: NO_FUNCTIONS }, nextBlockVersion--);
  }

  get current(): CatalogSnapshot {
    return this.blockSnapshot() ?? this.shared.current;
  }

  get relationsEpoch(): number {
    return this.shared.relationsEpoch;
  }

  /** The block's own snapshot, while the block that made it lasts. */
  blockSnapshot(): CatalogSnapshot | undefined {
    if (this.none) return this.none;
    // a block that ended without herd's COMMIT or ROLLBACK (the connection's state says so)
    if (this.block && this.backend.status === "I") this.block = undefined;
    return this.block;
  }

  reload(): Promise<void> {
    if (this.none) return Promise.resolve();
    return this.blockSnapshot() ? this.changedInBlock() : this.shared.reload();
  }

  markStale(placements: readonly StalePlacement[]): Promise<StalePlacement[]> {
    return this.shared.markStale(placements);
  }

  /** The session's block changed the metadata: read it again through the session's connection. */
  async changedInBlock(): Promise<void> {
    if (this.none) return;
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
    if (this.block === undefined || this.none) return;
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
