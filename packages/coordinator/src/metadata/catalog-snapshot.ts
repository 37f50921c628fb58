import type { DistributedTable, DistributedView, WorkerNode } from "./catalog-types.js";

/** Functions by kind, as the planner needs them (names only; any overload counts). */
export interface FunctionKinds {
  /** Functions that are neither immutable nor aggregates, by volatility. */
  readonly volatile: ReadonlySet<string>;
  readonly stable: ReadonlySet<string>;
  readonly aggregates: ReadonlySet<string>;
  /**
   * SQL and PL/pgSQL functions whose body reads a distributed or reference table (or a view of
   * one): name → what it reads. The coordinator's PostgreSQL would run them on the empty shells.
   */
  readonly shellReaders: ReadonlyMap<string, string>;
}

/**
 * The cluster map at one moment: what the planner plans against and a plan keeps. It never
 * changes; the metadata changing makes a new snapshot with a higher `version` (see Catalog).
 */
export interface CatalogSnapshot {
  readonly version: number;
  readonly tables: Iterable<DistributedTable>;
  readonly nodes: ReadonlyMap<number, WorkerNode>;
  readonly functions: FunctionKinds;
  /**
   * The distributed table a name refers to. An unqualified name means what the session's
   * search_path makes it mean (`withSessionNames`); without a session, any schema's table of that
   * name, `public`'s first: what deciding whether herd runs a statement at all needs, where
   * claiming too much is harmless (a statement planned for a session may still turn out local).
   */
  resolve(schema: string | undefined, name: string): DistributedTable | undefined;
  /** The distributed table an index belongs to. */
  indexTable(schema: string | undefined, name: string): DistributedTable | undefined;
  /** The table a shard id belongs to. */
  shardTable(shardId: number): DistributedTable | undefined;
  byOid(oid: number): DistributedTable | undefined;
  /** Views that read distributed tables. */
  readonly views: Iterable<DistributedView>;
  /** The view over distributed tables a name refers to (resolved as `resolve` resolves tables). */
  resolveView(schema: string | undefined, name: string): DistributedView | undefined;
  viewByOid(oid: number): DistributedView | undefined;
}

/** A snapshot as plain data: what the metadata tables hold, or a test's JSON fixture. */
export interface CatalogData {
  readonly nodes: readonly WorkerNode[];
  readonly tables: readonly DistributedTable[];
  /** Indexes of distributed tables (to find the table of `DROP INDEX name`). */
  readonly indexes: readonly { readonly schema: string; readonly name: string; readonly table: number }[];
  readonly functions: {
    readonly volatile: readonly string[];
    readonly stable: readonly string[];
    readonly aggregates: readonly string[];
    /** Functions that read distributed tables: [name, what it reads]. */
    readonly shellReaders?: readonly (readonly [string, string])[];
  };
  /** Views that read distributed tables (absent in older fixtures: none). */
  readonly views?: readonly DistributedView[];
}

/** A snapshot over plain data, indexed for the lookups the planner makes per statement. */
export function catalogSnapshot(data: CatalogData, version: number): CatalogSnapshot {
  return new IndexedCatalog(data, version);
}

/**
 * A snapshot whose unqualified names mean what they mean in one session now: `resolved` maps each
 * name to the oid PostgreSQL resolves it to through the session's search_path (0: no relation of
 * that name, or the name is not resolved here and keeps the snapshot's meaning when absent).
 */
export function withSessionNames(snapshot: CatalogSnapshot, resolved: ReadonlyMap<string, number>): CatalogSnapshot {
  return {
    version: snapshot.version,
    get tables() {
      return snapshot.tables;
    },
    get views() {
      return snapshot.views;
    },
    nodes: snapshot.nodes,
    functions: snapshot.functions,
    resolve(schema, name) {
      if (schema !== undefined) return snapshot.resolve(schema, name);
      const oid = resolved.get(name);
      return oid === undefined ? snapshot.resolve(undefined, name) : snapshot.byOid(oid);
    },
    resolveView(schema, name) {
      if (schema !== undefined) return snapshot.resolveView(schema, name);
      const oid = resolved.get(name);
      return oid === undefined ? snapshot.resolveView(undefined, name) : snapshot.viewByOid(oid);
    },
    viewByOid: (oid) => snapshot.viewByOid(oid),
    indexTable: (schema, name) => snapshot.indexTable(schema, name),
    shardTable: (shardId) => snapshot.shardTable(shardId),
    byOid: (oid) => snapshot.byOid(oid),
  };
}

