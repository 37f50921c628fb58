import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";

export interface HealthDeps {
  /** True when the coordinator can serve: its metadata PostgreSQL answers. */
  readonly isReady: () => Promise<boolean>;
}

const Status = Type.Object({ status: Type.String() });

/** Probes, no token: liveness says the process serves HTTP; readiness that it can do its job. */
export const healthRoutes: FastifyPluginAsync<HealthDeps> = async (app, deps) => {
  app.get("/healthz", { schema: { tags: ["probes"], summary: "Liveness", response: { 200: Status } } }, async () => ({
    status: "ok",
  }));
  app.get(
    "/readyz",
    { schema: { tags: ["probes"], summary: "Readiness", response: { 200: Status, 503: Status } } },
    async (_request, reply) => {
      if (await deps.isReady()) return { status: "ready" };
      return reply.code(503).send({ status: "not ready" });
    },
  );
};
