import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * An onRequest hook that lets a request through only with `Authorization: Bearer <token>`.
 * Tokens are compared as SHA-256 digests with timingSafeEqual, so neither their content nor their
 * length leaks through response timing.
 */
export function bearerAuth(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match?.[1] && timingSafeEqual(digest(match[1]), expected)) return;
    await reply
      .code(401)
      .header("www-authenticate", 'Bearer realm="herd"')
      .send({
        statusCode: 401,
        error: "Unauthorized",
        message: header
          ? "the bearer token is not valid for this cluster"
          : "missing Authorization header; send `Authorization: Bearer <admin token>`",
      });
  };
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
