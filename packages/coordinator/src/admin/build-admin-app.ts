import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Logger, RegisterNodeBody } from "@herd/shared";
import Fastify, { type FastifyInstance } from "fastify";
import type { NodeRegistry } from "../metadata/node-registry.js";
import type { Verdict } from "../metadata/node-verification.js";
import type { JobRunner } from "../operations/job-runner.js";
import type { PlacementService } from "../operations/placement-service.js";
import { AdminMetrics } from "./admin-metrics.js";
import { bearerAuth } from "./bearer-auth.js";
import { healthRoutes } from "./routes/health-routes.js";
import { jobRoutes } from "./routes/job-routes.js";
import { metricsRoutes } from "./routes/metrics-routes.js";
import { nodeRoutes } from "./routes/node-routes.js";
import { placementRoutes } from "./routes/placement-routes.js";
import { profileRoutes } from "./routes/profile-routes.js";

export interface AdminDeps {
  readonly nodes: NodeRegistry;
  /** Proves a node's registration (NodeVerifier.verify in the coordinator). */
  readonly verify: (node: RegisterNodeBody) => Promise<Verdict>;
  readonly adminToken: string;
  readonly isReady: () => Promise<boolean>;
  /** Where shards live and moving them; undefined until the coordinator has started (503). */
  readonly placements?: () => PlacementService | undefined;
  /** Rebalances and drains; undefined until the coordinator has started (503). */
  readonly jobs?: () => JobRunner | undefined;
  readonly logger: Logger;
}

/**
 * The admin HTTP API, built but not listening (tests drive it with `inject`). Probes and metrics
 * are open; everything under `/v1/` needs the bearer token.
 */
export async function buildAdminApp(deps: AdminDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 1024 * 1024,
    // reject unknown fields (a typo must not be dropped silently); coerce path params to numbers
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  const metrics = new AdminMetrics(deps.nodes);

  app.addHook("onResponse", async (request, reply) => {
    metrics.adminRequests.inc({
      method: request.method,
      route: request.routeOptions.url ?? "unmatched",
      status: String(reply.statusCode),
    });
  });

  app.setErrorHandler(async (error: Error & { statusCode?: number; validation?: unknown }, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status < 500) {
      return reply.code(status).send({ statusCode: status, error: reasonPhrase(status), message: error.message });
    }
    deps.logger.error("admin request failed", { method: request.method, url: request.url, error: error.message });
    return reply
      .code(500)
      .send({ statusCode: 500, error: "Internal Server Error", message: "internal error; see the coordinator log" });
  });

  await app.register(swagger, {
    openapi: {
      info: { title: "herd admin API", version: "1", description: "Shows and changes where shards live." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  await app.register(healthRoutes, { isReady: deps.isReady });
  await app.register(metricsRoutes, { metrics });
  await app.register(
    async (v1) => {
      v1.addHook("onRequest", bearerAuth(deps.adminToken));
      v1.addHook("onRoute", (route) => {
        route.schema = { ...route.schema, security: [{ bearer: [] }] };
      });
      await v1.register(nodeRoutes, { nodes: deps.nodes, verify: deps.verify });
      await v1.register(placementRoutes, { placements: () => deps.placements?.() });
      await v1.register(jobRoutes, { jobs: () => deps.jobs?.() });
      await v1.register(profileRoutes);
    },
    { prefix: "/v1" },
  );
  return app;
}

function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
  };
  return phrases[status] ?? "Error";
}
