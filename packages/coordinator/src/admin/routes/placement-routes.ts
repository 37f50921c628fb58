import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  ErrorBody,
  isHerdError,
  MoveBody,
  MoveReportSchema,
  NodeDetailSchema,
  NodeIdParams,
  PlacementListQuery,
  PlacementListSchema,
  ShardIdParams,
  ShardListQuery,
  ShardListSchema,
  SqlState,
  TableListSchema,
} from "@herd/shared";
import type { FastifyReply } from "fastify";
import type { PlacementService } from "../../operations/placement-service.js";

export interface PlacementRouteDeps {
  /** Undefined while the coordinator is still starting (503). */
  readonly placements: () => PlacementService | undefined;
}

/** What a refusal of the placement service is over HTTP. */
const STATUS_OF: Record<string, number> = {
  [SqlState.undefinedObject]: 404,
  [SqlState.undefinedTable]: 404,
  [SqlState.invalidParameterValue]: 400,
  [SqlState.objectNotInPrerequisiteState]: 409,
  [SqlState.objectInUse]: 409,
  // a worker was lost during the operation: it is undone, and can be asked for again
  [SqlState.connectionFailure]: 503,
};
const PHRASE: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  409: "Conflict",
  503: "Service Unavailable",
};

/**
 * `/v1/tables`, `/v1/shards`, `/v1/placements`, `/v1/nodes/:id` and `POST /v1/shards/:id/move`:
 * where shards live, with sizes read from the workers, and online moves (operations/shard-move.ts).
 */
export const placementRoutes: FastifyPluginAsyncTypebox<PlacementRouteDeps> = async (app, { placements }) => {
  const service = (reply: FastifyReply) => {
    const found = placements();
    if (!found) void reply.code(503).send(error(503, "the coordinator is starting; try again in a moment"));
    return found;
  };
  const page = <T>(items: T[], offset = 0, limit = 1000) => ({
    items: items.slice(offset, offset + limit),
    total: items.length,
    offset,
    limit,
  });

  app.get(
    "/tables",
    {
      schema: {
        tags: ["placement"],
        summary: "Distributed and reference tables: distribution column, colocation group, shards, replication, size",
        response: { 200: TableListSchema, 503: ErrorBody },
      },
    },
    async (_request, reply) => {
      const found = service(reply);
      if (found) return { tables: await found.tables() };
    },
  );

  app.get(
    "/shards",
    {
      schema: {
        tags: ["placement"],
        summary: "Shards (of one table with ?table=), with their hash ranges and placements",
        querystring: ShardListQuery,
        response: { 200: ShardListSchema, 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = service(reply);
      if (!found) return;
      return refusal(reply, async () => {
        const { items, ...rest } = page(
          await found.shards(request.query.table),
          request.query.offset,
          request.query.limit,
        );
        return { shards: items, ...rest };
      });
    },
  );

  app.get(
    "/placements",
    {
      schema: {
        tags: ["placement"],
        summary: "Shard placements (of one node with ?node=), with state and size",
        querystring: PlacementListQuery,
        response: { 200: PlacementListSchema, 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = service(reply);
      if (!found) return;
      return refusal(reply, async () => {
        const all = await found.placements(request.query.node);
        const { items, ...rest } = page(all, request.query.offset, request.query.limit);
        return { placements: items, ...rest };
      });
    },
  );

  app.get(
    "/nodes/:id",
    {
      schema: {
        tags: ["nodes"],
        summary: "One worker node: its state, placements and bytes",
        params: NodeIdParams,
        response: { 200: NodeDetailSchema, 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = service(reply);
      if (!found) return;
      return refusal(reply, async () => {
        const node = await found.node(request.params.id);
        return node;
      });
    },
  );

  app.post(
    "/shards/:id/move",
    {
      schema: {
        tags: ["placement"],
        summary:
          "Move a shard, with every shard colocated with it, to another node while reads and writes go on (logical replication, then a short write pause to switch)",
        params: ShardIdParams,
        body: MoveBody,
        response: { 200: MoveReportSchema, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = service(reply);
      if (!found) return;
      return refusal(reply, () =>
        found.move({ shardId: request.params.id, source: { id: request.body.from }, target: { id: request.body.to } }),
      );
    },
  );
};

/** Runs `work`; a refusal of the service (a HerdError with a known SQLSTATE) becomes its HTTP status. */
export async function refusal<T>(reply: FastifyReply, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (failure) {
    const status = isHerdError(failure) ? STATUS_OF[failure.sqlState] : undefined;
    if (status === undefined) throw failure;
    await reply.code(status).send(error(status, (failure as Error).message));
    return undefined;
  }
}

function error(status: number, message: string) {
  return { statusCode: status, error: PHRASE[status] ?? "Error", message };
}
