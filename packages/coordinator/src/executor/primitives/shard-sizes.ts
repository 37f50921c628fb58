import { errorMessage } from "@herd/shared";
import type { DistributedTable, WorkerNode } from "../../metadata/catalog-types.js";
import { shardName } from "../../metadata/catalog-types.js";
import { qualifiedName } from "../../parser/identifiers.js";
import type { FieldDescription } from "../../protocol/backend-messages.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

const OID = 26;
const INT8 = 20;
const INT4 = 23;
const TEXT = 25;
const BOOL = 16;

const field = (name: string, typeOid: number, typeSize: number): FieldDescription => ({
  name,
  tableOid: 0,
  columnNumber: 0,
  typeOid,
  typeSize,
  typeModifier: -1,
  format: 0,
});

/** The rows' columns; `measured`: the copy the size functions count (a shard's first active one). */
const FIELDS = [
  field("relation", OID, 4),
  field("shardid", INT8, 8),
  field("nodename", TEXT, -1),
  field("nodeport", INT4, 4),
  field("measured", BOOL, 1),
  field("relation_size", INT8, 8),
  field("table_size", INT8, 8),
  field("total_size", INT8, 8),
];

/** One worker's placements, measured in one query (a shard dropped meanwhile is left out). */
const MEASURE = `SELECT p.id::text, pg_catalog.pg_relation_size(c.oid)::text, pg_catalog.pg_table_size(c.oid)::text,
         pg_catalog.pg_total_relation_size(c.oid)::text
    FROM pg_catalog.json_to_recordset($1::json) AS p (id bigint, name text)
    JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(p.name)`;

interface Placement {
  readonly table: DistributedTable;
  readonly shardId: number;
  readonly measured: boolean;
}

/**
 * The size of every active placement of every distributed and reference table, measured on its
 * worker with PostgreSQL's own size functions (herd's login: sizes need no privilege on the
 * table): what citus_shards' shard_size, citus_tables' table_size and the size functions
 * called with a table taken from the rows read (planner/shard-sizes-planner.ts).
 */
export class ShardSizes implements Primitive {
  readonly kind = "shard-sizes";

  async execute(port: ExecutionPort, _run: StatementRun, sink: ResultSink): Promise<void> {
    const catalog = port.catalog.current;
    const byNode = new Map<number, { node: WorkerNode; placements: Map<number, Placement> }>();
    for (const table of catalog.tables) {
      for (const shard of table.shards) {
        let first = true;
        for (const placement of shard.placements) {
          const node = catalog.nodes.get(placement.nodeId);
          if (placement.state !== "active" || !node) continue;
          const entry = byNode.get(node.id) ?? { node, placements: new Map<number, Placement>() };
          byNode.set(node.id, entry);
          entry.placements.set(shard.id, { table, shardId: shard.id, measured: first });
          first = false;
        }
      }
    }
    const measured = await Promise.all(
      [...byNode.values()].map((entry) =>
        measure(entry.node, entry.placements, port).catch((error) => {
          // a worker that cannot answer leaves its copies unmeasured (NULL): the views still show
          // where shards live, and a size that needs one of them is NULL rather than too small
          sink.notice({
            severity: "WARNING",
            code: "01000",
            message: `sizes leave out ${entry.node.name}: ${errorMessage(error)}`,
          });
          return [...entry.placements.values()].map((placement) => sizeRow(entry.node, placement, [null, null, null]));
        }),
      ),
    );
    sink.fields(FIELDS);
    let count = 0;
    for (const rows of measured) {
      for (const row of rows) {
        sink.row(row);
        count++;
      }
    }
    sink.complete(`SELECT ${count}`);
  }

  describe(): string {
    return "Shard sizes (every active placement, measured on its worker)";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}

async function measure(
  node: WorkerNode,
  placements: ReadonlyMap<number, Placement>,
  port: ExecutionPort,
): Promise<(string | null)[][]> {
  const names = [...placements.values()].map(({ table, shardId }) => ({
    id: shardId,
    name: qualifiedName(table.schema, shardName(table, shardId)),
  }));
  const connection = await port.workers.acquire(node);
  let result: Awaited<ReturnType<typeof connection.query>>;
  try {
    result = await connection.query(MEASURE, [JSON.stringify(names)]);
  } finally {
    port.workers.release(connection);
  }
  const rows: (string | null)[][] = [];
  for (const [id, relationSize, tableSize, totalSize] of result.rows) {
    const placement = placements.get(Number(id?.toString()));
    if (!placement) continue;
    const sizes = [relationSize, tableSize, totalSize].map((size) => size?.toString() ?? null);
    rows.push(sizeRow(node, placement, sizes));
  }
  return rows;
}

function sizeRow(node: WorkerNode, placement: Placement, sizes: readonly (string | null)[]): (string | null)[] {
  return [
    String(placement.table.oid),
    String(placement.shardId),
    node.host,
    String(node.port),
    placement.measured ? "t" : "f",
    ...sizes,
  ];
}
