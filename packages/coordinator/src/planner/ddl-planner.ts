import { HerdError, SqlState } from "@herd/shared";
import { ExecutionErrors } from "../executor/execution-errors.js";
import { Ddl } from "../executor/primitives/ddl.js";
import { Refuse } from "../executor/primitives/refuse.js";
import { renameToShards } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import {
  type DistributedTable,
  isSuffixedConstraint,
  isSuffixedConstraintKind,
  shardName,
  shardOf,
  shardSuffixed,
} from "../metadata/catalog-types.js";
import type { DdlChange } from "../operations/distributed-ddl.js";
import { type AnyNode, as, deparse, names, unwrap, walk } from "../parser/ast.js";
import { foreignKeyProblem } from "./foreign-keys.js";
import { PlannerErrors } from "./planner-errors.js";
import { tableMentions } from "./relations.js";
import { analyzeStatement } from "./semantics/analyze.js";

/**
 * DDL on distributed and reference tables: CREATE INDEX, ALTER TABLE, ALTER INDEX … RENAME,
 * DROP TABLE, DROP INDEX, TRUNCATE. The command runs on the shell table and on every shard
 * placement, all or nothing (see executor/distributed-ddl.ts). Returns undefined when the
 * command touches no distributed table.
 */
export function planDdl(
  type: string,
  node: AnyNode,
  statement: AnyNode,
  catalog: CatalogSnapshot,
): Ddl | Refuse | undefined {
  switch (type) {
    case "IndexStmt": {
      const table = catalog.resolve(node.relation.schemaname, node.relation.relname);
      if (!table) return undefined;
      if (node.unique && table.distributionColumn) {
        const columns = (node.indexParams as unknown[]).map((param) => as(param, "IndexElem")?.name);
        if (!columns.includes(table.distributionColumn)) {
          return error(
            new HerdError("creating unique indexes on non-partition columns is currently unsupported", {
              sqlState: SqlState.featureNotSupported,
            }),
          );
        }
      }
      return ddl(statement, [table], "alter", catalog);
    }
    case "AlterTableStmt": {
      const relation = node.relation as AnyNode;
      const table =
        node.objtype === "OBJECT_INDEX"
          ? catalog.indexTable(relation.schemaname, relation.relname)
          : catalog.resolve(relation.schemaname, relation.relname);
      if (!table) return undefined;
      for (const cmd of (node.cmds ?? []) as unknown[]) {
        const problem = alterProblem(as(cmd, "AlterTableCmd") as AnyNode, table, catalog);
        if (problem) return error(problem);
      }
      return ddl(statement, [table], "alter", catalog);
    }
    case "RenameStmt": {
      const relation = node.relation as AnyNode | undefined;
      if (!relation) return undefined;
      const table =
        node.renameType === "OBJECT_INDEX"
          ? catalog.indexTable(relation.schemaname, relation.relname)
          : catalog.resolve(relation.schemaname, relation.relname);
      if (!table) return undefined;
      if (node.renameType === "OBJECT_COLUMN" && node.subname === table.distributionColumn) {
        return error(PlannerErrors.notSupported("renaming the distribution column"));
      }
      return ddl(statement, [table], "alter", catalog);
    }
    case "DropStmt": {
      const objects = ((node.objects ?? []) as unknown[]).map((object) => names(as(object, "List")?.items));
      const resolve = (parts: string[]) => {
        const [schema, name] =
          parts.length > 1 ? [parts.at(-2), parts.at(-1) as string] : [undefined, parts[0] as string];
        return node.removeType === "OBJECT_INDEX" ? catalog.indexTable(schema, name) : catalog.resolve(schema, name);
      };
      if (node.removeType !== "OBJECT_TABLE" && node.removeType !== "OBJECT_INDEX") return undefined;
      const tables = objects.map(resolve).filter((table) => table !== undefined);
      if (tables.length === 0) return undefined;
      return ddl(
        statement,
        [...new Set(tables)],
        node.removeType === "OBJECT_TABLE" ? "drop-tables" : "drop-indexes",
        catalog,
      );
    }
    case "TruncateStmt": {
      const tables = analyzeStatement(statement, catalog)
        .relations.map((ref) => ref.table)
        .filter((table) => table !== undefined);
      return tables.length === 0 ? undefined : ddl(statement, [...new Set(tables)], "truncate", catalog);
    }
  }
  return undefined;
}

/**
 * The change as the executor runs it: the shell's command (CREATE and DROP INDEX CONCURRENTLY
 * cannot run inside the transactions that make DDL atomic, so they lose CONCURRENTLY) and each shard's.
 */
function ddl(tree: AnyNode, tables: DistributedTable[], action: DdlChange["action"], catalog: CatalogSnapshot): Ddl {
  const statement = withoutConcurrently(tree);
  const shardCommands = tables.flatMap((table) =>
    table.shards.map((shard) => ({
      table,
      index: shard.index,
      sql: shardCommand(action, statement, table, shard.index, catalog),
    })),
  );
  return new Ddl({
    tables,
    action,
    shellSql: deparse(statement),
    concurrently:
      statement === tree ? undefined : tree.DropStmt ? "DROP INDEX CONCURRENTLY" : "CREATE INDEX CONCURRENTLY",
    shardCommands,
    workers: catalog.nodes,
  });
}

function error(problem: HerdError): Refuse {
  return new Refuse(problem);
}

