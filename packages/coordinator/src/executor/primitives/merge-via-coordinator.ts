import { HerdError, SqlState, shardIndexForHash } from "@herd/shared";
import { type DistributedTable, shardOf, type WorkerNode } from "../../metadata/catalog-types.js";
import { type AnyNode, deparse } from "../../parser/ast.js";
import { shardLock } from "../../transaction/shard-lock.js";
import { hashOfText } from "../distribution-value.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import { runShardTasks } from "../fan-out.js";
import {
  type IntermediateResult,
  intermediateResultLimit,
  MAX_INTERMEDIATE_RESULT_SIZE,
  rowsSelect,
} from "../intermediate-result.js";
import type { ResultSink } from "../result-sink.js";
import { activeNodes } from "../shard-selection.js";
import { renameToShards, type TableMention } from "../shard-statements.js";
import type { StatementRun } from "../statement-run.js";
import { inWriteTransaction } from "../write-transaction.js";
import { answerNothingWritten, type InsertSource } from "./insert-select.js";
import type { DescribeContext, Primitive } from "./primitive.js";
import { columnTypeNames, runSubPlan, statementParameterTypes } from "./subplans.js";

/** A MERGE whose source is not colocated with its target, as the planner read it. */
export interface CoordinatorMergeSpec {
  /** The MERGE; its source is replaced per shard. */
  readonly tree: AnyNode;
  readonly target: DistributedTable;
  /** The target as the statement names it (renamed per shard). */
  readonly targetMentions: readonly TableMention[];
  /** The name the statement gives the source (its alias, or the table's name). */
  readonly sourceName: string;
  /** The source's column that the join condition ties to the target's distribution column. */
  readonly keyColumn: string;
  /** The source as a query of its own. */
  readonly source: InsertSource;
  /** A WHEN NOT MATCHED [BY TARGET] … INSERT: a source row with a NULL key would make a row with no shard. */
  readonly inserts: boolean;
  /** A WHEN NOT MATCHED BY SOURCE: target rows no source row matches change too, so every shard runs. */
  readonly bySource: boolean;
  readonly workers: ReadonlyMap<number, WorkerNode>;
}

/** Integer types, whose equal values hash alike whatever their width (PostgreSQL's hashint8 makes it so). */
const INTEGER_TYPES = new Set([20, 21, 23]);

/**
 * MERGE into a distributed table from a source that is not colocated with it (a reference or
 * ordinary table, a subquery, a table of another colocation group), joined on the target's
 * distribution column: the source runs first (any shape herd answers) and its rows are kept on the
 * coordinator (up to citus.max_intermediate_result_size, as Citus keeps them); each row goes to the
 * shard its key value hashes to, the only shard whose rows it can match or where the row it
 * inserts belongs. Each shard group then runs `MERGE INTO target_i USING (VALUES …) source …` with
 * its rows, all of them in one statement (so PostgreSQL's own rules hold: a target row matched
 * twice fails, NOT MATCHED BY SOURCE sees every source row of the shard), on every placement, in
 * one two-phase write.
 */
export class MergeViaCoordinator implements Primitive {
  readonly kind = "merge-via-coordinator";

  constructor(readonly spec: CoordinatorMergeSpec) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const { spec } = this;
    const backend = port.backend;
    const [setting, parameterTypes] = await Promise.all([
      backend.query("SELECT pg_catalog.current_setting($1, true)", [MAX_INTERMEDIATE_RESULT_SIZE]),
      statementParameterTypes(backend, run),
    ]);
    const started = performance.now();
    const limit = intermediateResultLimit(setting.rows[0]?.[0]?.toString());
    const rows = await runSubPlan(port, run, spec.source, parameterTypes, limit, sink);
    run.stats?.record(this, { timeMs: performance.now() - started, rows: rows.rows.length, bytes: rows.bytes });
    const names = rows.columns.map((column) => column.name);
    const typeNames = await columnTypeNames(backend, rows.columns);
    const groups = this.groupByShard(rows);
    const indexes = spec.bySource ? spec.target.shards.map((shard) => shard.index) : [...groups.keys()];
    if (indexes.length === 0) {
      // no source row: nothing can match or be inserted
      await answerNothingWritten(port, run, parameterTypes, sink, "MERGE 0");
      return;
    }
    const template = structuredClone({
      ...spec.tree,
      MergeStmt: { ...spec.tree.MergeStmt, sourceRelation: undefined },
    });
    const tasks = indexes.map((index) => {
      const copy = structuredClone(template);
      (copy.MergeStmt as AnyNode).sourceRelation = {
        RangeSubselect: {
          subquery: rowsSelect(names, groups.get(index) ?? [], typeNames),
          alias: { aliasname: spec.sourceName },
        },
      };
      renameToShards(copy, spec.targetMentions, index);
      const shard = shardOf(spec.target, index);
      return {
        sql: deparse(copy),
        shardId: shard.id,
        nodes: activeNodes(shard, spec.workers),
        // NOT MATCHED BY SOURCE and unmatched conditions reach any row of the shard: the whole shard
        lock: shardLock(spec.target, shard),
      };
    });
    const result = await inWriteTransaction(port, tasks, (transaction) =>
      runShardTasks(tasks, { ...run, parameterTypes }, port, sink, { write: true, transaction }),
    );
    sink.complete(`MERGE ${result.count}`);
  }

  /** The source rows by the shard index their key value hashes to. */
  private groupByShard(result: IntermediateResult): Map<number, (string | null)[][]> {
    const { target, keyColumn, inserts } = this.spec;
    const key = result.columns.findIndex((column) => column.name === keyColumn);
    const type = result.columns[key]?.typeOid;
    const distributionType = target.distributionType as number;
    if (type !== distributionType && !(INTEGER_TYPES.has(type ?? 0) && INTEGER_TYPES.has(distributionType))) {
      throw new HerdError(
        `MERGE joins ${target.name}.${target.distributionColumn} to a source column of another type`,
        {
          sqlState: SqlState.featureNotSupported,
          detail:
            "herd finds each source row's shard by hashing its key value as the target's distribution column type.",
          hint: `Cast it in the source: USING (SELECT …, ${keyColumn}::<the column's type> AS ${keyColumn} …).`,
        },
      );
    }
    const groups = new Map<number, (string | null)[][]>();
    for (const row of result.rows) {
      const value = row[key];
      if (value === null || value === undefined) {
        // it matches nothing; inserted, it would make a row no shard holds
        if (inserts) throw ExecutionErrors.insertNullPartitionValue();
        continue;
      }
      const index = shardIndexForHash(hashOfText(distributionType, value), target.shards.length);
      const group = groups.get(index) ?? [];
      group.push(row);
      groups.set(index, group);
    }
    return groups;
  }

  describe(context: DescribeContext): string {
    const line = `Merge via the coordinator into ${this.spec.target.name} (the source runs first; its rows go to the shards their keys hash to)`;
    const figures = context.stats?.of(this);
    if (!figures) return line;
    return `${line} (actual time=${figures.timeMs.toFixed(3)} ms rows=${figures.rows ?? 0} bytes=${figures.bytes ?? 0})`;
  }

  runOf(input: Primitive, run: StatementRun): StatementRun {
    const { source } = this.spec;
    return input === source.plan ? { ...run, sql: source.sql, statement: source.statement } : run;
  }

  inputs(): readonly Primitive[] {
    return [this.spec.source.plan];
  }
}
