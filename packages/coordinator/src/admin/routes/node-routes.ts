import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ErrorBody, NodeIdParams, type NodeJson, NodeListSchema, NodeSchema, RegisterNodeBody } from "@herd/shared";
import type { NodeRecord, NodeRegistry } from "../../metadata/node-registry.js";
import type { Verdict } from "../../metadata/node-verification.js";

export interface NodeRouteDeps {
  readonly nodes: NodeRegistry;
  /** Proves a registration by reading the node's volume identity (metadata/node-verification.ts). */
  readonly verify: (node: RegisterNodeBody) => Promise<Verdict>;
}

/** `/v1/nodes`: the worker nodes. Registration is idempotent by node name. */
export const nodeRoutes: FastifyPluginAsyncTypebox<NodeRouteDeps> = async (app, { nodes, verify }) => {
  app.get(
    "/nodes",
    { schema: { tags: ["nodes"], summary: "List worker nodes", response: { 200: NodeListSchema } } },
    async () => ({ nodes: (await nodes.list()).map(toJson) }),
  );

  app.post(
    "/nodes",
    {
      schema: {
        tags: ["nodes"],
        summary:
          "Register a worker node (idempotent: the same name keeps its id). The node is active once the coordinator has read its volume identity at that address; until then it is pending, with the reason.",
        body: RegisterNodeBody,
        response: { 200: NodeSchema, 201: NodeSchema, 400: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const known = await nodes.byName(body.name);
      const moved = known !== undefined && (known.host !== body.host || known.port !== body.port);
      // a heartbeat of a verified node at its known address needs no new proof
      const verdict = known === undefined || moved || known.state === "pending" ? await verify(body) : undefined;
      if (moved && verdict && !verdict.ok) {
        return reply.code(409).send({
          statusCode: 409,
          error: "Conflict",
          message: `node ${body.name} stays at ${known.host}:${known.port}: ${verdict.reason}`,
        });
      }
      const { node, created } = await nodes.register(body, verdict);
      if (created) request.log.info({ node: node.name, id: node.id, state: node.state }, "node registered");
      return reply.code(created ? 201 : 200).send(toJson(node));
    },
  );

  app.delete(
    "/nodes/:id",
    {
      schema: {
        tags: ["nodes"],
        summary: "Remove a worker node that holds no shard placements",
        params: NodeIdParams,
        response: { 200: NodeSchema, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const result = await nodes.remove(request.params.id);
      switch (result.kind) {
        case "removed":
          return toJson(result.node);
        case "not_found":
          return reply
            .code(404)
            .send({ statusCode: 404, error: "Not Found", message: `node ${request.params.id} does not exist` });
        case "holds_placements":
          return reply.code(409).send({
            statusCode: 409,
            error: "Conflict",
            message: `node ${request.params.id} still holds ${result.placements} shard placement(s); drain it or move its shards first`,
          });
      }
    },
  );
};

function toJson(node: NodeRecord): NodeJson {
  return {
    id: node.id,
    name: node.name,
    host: node.host,
    port: node.port,
    role: node.role,
    state: node.state,
    ...(node.reason === undefined ? {} : { reason: node.reason }),
    placements: node.placements,
  };
}
