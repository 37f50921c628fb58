import { shardIndexForHash } from "@herd/shared";
import { ResultCollector } from "../../connection/pg-connection.js";
import { type DistributedTable, shardOf, type WorkerNode } from "../../metadata/catalog-types.js";
import { type AnyNode, as, deparse } from "../../parser/ast.js";
import type { BindMessage } from "../../protocol/frontend-messages.js";
import { shardLock } from "../../transaction/shard-lock.js";
import { backendRequest } from "../backend-request.js";
import type { ValueSource } from "../distribution-value.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import { runShardTasks } from "../fan-out.js";
import type { ResultSink } from "../result-sink.js";
import { activeNodes, hashOf } from "../shard-selection.js";
import { renameToShards, type TableMention } from "../shard-statements.js";
import { castNode, expressionNode, literalNode, nullNode } from "../sql-nodes.js";
import type { StatementRun } from "../statement-run.js";
import { inWriteTransaction } from "../write-transaction.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";
import { statementParameterTypes } from "./subplans.js";

/** An INSERT … VALUES as the planner read it. */
export interface InsertSpec {
  /** The INSERT statement; its column list and VALUES are replaced per shard. */
  readonly tree: AnyNode;
  /** Where it names distributed or reference tables (outside VALUES), to rename per shard. */
  readonly mentions: readonly TableMention[];
  readonly table: DistributedTable;
  /** Target columns in VALUES order. */
  readonly columns: readonly string[];
  /** Each VALUES row. */
  readonly rows: readonly (readonly AnyNode[])[];
  /** Each row's distribution column value, when a constant or parameter gives it. */
  readonly distributionValues: readonly (ValueSource | undefined)[];
  /** The rows must be evaluated on the coordinator first (defaults, sequences, functions). */
  readonly needsEvaluation: boolean;
  /** Parameters stand outside VALUES too (ON CONFLICT … SET, RETURNING): they stay bound once the rows are literals. */
  readonly parametersOutsideValues: boolean;
  /** The workers of the catalog snapshot it was planned against. */
  readonly workers: ReadonlyMap<number, WorkerNode>;
}

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
export class Insert implements Primitive {
  readonly kind = "insert";