function withoutConcurrently(tree: AnyNode): AnyNode {
  const [type, node] = unwrap(tree) as [string, AnyNode];
  if ((type !== "IndexStmt" && type !== "DropStmt") || !node.concurrent) return tree;
  const copy = structuredClone(tree);
  copy[type].concurrent = false;
  return copy;
}

/** What shard `index` of `table` runs: DROP and TRUNCATE of the shard itself, or the command renamed. */
function shardCommand(
  action: DdlChange["action"],
  tree: AnyNode,
  table: DistributedTable,
  index: number,
  catalog: CatalogSnapshot,
): string {
  const shard = shardOf(table, index);
  const behavior = (unwrap(tree)?.[1].behavior as string | undefined) ?? "DROP_RESTRICT";
  if (action === "drop-tables") {
    return deparse({
      DropStmt: {
        objects: [
          { List: { items: [{ String: { sval: table.schema } }, { String: { sval: shardName(table, shard.id) } }] } },
        ],
        removeType: "OBJECT_TABLE",
        behavior,
        missing_ok: true,
      },
    });
  }
  if (action === "truncate") {
    return deparse({
      TruncateStmt: {
        relations: [
          {
            RangeVar: { schemaname: table.schema, relname: shardName(table, shard.id), inh: true, relpersistence: "p" },
          },
        ],
        restart_seqs: tree.TruncateStmt.restart_seqs ?? false,
        behavior,
      },
    });
  }
  return shardDdl(tree, catalog, table, index);
}

/** What Citus refuses in ALTER TABLE on a distributed table. */
function alterProblem(cmd: AnyNode, table: DistributedTable, catalog: CatalogSnapshot): HerdError | undefined {
  const column = table.distributionColumn;
  if ((cmd.subtype === "AT_AlterColumnType" || cmd.subtype === "AT_DropColumn") && column && cmd.name === column) {
    return new HerdError("cannot execute ALTER TABLE command involving partition column", {
      sqlState: SqlState.featureNotSupported,
    });
  }
  const constraint = as(cmd.def, "Constraint");
  if (cmd.subtype !== "AT_AddConstraint" || !constraint) return undefined;
  if ((constraint.contype === "CONSTR_PRIMARY" || constraint.contype === "CONSTR_UNIQUE") && column) {
    if (!names(constraint.keys).includes(column)) return ExecutionErrors.constraintWithoutPartitionColumn(table.name);
  }
  if (constraint.contype === "CONSTR_FOREIGN") return foreignKeyProblem(constraint, table, catalog);
  return undefined;
}

/**
 * The command as shard `index` of `table` runs it: tables renamed to their shards (a foreign
 * key's referenced table to the colocated shard, or a reference table's one shard), and the
 * names PostgreSQL wants unique per schema — indexes and the constraints that own one — given
 * the shard's id as suffix, as Citus names them (`events_pkey_102008`).
 */
function shardDdl(tree: AnyNode, catalog: CatalogSnapshot, table: DistributedTable, index: number): string {
  const copy = structuredClone(tree);
  const shardId = shardOf(table, index).id;
  const [type, node] = unwrap(copy) as [string, AnyNode];
  const isIndexCommand =
    (type === "AlterTableStmt" && node.objtype === "OBJECT_INDEX") ||
    (type === "RenameStmt" && node.renameType === "OBJECT_INDEX");
  if (isIndexCommand) node.relation.relname = shardSuffixed(node.relation.relname, shardId);
  else renameToShards(copy, tableMentions(analyzeStatement(copy, catalog).relations, false), index);
  const suffixedConstraint = (name: string) =>
    table.constraints.some((c) => c.name === name && isSuffixedConstraint(c.type))
      ? shardSuffixed(name, shardId)
      : name;
  walk(copy, (child, key) => {
    if (key === "IndexStmt" && child.idxname) child.idxname = shardSuffixed(child.idxname, shardId);
    if (key === "Constraint" && child.conname && isSuffixedConstraintKind(child.contype)) {
      child.conname = shardSuffixed(child.conname, shardId);
    }
    if (key === "Constraint" && child.indexname) child.indexname = shardSuffixed(child.indexname, shardId);
    if (key === "AlterTableCmd" && child.subtype === "AT_DropConstraint") child.name = suffixedConstraint(child.name);
    return undefined;
  });
  if (type === "RenameStmt") {
    if (node.renameType === "OBJECT_TABLE") node.newname = shardSuffixed(node.newname, shardId);
    if (node.renameType === "OBJECT_INDEX") node.newname = shardSuffixed(node.newname, shardId);
    if (node.renameType === "OBJECT_TABCONSTRAINT") {
      const suffixed = suffixedConstraint(node.subname);
      if (suffixed !== node.subname) node.newname = shardSuffixed(node.newname, shardId);
      node.subname = suffixed;
    }
  }
  if (type === "DropStmt" && node.removeType === "OBJECT_INDEX") {
    node.objects = (node.objects as unknown[])
      .filter((object) => {
        const parts = names(as(object, "List")?.items);
        return catalog.indexTable(parts.length > 1 ? parts.at(-2) : undefined, parts.at(-1) as string) === table;
      })
      .map((object) => {
        const items = as(object, "List")?.items as AnyNode[];
        const last = items.at(-1) as AnyNode;
        return {
          List: { items: [...items.slice(0, -1), { String: { sval: shardSuffixed(last.String.sval, shardId) } }] },
        };
      });
  }
  return deparse(copy);
}
