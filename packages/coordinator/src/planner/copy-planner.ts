import type { HerdError } from "@herd/shared";
import { type CopyFormat, TEXT_FORMAT } from "../copy/copy-rows.js";
import { Copy } from "../executor/primitives/copy.js";
import { CopyOut } from "../executor/primitives/copy-out.js";
import { MergeRoute } from "../executor/primitives/merge-route.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { Refuse } from "../executor/primitives/refuse.js";
import { Route } from "../executor/primitives/route.js";
import { ShardStatements } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse, parseStatements } from "../parser/ast.js";
import { PlannerErrors } from "./planner-errors.js";

/**
 * COPY … FROM STDIN into a distributed or reference table: the client's format, and the COPY
 * each shard runs (its columns listed, HEADER left out: herd skips the header line itself).
 */
export function planCopy(copy: AnyNode, catalog: CatalogSnapshot): Copy | Refuse {
  const table = copy.relation ? catalog.resolve(copy.relation.schemaname, copy.relation.relname) : undefined;
  if (!table) return new Refuse(PlannerErrors.notSupported("COPY FROM with a query"));
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

/**
 * COPY … TO STDOUT of a distributed or reference table, or of a query that reads them: the
 * query (`SELECT <columns> FROM <table>` for the table form) is planned as any SELECT (`plan`);
 * its shard groups then run the client's COPY of their part (primitives/copy-out.ts), or its
 * merge does. Undefined when the COPY reads no distributed table (it runs locally as is).
 */
export function planCopyTo(
  copy: AnyNode,
  catalog: CatalogSnapshot,
  plan: (statement: AnyNode) => Primitive,
): Primitive | undefined {
  let query = copy.query as AnyNode | undefined;
  if (!query) {
    const table = copy.relation ? catalog.resolve(copy.relation.schemaname, copy.relation.relname) : undefined;
    if (!table) return undefined;
    const columns = copy.attlist
      ? (copy.attlist as unknown[]).map((item) => (item as AnyNode).String.sval as string)
      : table.columns.filter((column) => !column.generated).map((column) => column.name);
    query = {
      SelectStmt: {
        targetList: columns.map((name) => ({
          ResTarget: { val: { ColumnRef: { fields: [{ String: { sval: name } }] } } },
        })),
        fromClause: [{ RangeVar: { ...copy.relation, inh: false } }],
        limitOption: "LIMIT_OPTION_DEFAULT",
        op: "SETOP_NONE",
      },
    };
  }
  const inner = plan(query);
  if (inner.kind === "local") return undefined;
  if (copy.is_program || copy.filename) {
    return new Refuse(
      PlannerErrors.notSupported(
        "COPY TO a file or program from distributed tables",
        "Use COPY … TO STDOUT (psql: \\copy).",
      ),
    );
  }
  if (inner.kind === "refuse") return inner;
  const route = inner instanceof Route ? inner : inner instanceof MergeRoute ? inner.route : undefined;
  if (!route) {
    return new Refuse(
      PlannerErrors.notSupported(
        "COPY TO STDOUT of a query that herd runs in several steps (subqueries or joins it plans recursively)",
        "Run the query as a SELECT, or COPY a query that joins colocated tables on their distribution columns.",
      ),
    );
  }
  const options = ((copy.options ?? []) as unknown[]).filter((option) => as(option, "DefElem")?.defname !== "header");
  const header = ((copy.options ?? []) as unknown[]).length !== options.length;
  const binary =
    copyOptions((copy.options ?? []) as unknown[])
      .get("format")
      ?.toLowerCase() === "binary";
  const wrap = (withOptions: unknown[]) => {
    const base = route.spec.statements;
    const tree = {
      CopyStmt: { query: base.tree, is_from: false, ...(withOptions.length > 0 ? { options: withOptions } : {}) },
    };
    const mentions = base.mentions.map((mention) => ({ ...mention, path: ["CopyStmt", "query", ...mention.path] }));
    return new ShardStatements(tree, mentions);
  };
  return new CopyOut({
    route,
    merge: inner instanceof MergeRoute ? inner : undefined,
    copy: wrap(options),
    header: header ? wrap((copy.options ?? []) as unknown[]) : undefined,
    copyOf: (combine) =>
      deparse({
        CopyStmt: {
          query: parseStatements(combine)[0],
          is_from: false,
          ...(copy.options ? { options: copy.options } : {}),
        },
      }),
    binary,
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

/** A COPY statement's options by name (`format`, `header`, …), each with its value's text, if any. */
function copyOptions(options: unknown[]): Map<string, string | undefined> {
  const values = new Map<string, string | undefined>();
  for (const option of options) {
    const element = as(option, "DefElem");
    if (element) values.set(element.defname as string, as(element.arg, "String")?.sval as string | undefined);
  }
  return values;
}

function copyFormat(options: unknown[]): CopyFormat | HerdError {
  const values = copyOptions(options);
  const text = (name: string) => values.get(name);
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