  constructor(readonly spec: InsertSpec) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const { spec } = this;
    let columns = spec.columns;
    let rows = spec.rows;
    let bind = run.bind;
    let parameterTypes = run.parameterTypes;
    let groups = spec.needsEvaluation ? undefined : this.groupByShard(spec.distributionValues, bind);
    if (!groups || (groups.size > 1 && (run.bind?.parameters.length ?? 0) > 0)) {
      // every parameter typed (the client may have left some unspecified): the evaluation's Parse
      // and the shards' statements declare all of them, whichever each one uses
      const types = (run.bind?.parameters.length ?? 0) > 0 ? await statementParameterTypes(port.backend, run) : [];
      const evaluated = await this.evaluate(port, { ...run, parameterTypes: types });
      columns = evaluated.columns;
      rows = evaluated.rows;
      if (spec.parametersOutsideValues) {
        // the rows are literals now; the parameters ON CONFLICT or RETURNING use stay, each typed
        parameterTypes = types;
      } else {
        // the rows are literals now: no parameter left (nor its declared type)
        bind = bind && { ...bind, parameterFormats: [], parameters: [] };
        parameterTypes = [];
      }
      groups = this.groupByShard(evaluated.distributionValues, undefined);
    }
    // the statement without its rows, copied per shard (the rows are shared, not copied: nothing changes them)
    const template = withoutRows(spec.tree);
    const tasks = [...groups].map(([index, { rows: rowNumbers, hashes }]) => {
      const copy = structuredClone(template);
      const insert = copy.InsertStmt as AnyNode;
      insert.cols = columns.map((name) => ({ ResTarget: { name } }));
      insert.selectStmt.SelectStmt.valuesLists = rowNumbers.map((row) => ({ List: { items: rows[row] } }));
      renameToShards(copy, spec.mentions, index);
      const shard = shardOf(spec.table, index);
      // a hash table's rows lock their distribution values; a reference table's shard is locked whole
      return {
        sql: deparse(copy),
        shardId: shard.id,
        nodes: activeNodes(shard, spec.workers),
        lock: shardLock(spec.table, shard, spec.table.kind === "hash" ? [...hashes] : undefined),
      };
    });
    const result = await inWriteTransaction(port, tasks, (transaction) =>
      runShardTasks(tasks, { ...run, bind, parameterTypes }, port, sink, { write: true, transaction }),
    );
    sink.complete(`INSERT 0 ${result.count}`);
  }

  /** Row numbers (and their distribution values' hashes) by shard index, in first-seen order of shards. */
  private groupByShard(
    values: readonly (ValueSource | undefined)[],
    bind: BindMessage | undefined,
  ): Map<number, { rows: number[]; hashes: Set<number> }> {
    const { table } = this.spec;
    const groups = new Map<number, { rows: number[]; hashes: Set<number> }>();
    values.forEach((value, row) => {
      let index = 0;
      let hash = 0;
      if (table.kind === "hash") {
        if (!value) throw ExecutionErrors.insertWithoutPartitionValue();
        const hashed = hashOf(table.distributionType as number, value, bind);
        if (hashed === null) throw ExecutionErrors.insertNullPartitionValue();
        hash = hashed;
        index = shardIndexForHash(hash, table.shards.length);
      }
      const group = groups.get(index) ?? { rows: [], hashes: new Set<number>() };
      group.rows.push(row);
      group.hashes.add(hash);
      groups.set(index, group);
    });
    return groups;
  }

  /** Runs the VALUES rows (with defaults filled in) on the coordinator; returns them as literals. */
  private async evaluate(
    port: ExecutionPort,
    run: StatementRun,
  ): Promise<{ columns: string[]; rows: AnyNode[][]; distributionValues: (ValueSource | undefined)[] }> {
    const { table } = this.spec;
    const columnOf = new Map(table.columns.map((column) => [column.name, column]));
    const defaulted = table.columns.filter(
      (column) => !column.generated && column.defaultExpr !== undefined && !this.spec.columns.includes(column.name),
    );
    const columns = [...this.spec.columns, ...defaulted.map((column) => column.name)];
    const valuesLists = this.spec.rows.map((row) => {
      const items = row.map((value, i) => {
        const column = columnOf.get(this.spec.columns[i] as string);
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
    // PostgreSQL checks INSERT on the table before it evaluates a default (nextval of a sequence
    // the role may not use): herd.insert_allowed, first in each row, raises the same 42501 first
    const allowed = {
      FuncCall: {
        funcname: [{ String: { sval: "herd" } }, { String: { sval: "insert_allowed" } }],
        args: [literalNode(String(table.oid), "oid"), ...columns.map((name) => literalNode(name, "text"))],
        funcformat: "COERCE_EXPLICIT_CALL",
      },
    };
    // (only where a default is evaluated: what else the rows compute, PostgreSQL computes after the check too)
    const evaluatesDefault =
      defaulted.length > 0 || this.spec.rows.some((row) => row.some((v) => as(v, "SetToDefault")));
    for (const list of valuesLists)
      list.List.items.unshift(evaluatesDefault ? allowed : { A_Const: { boolval: { boolval: true } } });
    const sql = deparse({ SelectStmt: { valuesLists, limitOption: "LIMIT_OPTION_DEFAULT", op: "SETOP_NONE" } });
    const request = backendRequest({
      sql,
      statement: {},
      parameterTypes: run.parameterTypes,
      bind: run.bind && { ...run.bind, resultFormats: [] },
      describe: false,
    });
    const collector = new ResultCollector();
    await port.backend.exchange(request, collector);
    const result = collector.result();
    const texts = result.rows.map((values) =>
      values.slice(1).map((value) => (value === null ? null : value.toString("utf8"))),
    );
    const distribution = columns.indexOf(table.distributionColumn ?? "");
    return {
      columns,
      rows: texts.map((values) =>
        values.map((text, i) => literalNode(text, columnOf.get(columns[i] as string)?.typeName ?? "text")),
      ),
      distributionValues: texts.map((values) =>
        distribution < 0 ? undefined : { kind: "literal", text: values[distribution] ?? null },
      ),
    };
  }

  describe(): string {
    return `Insert into ${this.spec.table.name}${this.spec.needsEvaluation ? " (values evaluated on the coordinator)" : ""}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}

/** The INSERT … VALUES tree with an empty VALUES list, the rest as it is (not copied). */
function withoutRows(tree: AnyNode): AnyNode {
  const insert = tree.InsertStmt as AnyNode;
  const select = insert.selectStmt.SelectStmt as AnyNode;
  return { InsertStmt: { ...insert, selectStmt: { SelectStmt: { ...select, valuesLists: [] } } } };
}
