import { Session } from "node:inspector/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";

const ProfileRequest = Type.Object(
  {
    seconds: Type.Number({ minimum: 0.1, maximum: 300, description: "How long to sample" }),
    intervalMicros: Type.Optional(
      Type.Integer({ minimum: 50, maximum: 100_000, description: "Sampling interval (default 200 µs)" }),
    ),
  },
  { additionalProperties: false },
);

/**
 * A CPU profile of the coordinator process for `seconds` (V8's sampling profiler through
 * node:inspector, in-process, no debugger port opened): the `.cpuprofile` JSON that Chrome's
 * DevTools and `pnpm bench` read. One at a time (409 while one runs). Sampling costs a few per
 * cent of CPU while it runs, nothing otherwise.
 */
export const profileRoutes: FastifyPluginAsync = async (app) => {
  let running = false;
  app.post(
    "/debug/cpu-profile",
    {
      schema: {
        tags: ["debug"],
        summary: "CPU profile of the coordinator process (a .cpuprofile)",
        body: ProfileRequest,
      },
    },
    async (request, reply) => {
      if (running)
        return reply.code(409).send({ statusCode: 409, error: "Conflict", message: "a profile is being taken" });
      const { seconds, intervalMicros } = request.body as { seconds: number; intervalMicros?: number };
      running = true;
      const session = new Session();
      session.connect();
      try {
        await session.post("Profiler.enable");
        await session.post("Profiler.setSamplingInterval", { interval: intervalMicros ?? 200 });
        await session.post("Profiler.start");
        await sleep(seconds * 1000);
        const { profile } = await session.post("Profiler.stop");
        return reply.type("application/json").send(JSON.stringify(profile));
      } finally {
        session.disconnect();
        running = false;
      }
    },
  );
};
