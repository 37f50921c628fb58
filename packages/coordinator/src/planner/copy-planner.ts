import type { HerdError } from "@herd/shared";
import { type CopyFormat, TEXT_FORMAT } from "../copy/copy-rows.js";
import { Copy } from "../executor/primitives/copy.js";
import { Refuse } from "../executor/primitives/refuse.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse } from "../parser/ast.js";
import { PlannerErrors } from "./planner-errors.js";

/**
 * COPY … FROM STDIN into a distributed or reference table: the client's format, and the COPY
 * each shard runs (its columns listed, HEADER left out: herd skips the header line itself).
 */
export function planCopy(copy: AnyNode, catalog: CatalogSnapshot): Copy | Refuse {
  const table = copy.relation ? catalog.resolve(copy.relation.schemaname, copy.relation.relname) : undefined;
  if (!table || !copy.is_from)
    return new Refuse(
      PlannerErrors.notSupported(
        "COPY TO on distributed tables",
        "Use COPY (SELECT …) TO STDOUT with a filter on the distribution column.",
      ),
    );
  if (copy.is_program || copy.filename)
    return new Refuse(
      PlannerErrors.notSupported("COPY FROM a file into distributed tables", "Use COPY … FROM STDIN (psql: \\copy)."),
    );
  const columns = copy.attlist
    ? (copy.attlist as unknown[]).map((item) => (item as AnyNode).String.sval as string)
    : table.columns.filter((column) => !column.generated).map((column) => column.name);
  const format = copyFormat((copy.options ?? []) as unknown[]);
  if (!("csv" in format)) return new Refuse(format);
  return new Copy({
    table,
    columns,
    format,
    shardStatements: table.shards.map((shard) => shardCopy(copy, columns, table, shardName(table, shard.id))),
    workers: catalog.nodes,
  });
}

function shardCopy(copy: AnyNode, columns: readonly string[], table: DistributedTable, shard: string): string {
  const statement = structuredClone(copy);
  statement.relation = { schemaname: table.schema, relname: shard, inh: true, relpersistence: "p" };
  statement.attlist = columns.map((name) => ({ String: { sval: name } }));
  statement.options = ((statement.options ?? []) as unknown[]).filter(
    (option) => as(option, "DefElem")?.defname !== "header",
  );
  if (statement.options.length === 0) delete statement.options;
  return deparse({ CopyStmt: statement });
}

function copyFormat(options: unknown[]): CopyFormat | HerdError {
  const values = new Map<string, AnyNode | undefined>();
  for (const option of options) {
    const element = as(option, "DefElem");
    if (element) values.set(element.defname as string, element.arg as AnyNode | undefined);
  }
  const text = (name: string) => {
    const arg = values.get(name);
    return (as(arg, "String")?.sval as string | undefined) ?? undefined;
  };
  const format = text("format")?.toLowerCase();
  if (format === "binary") return PlannerErrors.notSupported("COPY in binary format into distributed tables");
  const csv = format === "csv";
  const header = values.has("header") && !["false", "off", "0"].includes((text("header") ?? "true").toLowerCase());
  const quote = (text("quote") ?? '"').charCodeAt(0);
  return {
    csv,
    delimiter: (text("delimiter") ?? (csv ? "," : "\t")).charCodeAt(0),
    quote,
    escape: text("escape")?.charCodeAt(0) ?? quote,
    nullText: text("null") ?? (csv ? "" : TEXT_FORMAT.nullText),
    header,
  };
}
