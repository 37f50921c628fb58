import { HerdError, SqlState } from "@herd/shared";
import { Ddl } from "../executor/primitives/ddl.js";
import { Refuse } from "../executor/primitives/refuse.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse, isRangeVar, names, unwrap, walk } from "../parser/ast.js";

/**
 * Privileges and row-level security on distributed and reference tables: GRANT and REVOKE on
 * them (named, or ALL TABLES IN SCHEMA), CREATE/ALTER/DROP POLICY and ALTER POLICY … RENAME. Like
 * other DDL (Ddl), the statement runs on the shell, where the coordinator's PostgreSQL checks the
 * session may make it, then on every placement of each table it names, all or nothing: a shard
 * holds the same privileges and policies as its shell, and the worker, where statements run as
 * the session's role, enforces them. (ENABLE/FORCE ROW LEVEL SECURITY and OWNER TO are ALTER
 * TABLE, which ddl-planner.ts carries.) Undefined when the statement is of another kind or names
 * no distributed table.
 */
export function planSecurityDdl(
  type: string,
  node: AnyNode,
  statement: AnyNode,
  catalog: CatalogSnapshot,
): Ddl | Refuse | undefined {
  switch (type) {
    case "GrantStmt": {
      if (node.objtype !== "OBJECT_TABLE") return undefined;
      const tables = grantedTables(node, catalog);
      if (tables.length === 0) return undefined;
      return perShard(statement, tables, catalog, (copy, table, shard) => {
        const grant = copy.GrantStmt as AnyNode;
        grant.targtype = "ACL_TARGET_OBJECT";
        grant.objects = [shardRangeVar(table, shard)];
      });
    }
    case "CreatePolicyStmt":
    case "AlterPolicyStmt": {
      const table = catalog.resolve(node.table.schemaname, node.table.relname);
      if (!table) return undefined;
      if (readsRelations(node.qual) || readsRelations(node.with_check)) {
        return new Refuse(
          new HerdError("policies on distributed tables whose expressions read other tables are not supported", {
            sqlState: SqlState.featureNotSupported,
            hint: "Write the policy over the table's own columns (and functions such as current_user).",
          }),
        );
      }
      return perShard(statement, [table], catalog, (copy, shardTable, shard) => {
        (unwrap(copy) as [string, AnyNode])[1].table = shardRangeVar(shardTable, shard).RangeVar;
      });
    }
    case "RenameStmt": {
      if (node.renameType !== "OBJECT_POLICY") return undefined;
      const table = catalog.resolve(node.relation.schemaname, node.relation.relname);
      if (!table) return undefined;
      return perShard(statement, [table], catalog, (copy, shardTable, shard) => {
        copy.RenameStmt.relation = shardRangeVar(shardTable, shard).RangeVar;
      });
    }
    case "DropStmt": {
      if (node.removeType !== "OBJECT_POLICY") return undefined;
      const objects = ((node.objects ?? []) as unknown[]).map((object) => names(as(object, "List")?.items));
      const tableOf = (parts: string[]) =>
        parts.length > 2
          ? catalog.resolve(parts.at(-3), parts.at(-2) as string)
          : catalog.resolve(undefined, parts[0] as string);
      const tables = [...new Set(objects.map(tableOf).filter((table) => table !== undefined))];
      if (tables.length === 0) return undefined;
      return perShard(statement, tables, catalog, (copy, table, shard) => {
        copy.DropStmt.objects = objects
          .filter((parts) => tableOf(parts) === table)
          .map((parts) => ({
            List: {
              items: [table.schema, shardName(table, shard), parts.at(-1) as string].map((sval) => ({
                String: { sval },
              })),
            },
          }));
      });
    }
  }
  return undefined;
}

/** The distributed and reference tables a GRANT or REVOKE on tables reaches. */
function grantedTables(node: AnyNode, catalog: CatalogSnapshot): DistributedTable[] {
  if (node.targtype === "ACL_TARGET_ALL_IN_SCHEMA") {
    const schemas = new Set(names(node.objects));
    return [...catalog.tables].filter((table) => schemas.has(table.schema));
  }
  if (node.targtype !== "ACL_TARGET_OBJECT") return [];
  const tables = ((node.objects ?? []) as AnyNode[])
    .map((object) => object.RangeVar as AnyNode | undefined)
    .map((range) => range && catalog.resolve(range.schemaname, range.relname))
    .filter((table) => table !== undefined);
  return [...new Set(tables)];
}

function perShard(
  statement: AnyNode,
  tables: readonly DistributedTable[],
  catalog: CatalogSnapshot,
  retarget: (copy: AnyNode, table: DistributedTable, shardId: number) => void,
): Ddl {
  const shardCommands = tables.flatMap((table) =>
    table.shards.map((shard) => {
      const copy = structuredClone(statement);
      retarget(copy, table, shard.id);
      return { table, index: shard.index, sql: deparse(copy) };
    }),
  );
  return new Ddl({
    tables: [...tables],
    action: "alter",
    shellSql: deparse(statement),
    shardCommands,
    workers: catalog.nodes,
  });
}

function shardRangeVar(table: DistributedTable, shardId: number): AnyNode {
  return { RangeVar: { schemaname: table.schema, relname: shardName(table, shardId), inh: true, relpersistence: "p" } };
}

function readsRelations(expression: AnyNode | undefined): boolean {
  let found = false;
  if (expression)
    walk(expression, (child, key) => {
      if (isRangeVar(child, key)) found = true;
      return found ? false : undefined;
    });
  return found;
}