/** The data of a snapshot (for fixtures: `JSON.stringify(snapshotData(catalog.current))`). */
export function snapshotData(snapshot: CatalogSnapshot): CatalogData {
  if (snapshot instanceof IndexedCatalog) return snapshot.data;
  throw new TypeError("not an indexed catalog snapshot");
}

class IndexedCatalog implements CatalogSnapshot {
  readonly nodes: ReadonlyMap<number, WorkerNode>;
  readonly functions: FunctionKinds;
  private readonly byOidMap: ReadonlyMap<number, DistributedTable>;
  private readonly byName: ReadonlyMap<string, readonly DistributedTable[]>;
  private readonly byShard: ReadonlyMap<number, DistributedTable>;
  private readonly viewsByOid: ReadonlyMap<number, DistributedView>;
  private readonly viewsByName: ReadonlyMap<string, readonly DistributedView[]>;
  private readonly indexesByName: ReadonlyMap<string, readonly { schema: string; table: number }[]>;

  constructor(
    readonly data: CatalogData,
    readonly version: number,
  ) {
    this.nodes = new Map(data.nodes.map((node) => [node.id, node]));
    this.functions = {
      volatile: new Set(data.functions.volatile),
      stable: new Set(data.functions.stable),
      aggregates: new Set(data.functions.aggregates),
      shellReaders: new Map(data.functions.shellReaders ?? []),
    };
    this.viewsByOid = new Map((data.views ?? []).map((view) => [view.oid, view]));
    const viewsByName = new Map<string, DistributedView[]>();
    for (const view of data.views ?? []) viewsByName.set(view.name, [...(viewsByName.get(view.name) ?? []), view]);
    this.viewsByName = viewsByName;
    this.byOidMap = new Map(data.tables.map((table) => [table.oid, table]));
    const byName = new Map<string, DistributedTable[]>();
    for (const table of data.tables) byName.set(table.name, [...(byName.get(table.name) ?? []), table]);
    this.byName = byName;
    this.byShard = new Map(data.tables.flatMap((table) => table.shards.map((shard) => [shard.id, table] as const)));
    const indexes = new Map<string, { schema: string; table: number }[]>();
    for (const index of data.indexes) {
      indexes.set(index.name, [...(indexes.get(index.name) ?? []), { schema: index.schema, table: index.table }]);
    }
    this.indexesByName = indexes;
  }

  get tables(): Iterable<DistributedTable> {
    return this.byOidMap.values();
  }

  resolve(schema: string | undefined, name: string): DistributedTable | undefined {
    const candidates = this.byName.get(name);
    if (!candidates) return undefined;
    if (schema !== undefined) return candidates.find((table) => table.schema === schema);
    return candidates.length === 1 ? candidates[0] : (candidates.find((t) => t.schema === "public") ?? candidates[0]);
  }

  indexTable(schema: string | undefined, name: string): DistributedTable | undefined {
    const found = (this.indexesByName.get(name) ?? []).filter(
      (index) => schema === undefined || index.schema === schema,
    );
    return found[0] === undefined ? undefined : this.byOidMap.get(found[0].table);
  }

  shardTable(shardId: number): DistributedTable | undefined {
    return this.byShard.get(shardId);
  }

  byOid(oid: number): DistributedTable | undefined {
    return this.byOidMap.get(oid);
  }

  resolveView(schema: string | undefined, name: string): DistributedView | undefined {
    const candidates = this.viewsByName.get(name);
    if (!candidates) return undefined;
    if (schema !== undefined) return candidates.find((view) => view.schema === schema);
    return candidates.find((view) => view.schema === "public") ?? candidates[0];
  }

  viewByOid(oid: number): DistributedView | undefined {
    return this.viewsByOid.get(oid);
  }

  get views(): Iterable<DistributedView> {
    return this.viewsByOid.values();
  }
}
