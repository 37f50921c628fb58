import { errorMessage } from "@herd/shared";
import { activeWorkers, onWorkerAsSession } from "../../operations/run-command.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import { statementActivity } from "../statement-activity.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** Citus's node id for a node not in its metadata: herd's coordinator. */
export const COORDINATOR_NODE_ID = 99999999;

/**
 * pg_stat_activity as citus_stat_activity's columns, for the server it runs on: `$1` is the
 * node's id, `$2` whether herd's own connections there are worker queries (on workers they are).
 */
const ACTIVITY_SQL = `
  SELECT $1::bigint * 10000000000 + a.pid AS global_pid, $1::int AS nodeid,
         $2::boolean AND coalesce(a.application_name LIKE 'herd%', false) AS is_worker_query,
         a.datid, a.datname, a.pid, a.leader_pid, a.usesysid, a.usename, a.application_name, a.client_addr,
         a.client_hostname, a.client_port, a.backend_start, a.xact_start, a.query_start, a.state_change,
         a.wait_event_type, a.wait_event, a.state, a.backend_xid, a.backend_xmin, a.query_id, a.query,
         a.backend_type
    FROM pg_catalog.pg_stat_activity a`;

/**
 * citus_stat_activity: every server's pg_stat_activity (planner/cluster-activity-planner.ts puts
 * these rows where the statement reads the view). The coordinator's rows first, read by the
 * session's own backend; a session's backend whose statement herd is running on the workers is
 * shown with that statement, `active` since it began (its backend itself sits idle meanwhile).
 * Then each active worker's, read as the session's role (so the worker shows what that role may
 * see of other roles' queries, as PostgreSQL does); a worker that cannot answer is left out with
 * a warning.
 */
export class ClusterActivity implements Primitive {
  readonly kind = "cluster-activity";

  async execute(port: ExecutionPort, _run: StatementRun, sink: ResultSink): Promise<void> {
    const [runningStatement, coordinator, ...others] = await Promise.all([
      statementActivity.everywhere(),
      port.backend.query(ACTIVITY_SQL, [String(COORDINATOR_NODE_ID), "false"]),
      ...activeWorkers(port).map((node) =>
        onWorkerAsSession(port, node, (connection) => connection.query(ACTIVITY_SQL, [String(node.id), "true"])).catch(
          (error) => {
            sink.notice({
              severity: "WARNING",
              code: "01000",
              message: `citus_stat_activity leaves out ${node.name}: ${errorMessage(error)}`,
            });
            return undefined;
          },
        ),
      ),
    ]);
    const fields = coordinator.fields;
    const column = (name: string) => fields.findIndex((field) => field.name === name);
    const [pid, state, query, queryStart, stateChange] = ["pid", "state", "query", "query_start", "state_change"].map(
      column,
    ) as [number, number, number, number, number];
    sink.fields(fields);
    for (const row of coordinator.rows) {
      const values: (Buffer | string | null)[] = [...row];
      const running = runningStatement(Number(row[pid]?.toString()));
      // a statement herd runs: the row shows it only to whom PostgreSQL shows the backend's own query
      if (running && row[query] !== null && row[query]?.toString() !== "<insufficient privilege>") {
        values[state] = "active";
        values[query] = running.query;
        const since = new Date(running.since).toISOString();
        values[queryStart] = since;
        values[stateChange] = since;
      }
      sink.row(values);
    }
    for (const result of others) for (const row of result?.rows ?? []) sink.row(row);
  }

  describe(): string {
    return "Cluster activity (pg_stat_activity of the coordinator and of every active worker)";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
