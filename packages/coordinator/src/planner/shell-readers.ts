import type { HerdError } from "@herd/shared";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, as, names, unwrap, walk } from "../parser/ast.js";
import { PlannerErrors } from "./planner-errors.js";

/**
 * Statements that would make the coordinator's PostgreSQL read the empty shell of a distributed
 * table without herd knowing: a call of a SQL or PL/pgSQL function whose body reads one (the
 * catalog's `shellReaders`), a DO block that names one. Refused, naming the function, instead of
 * answering from the shell. (Views are planned by herd instead: view-inlining.ts.)
 */
export function shellReadProblem(statement: AnyNode, catalog: CatalogSnapshot): HerdError | undefined {
  const readers = catalog.functions.shellReaders;
  const [type, node] = unwrap(statement) ?? ["", {}];
  if (type === "DoStmt") {
    const body = ((node.args ?? []) as unknown[]).map((arg) => as(arg, "DefElem")).find((arg) => arg?.defname === "as")
      ?.arg?.String?.sval as string | undefined;
    const table = body === undefined ? undefined : namedTable(body, catalog);
    return table === undefined
      ? undefined
      : PlannerErrors.notSupported(
          `a DO block that reads the distributed table ${table}`,
          "The coordinator's PostgreSQL holds only empty shells of distributed tables; send the block's statements to herd one by one.",
        );
  }
  if (readers.size === 0) return undefined;
  let problem: HerdError | undefined;
  walk(node, (child, key) => {
    if (problem || key !== "FuncCall") return !problem;
    const name = names(child.funcname).at(-1) as string;
    const reads = readers.get(name);
    if (reads !== undefined) {
      problem = PlannerErrors.notSupported(
        `calling ${name}(), which reads the distributed table ${reads}`,
        "The coordinator's PostgreSQL holds only empty shells of distributed tables and would run the function on them. Send its query to herd directly, or make it a view (herd plans views over distributed tables).",
      );
    }
    return undefined;
  });
  return problem;
}

/** Whether a CREATE FUNCTION's body names a distributed table or a view of one. */
export function functionReadsDistributed(node: AnyNode, catalog: CatalogSnapshot): boolean {
  const body = ((node.options ?? []) as unknown[])
    .map((option) => as(option, "DefElem"))
    .filter((option) => option?.defname === "as")
    .flatMap((option) => ((option?.arg?.List?.items ?? []) as AnyNode[]).map((item) => item.String?.sval as string));
  // a BEGIN ATOMIC / RETURN body comes parsed: the relations it names
  walk(node.sql_body, (child, key) => {
    if (key === "RangeVar" && typeof child.relname === "string") body.push(child.relname);
    return undefined;
  });
  return namedTable(body.join(" "), catalog) !== undefined;
}

/** The first distributed table or view of one that `text` names as a word. */
function namedTable(text: string, catalog: CatalogSnapshot): string | undefined {
  const words = new Set(text.toLowerCase().match(/[\p{L}_][\p{L}\p{N}_$]*/gu) ?? []);
  for (const table of catalog.tables) if (words.has(table.name)) return table.name;
  for (const view of catalog.views) if (words.has(view.name)) return view.name;
  return undefined;
}
