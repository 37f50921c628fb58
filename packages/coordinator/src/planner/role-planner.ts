import { Defaults, HerdError, SqlState } from "@herd/shared";
import { Refuse } from "../executor/primitives/refuse.js";
import { RoleDdl } from "../executor/primitives/role-ddl.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, deparse, names } from "../parser/ast.js";

/** Statements that change roles: the workers' roles must follow (role-sync.ts). */
const ROLE_STATEMENTS = new Set(["CreateRoleStmt", "AlterRoleStmt", "DropRoleStmt", "GrantRoleStmt"]);
/** Statements that change what roles own or hold on every server: they run on each worker too. */
const SERVER_STATEMENTS = new Set(["DropOwnedStmt", "ReassignOwnedStmt"]);

/**
 * Role statements, and changes of the privileges of schemas that hold distributed tables, run on
 * the coordinator and every active worker (RoleDdl); undefined for any other statement. The SQL user `postgres` is herd's: its password is the cluster's SQL password
 * (HERD_PASSWORD, the chart's auth.password), not one PostgreSQL holds, so changing it in SQL is
 * refused with a hint instead of locking herd out of its own servers.
 */
export function planRoleStatement(
  type: string,
  node: AnyNode,
  statement: AnyNode,
  catalog: CatalogSnapshot,
): RoleDdl | Refuse | undefined {
  const renamesRole = type === "RenameStmt" && node.renameType === "OBJECT_ROLE";
  const schemaPrivileges = changesSchemaPrivileges(type, node, catalog);
  if (!ROLE_STATEMENTS.has(type) && !SERVER_STATEMENTS.has(type) && !renamesRole && !schemaPrivileges) return undefined;
  if (type === "AlterRoleStmt" && changesSuperuserPassword(node)) {
    return new Refuse(
      new HerdError(`the password of "${Defaults.superuser}" is the cluster's SQL password`, {
        sqlState: SqlState.featureNotSupported,
        hint: "Set HERD_PASSWORD (or the chart's auth.password) and restart the coordinator.",
      }),
    );
  }
  const workers = [...catalog.nodes.values()].filter((worker) => worker.state === "active");
  return new RoleDdl(workers, SERVER_STATEMENTS.has(type) || renamesRole ? deparse(statement) : undefined);
}

/** GRANT/REVOKE on, or ALTER … OWNER of, a schema that holds distributed tables (schema-sync.ts). */
function changesSchemaPrivileges(type: string, node: AnyNode, catalog: CatalogSnapshot): boolean {
  let schemas: string[] = [];
  if (type === "GrantStmt" && node.objtype === "OBJECT_SCHEMA") schemas = names(node.objects);
  else if (type === "AlterOwnerStmt" && node.objectType === "OBJECT_SCHEMA") schemas = names([node.object]);
  if (schemas.length === 0) return false;
  return [...catalog.tables].some((table) => schemas.includes(table.schema));
}

function changesSuperuserPassword(node: AnyNode): boolean {
  const role = node.role as AnyNode | undefined;
  const named = role?.roletype === "ROLESPEC_CSTRING" ? role.rolename : undefined;
  const options = (node.options ?? []) as AnyNode[];
  return named === Defaults.superuser && options.some((option) => option.DefElem?.defname === "password");
}
