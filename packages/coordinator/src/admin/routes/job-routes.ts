import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  DrainBody,
  ErrorBody,
  JobIdParams,
  JobListSchema,
  JobSchema,
  NodeIdParams,
  PlanSchema,
  RebalanceBody,
} from "@herd/shared";
import type { FastifyReply } from "fastify";
import type { JobRunner } from "../../operations/job-runner.js";
import { refusal } from "./placement-routes.js";

export interface JobRouteDeps {
  /** Undefined while the coordinator is still starting (503). */
  readonly jobs: () => JobRunner | undefined;
}

/**
 * `POST /v1/rebalance` (a plan with dryRun, else a job), `POST /v1/nodes/:id/drain`, and
 * `/v1/jobs` to follow (moves done/total, bytes copied) or cancel them (after the moves under way).
 */
export const jobRoutes: FastifyPluginAsyncTypebox<JobRouteDeps> = async (app, { jobs }) => {
  const runner = (reply: FastifyReply) => {
    const found = jobs();
    if (!found)
      void reply.code(503).send({
        statusCode: 503,
        error: "Service Unavailable",
        message: "the coordinator is starting; try again in a moment",
      });
    return found;
  };

  app.post(
    "/rebalance",
    {
      schema: {
        tags: ["placement"],
        summary:
          "Even out the shard groups over the active workers (colocated shards move together, copies never share a worker): the plan with dryRun, else a job (202)",
        body: RebalanceBody,
        response: { 200: PlanSchema, 202: JobSchema, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = runner(reply);
      if (!found) return;
      const body = request.body ?? {};
      if (body.dryRun)
        return { moves: (await found.plan(body.strategy)).map((move) => ({ ...move, shardIds: [...move.shardIds] })) };
      const job = await refusal(reply, () =>
        found.startRebalance({ strategy: body.strategy, maxParallelMoves: body.maxParallelMoves }),
      );
      if (job) return reply.code(202).send(job);
    },
  );

  app.post(
    "/nodes/:id/drain",
    {
      schema: {
        tags: ["nodes"],
        summary: "Move every placement off a node (its state: draining); then it can be removed. A job (202).",
        params: NodeIdParams,
        body: DrainBody,
        response: { 202: JobSchema, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = runner(reply);
      if (!found) return;
      const job = await refusal(reply, () => found.startDrain(request.params.id, request.body?.maxParallelMoves));
      if (job) return reply.code(202).send(job);
    },
  );

  app.get(
    "/jobs",
    {
      schema: {
        tags: ["placement"],
        summary: "The latest rebalance and drain jobs",
        response: { 200: JobListSchema, 503: ErrorBody },
      },
    },
    async (_request, reply) => {
      const found = runner(reply);
      if (found) return { jobs: await found.list() };
    },
  );

  app.get(
    "/jobs/:id",
    {
      schema: {
        tags: ["placement"],
        summary: "A job's state and progress",
        params: JobIdParams,
        response: { 200: JobSchema, 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = runner(reply);
      if (found) return refusal(reply, () => found.get(request.params.id));
    },
  );

  app.delete(
    "/jobs/:id",
    {
      schema: {
        tags: ["placement"],
        summary: "Cancel a running job: it stops after the moves under way",
        params: JobIdParams,
        response: { 200: JobSchema, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const found = runner(reply);
      if (found) return refusal(reply, () => found.cancel(request.params.id));
    },
  );
};
