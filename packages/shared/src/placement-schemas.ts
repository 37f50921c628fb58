import { type Static, Type } from "typebox";

/** The admin API's shapes for where shards live (`/v1/tables`, `/v1/shards`, `/v1/placements`, moves). */

export const PlacementState = Type.Union([Type.Literal("active"), Type.Literal("stale"), Type.Literal("to_delete")]);

export const TableSchema = Type.Object(
  {
    name: Type.String({ description: "schema-qualified" }),
    kind: Type.Union([Type.Literal("hash"), Type.Literal("reference")]),
    distributionColumn: Type.Union([Type.String(), Type.Null()]),
    colocationId: Type.Integer(),
    shardCount: Type.Integer({ minimum: 1 }),
    replicationFactor: Type.Integer({ minimum: 1, description: "active placements per shard (the fewest)" }),
    bytes: Type.Integer({ minimum: 0, description: "every active placement's pg_total_relation_size, summed" }),
  },
  { additionalProperties: false },
);
export type TableJson = Static<typeof TableSchema>;
export const TableListSchema = Type.Object({ tables: Type.Array(TableSchema) }, { additionalProperties: false });

export const PlacementSchema = Type.Object(
  {
    shardId: Type.Integer(),
    table: Type.String(),
    nodeId: Type.Integer(),
    node: Type.String(),
    state: PlacementState,
    bytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
      description: "null when the node cannot be reached",
    }),
  },
  { additionalProperties: false },
);
export type PlacementJson = Static<typeof PlacementSchema>;

export const ShardSchema = Type.Object(
  {
    id: Type.Integer(),
    table: Type.String(),
    index: Type.Integer(),
    minValue: Type.Union([Type.Integer(), Type.Null()], { description: "int32 hash range; null for reference tables" }),
    maxValue: Type.Union([Type.Integer(), Type.Null()]),
    placements: Type.Array(PlacementSchema),
  },
  { additionalProperties: false },
);
export type ShardJson = Static<typeof ShardSchema>;

const Page = { total: Type.Integer({ minimum: 0 }), offset: Type.Integer({ minimum: 0 }), limit: Type.Integer() };
export const ShardListSchema = Type.Object(
  { shards: Type.Array(ShardSchema), ...Page },
  { additionalProperties: false },
);
export const PlacementListSchema = Type.Object(
  { placements: Type.Array(PlacementSchema), ...Page },
  { additionalProperties: false },
);

export const PageQuery = {
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1_000 })),
};
export const ShardListQuery = Type.Object(
  {
    table: Type.Optional(Type.String({ minLength: 1, description: "a table's name, schema-qualified or not" })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export const PlacementListQuery = Type.Object(
  { node: Type.Optional(Type.Integer({ minimum: 1, description: "a node's id" })), ...PageQuery },
  { additionalProperties: false },
);

export const NodeDetailSchema = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    host: Type.String(),
    port: Type.Integer(),
    state: Type.String(),
    bytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    placements: Type.Array(PlacementSchema),
  },
  { additionalProperties: false },
);

export const ShardIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const MoveBody = Type.Object(
  {
    from: Type.Integer({ minimum: 1, description: "the id of the node the shard is on" }),
    to: Type.Integer({ minimum: 1, description: "the id of an active node that holds no copy of it" }),
  },
  { additionalProperties: false },
);
export type MoveBody = Static<typeof MoveBody>;

export const MoveReportSchema = Type.Object(
  {
    moveId: Type.Integer(),
    shards: Type.Array(Type.Integer(), { description: "the shard and those colocated with it" }),
    from: Type.String(),
    to: Type.String(),
    rows: Type.Integer(),
    bytes: Type.Integer(),
    ms: Type.Integer(),
    writePauseMs: Type.Integer({ description: "how long writes of these shards waited for the switch" }),
  },
  { additionalProperties: false },
);
export type MoveReportJson = Static<typeof MoveReportSchema>;

export const JobSchema = Type.Object(
  {
    id: Type.Integer(),
    kind: Type.Union([Type.Literal("rebalance"), Type.Literal("drain")]),
    nodeId: Type.Union([Type.Integer(), Type.Null()], { description: "the drained node" }),
    strategy: Type.String(),
    maxParallelMoves: Type.Integer(),
    state: Type.Union([
      Type.Literal("running"),
      Type.Literal("cancelling"),
      Type.Literal("done"),
      Type.Literal("cancelled"),
      Type.Literal("failed"),
    ]),
    movesTotal: Type.Integer(),
    movesDone: Type.Integer(),
    bytesCopied: Type.Integer(),
    error: Type.Union([Type.String(), Type.Null()]),
    startedAt: Type.String(),
    finishedAt: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);
export const JobListSchema = Type.Object({ jobs: Type.Array(JobSchema) }, { additionalProperties: false });
export const JobIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const RebalanceBody = Type.Object(
  {
    dryRun: Type.Optional(Type.Boolean({ default: false, description: "only say which moves it would make" })),
    strategy: Type.Optional(Type.Union([Type.Literal("by_shard_count"), Type.Literal("by_disk_size")])),
    maxParallelMoves: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
  },
  { additionalProperties: false },
);
export const DrainBody = Type.Object(
  { maxParallelMoves: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })) },
  { additionalProperties: false },
);

export const PlanSchema = Type.Object(
  {
    moves: Type.Array(
      Type.Object(
        {
          shardId: Type.Integer(),
          shardIds: Type.Array(Type.Integer()),
          from: Type.Integer(),
          to: Type.Integer(),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
