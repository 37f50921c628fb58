import type { FastifyPluginAsync } from "fastify";
import type { AdminMetrics } from "../admin-metrics.js";

/** Prometheus exposition, no token (scrapers rarely carry one; nothing secret is exported). */
export const metricsRoutes: FastifyPluginAsync<{ metrics: AdminMetrics }> = async (app, { metrics }) => {
  app.get("/metrics", { schema: { tags: ["probes"], summary: "Prometheus metrics" } }, async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });
};
