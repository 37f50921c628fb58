import { isHerdError } from "@herd/shared";
import type { PgConnection } from "../connection/pg-connection.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, parseStatements } from "../parser/ast.js";
import { planStatement } from "../planner/plan-statement.js";
import { CollectingSink } from "./collecting-sink.js";
import { describingPort } from "./fake-port.js";

/**
 * EXPLAIN of `sql` planned and described in-process, as the cluster answers it through the SQL
 * port: the plan's lines, or `ERROR <sqlstate>: <message>`. No server is reached but `backend`
 * (a PostgreSQL holding the tables' definitions), and only by a merge asking for types.
 */
export async function explainInProcess(sql: string, catalog: CatalogSnapshot, backend?: PgConnection): Promise<string> {
  const statement = parseStatements(`EXPLAIN ${sql}`)[0] as AnyNode;
  const sink = new CollectingSink();
  try {
    const plan = planStatement(statement, catalog);
    await plan.execute(
      describingPort(backend),
      { sql, statement, parameterTypes: [], bind: undefined, describe: true },
      sink,
    );
  } catch (error) {
    if (!isHerdError(error)) throw error;
    return `ERROR ${error.sqlState}: ${error.message}`;
  }
  return sink.rows.map((row) => row[0]).join("\n");
}
