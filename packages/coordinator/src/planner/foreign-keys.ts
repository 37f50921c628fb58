import { HerdError, SqlState } from "@herd/shared";
import { KeyToDistributed } from "../executor/primitives/key-to-distributed.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as, names } from "../parser/ast.js";

/** The referencing side of a foreign key: a distributed or reference table, or one being made so. */
export type ForeignKeyOwner = Pick<
  DistributedTable,
  "schema" | "name" | "kind" | "distributionColumn" | "colocationId"
>;

/** Actions that would change a referencing row's distribution column (moving it to another shard). */
const KEY_CHANGING_ACTIONS = new Set(["c", "n", "d"]);

/**
 * What herd (as Citus) refuses of a foreign key whose referencing table is `table`. Each
 * placement enforces the key against the referenced rows on its own worker, which is exact in
 * two cases only: the referenced table is a reference table (every worker has all of it), or it
 * is a hash table colocated with `table` whose distribution column the key maps to `table`'s (the
 * referenced row then lives in the same shard group). `constraint` is a Constraint node
 * (CONSTR_FOREIGN), from CREATE TABLE, ALTER TABLE … ADD, or a shell's definition.
 */
export function foreignKeyProblem(
  constraint: AnyNode,
  table: ForeignKeyOwner,
  catalog: CatalogSnapshot,
): HerdError | undefined {
  const target = constraint.pktable as AnyNode;
  const self = target.relname === table.name && (target.schemaname ?? table.schema) === table.schema;
  const referenced: ForeignKeyOwner | undefined = self ? table : catalog.resolve(target.schemaname, target.relname);
  if (!referenced) {
    return new HerdError(`referenced table "${target.relname}" must be a distributed table or a reference table`, {
      sqlState: SqlState.invalidTableDefinition,
      detail: "To enforce foreign keys, the referencing and referenced rows need to be stored on the same node.",
      hint: `You could use SELECT create_reference_table('${target.relname}') to replicate the referenced table to all nodes or consider dropping the foreign key`,
    });
  }
  if (referenced.kind === "reference") return undefined;
  if (table.kind === "reference") {
    return new HerdError(
      `cannot create foreign key constraint from the reference table "${table.name}" to the distributed table "${referenced.name}"`,
      {
        sqlState: SqlState.featureNotSupported,
        detail: "A reference table's copy on each worker cannot see the distributed rows on the other workers.",
      },
    );
  }
  if (!self && referenced.colocationId !== table.colocationId) return notColocated();
  const referencing = names(constraint.fk_attrs);
  const referencedColumns = names(constraint.pk_attrs);
  const position = referencing.indexOf(table.distributionColumn ?? "");
  const mapsKeys =
    position >= 0 &&
    (referencedColumns.length === 0
      ? referencing.length === 1
      : referencedColumns[position] === referenced.distributionColumn);
  if (!mapsKeys) return notColocated();
  if (KEY_CHANGING_ACTIONS.has(constraint.fk_del_action) && constraint.fk_del_action !== "c") {
    return new HerdError(
      "SET NULL or SET DEFAULT is not supported in ON DELETE operation when distribution key is included in the foreign constraint",
      { sqlState: SqlState.featureNotSupported },
    );
  }
  if (KEY_CHANGING_ACTIONS.has(constraint.fk_upd_action)) {
    return new HerdError(
      "SET NULL, SET DEFAULT or CASCADE is not supported in ON UPDATE operation when distribution key included in the foreign constraint",
      { sqlState: SqlState.featureNotSupported },
    );
  }
  return undefined;
}

function notColocated(): HerdError {
  return new HerdError(
    "cannot create foreign key constraint since relations are not colocated or not referencing a reference table",
    {
      sqlState: SqlState.featureNotSupported,
      detail:
        "A distributed table can only have foreign keys if it is referencing another colocated hash distributed table (on the distribution column, at the same position in both column lists) or a reference table",
    },
  );
}

/**
 * ALTER TABLE of an ordinary table that adds a foreign key to a distributed or reference table
 * (Knex writes every key so, after its CREATE TABLE): KeyToDistributed runs it on the
 * coordinator. Undefined for any other statement.
 */
export function planKeyToDistributed(node: AnyNode, catalog: CatalogSnapshot): KeyToDistributed | undefined {
  const relation = node.relation as AnyNode | undefined;
  if (!relation || catalog.resolve(relation.schemaname, relation.relname)) return undefined;
  for (const item of (node.cmds ?? []) as unknown[]) {
    const cmd = as(item, "AlterTableCmd");
    const constraint = cmd?.subtype === "AT_AddConstraint" ? as(cmd.def, "Constraint") : undefined;
    const pktable = constraint?.contype === "CONSTR_FOREIGN" ? (constraint.pktable as AnyNode) : undefined;
    const referenced = pktable && catalog.resolve(pktable.schemaname, pktable.relname);
    if (referenced) return new KeyToDistributed(relation, referenced.name);
  }
  return undefined;
}
