import { shardIndexForHash } from "@herd/shared";
import { ResultCollector } from "../../connection/pg-connection.js";
import type { Catalog } from "../../metadata/catalog.js";
import { shardName } from "../../metadata/catalog-types.js";
import { type AnyNode, as, deparse } from "../../parser/ast.js";
import { valueSource } from "../../planner/distribution-value.js";
import type { InsertPlan } from "../../planner/plan.js";
import { PlannerErrors } from "../../planner/planner-errors.js";
import { renameRelations } from "../../planner/relations.js";
import { shardOf } from "../../planner/route-planner.js";
import { encodeCommandComplete } from "../../protocol/backend-messages.js";
import type { BindMessage } from "../../protocol/frontend-messages.js";
import { backendRequest } from "../backend-request.js";
import type { SessionContext, StatementRun } from "../execution-port.js";
import { runShardTasks, type ShardTaskDeps } from "../fan-out.js";
import { activeNodes, hashOf } from "../shard-selection.js";
import { castNode, expressionNode, literalNode, nullNode } from "../sql-nodes.js";
import type { Primitive } from "./primitive.js";

/**
 * INSERT … VALUES into a distributed or reference table: rows grouped by shard, each group one
 * INSERT on every active placement of its shard (all committed together, see runShardTasks).
 *
 * Values the coordinator cannot know without running them (DEFAULT, defaults of left-out
 * columns, now(), nextval(), and parameters of a multi-row INSERT spanning shards) are computed
 * first, once, by the coordinator's PostgreSQL, as `VALUES (CAST(expr AS type), …)`, so a
 * sequence advances once per row and both replicas store the same value; the rows then go to the
 * shards as literals.
 */
export class DistributedInsert implements Primitive {
  constructor(
    private readonly plan: InsertPlan,
    private readonly catalog: Catalog,
  ) {}

  async execute(run: StatementRun, session: SessionContext, deps: ShardTaskDeps): Promise<void> {
    const { plan } = this;
    let columns = plan.columns;
    let rows: readonly (readonly AnyNode[])[] = plan.rows;
    let bind = run.bind;
    let groups = plan.needsEvaluation ? undefined : this.groupByShard(rows, bind);
    if (!groups || (groups.size > 1 && (run.bind?.parameters.length ?? 0) > 0)) {
      const evaluated = await this.evaluate(run, session);
      columns = evaluated.columns;
      rows = evaluated.rows;
      bind = bind && { ...bind, parameterFormats: [], parameters: [] };
      groups = this.groupByShard(rows, undefined, columns.indexOf(plan.table.distributionColumn ?? ""));
    }
    const tasks = [...groups].map(([index, groupRows]) => {
      const copy = structuredClone(plan.tree);
      const insert = copy.InsertStmt as AnyNode;
      insert.cols = columns.map((name) => ({ ResTarget: { name } }));
      insert.selectStmt.SelectStmt.valuesLists = groupRows.map((row) => ({ List: { items: row } }));
      renameRelations(copy, this.catalog, (table) => shardName(table, shardOf(table, index).id), true);
      return { sql: deparse(copy), nodes: activeNodes(shardOf(plan.table, index), this.catalog) };
    });
    const result = await runShardTasks(tasks, { ...run, bind }, session, deps, true);
    encodeCommandComplete(session.output.writer, `INSERT 0 ${result.count}`);
  }

  /** Rows by shard index, in first-seen order of shards. */
  private groupByShard(
    rows: readonly (readonly AnyNode[])[],
    bind: BindMessage | undefined,
    distributionIndex = this.plan.distributionIndex,
  ): Map<number, (readonly AnyNode[])[]> {
    const table = this.plan.table;
    const groups = new Map<number, (readonly AnyNode[])[]>();
    for (const row of rows) {
      let index = 0;
      if (table.kind === "hash") {
        const source = valueSource(row[distributionIndex as number]);
        if (!source) throw PlannerErrors.insertWithoutPartitionValue();
        const hash = hashOf(table.distributionType as number, source, bind);
        if (hash === null) throw PlannerErrors.insertNullPartitionValue();
        index = shardIndexForHash(hash, table.shards.length);
      }
      groups.set(index, [...(groups.get(index) ?? []), row]);
    }
    return groups;
  }

  /** Runs the VALUES rows (with defaults filled in) on the coordinator; returns them as literals. */
  private async evaluate(
    run: StatementRun,
    session: SessionContext,
  ): Promise<{ columns: string[]; rows: AnyNode[][] }> {
    const { table } = this.plan;
    const columnOf = new Map(table.columns.map((column) => [column.name, column]));
    const defaulted = table.columns.filter(
      (column) => !column.generated && column.defaultExpr !== undefined && !this.plan.columns.includes(column.name),
    );
    const columns = [...this.plan.columns, ...defaulted.map((column) => column.name)];
    const valuesLists = this.plan.rows.map((row) => {
      const items = row.map((value, i) => {
        const column = columnOf.get(this.plan.columns[i] as string);
        const expr = as(value, "SetToDefault")
          ? column?.defaultExpr
            ? expressionNode(column.defaultExpr)
            : nullNode()
          : value;
        return castNode(expr, column?.typeName ?? "text");
      });
      for (const column of defaulted)
        items.push(castNode(expressionNode(column.defaultExpr as string), column.typeName));
      return { List: { items } };
    });
    const sql = deparse({ SelectStmt: { valuesLists, limitOption: "LIMIT_OPTION_DEFAULT", op: "SETOP_NONE" } });
    const request = backendRequest({
      sql,
      statement: {},
      parameterTypes: run.parameterTypes,
      bind: run.bind && { ...run.bind, resultFormats: [] },
      describe: false,
    });
    const collector = new ResultCollector();
    await session.backend.exchange(request, collector);
    const result = collector.result();
    const rows = result.rows.map((values) =>
      values.map((value, i) =>
        literalNode(
          value === null ? null : value.toString("utf8"),
          columnOf.get(columns[i] as string)?.typeName ?? "text",
        ),
      ),
    );
    return { columns, rows };
  }

  describe(): string {
    return `Insert into ${this.plan.table.name}${this.plan.needsEvaluation ? " (values evaluated on the coordinator)" : ""}`;
  }

  inputs(): readonly Primitive[] {
    return [];
  }
}
