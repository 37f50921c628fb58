import { type Static, Type } from "typebox";

/**
 * The admin API's wire shapes, shared by the coordinator (which serves them) and the bot (which
 * registers through them). The JSON of a node is a DESIGN.md contract.
 */

/** `pending`: registered, not yet verified by the coordinator (its `reason` says why). */
export const NodeState = Type.Union([
  Type.Literal("pending"),
  Type.Literal("active"),
  Type.Literal("unreachable"),
  Type.Literal("draining"),
]);
export type NodeState = Static<typeof NodeState>;

/** A DNS name (RFC 1123, dotted) or an IPv4 address; what PostgreSQL clients can connect to. */
const HostName = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: "^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$",
  description: "DNS name or IPv4 address the node's PostgreSQL is reached at",
});

export const NodeSchema = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    name: Type.String(),
    host: Type.String(),
    port: Type.Integer(),
    role: Type.Literal("worker"),
    state: NodeState,
    reason: Type.Optional(
      Type.String({
        description: "why a pending node is not verified yet (its identity could not be read, or differs)",
      }),
    ),
    placements: Type.Object(
      {
        active: Type.Integer({ minimum: 0 }),
        stale: Type.Integer({
          minimum: 0,
          description: "placements that missed writes; repaired when the node answers",
        }),
      },
      { additionalProperties: false },
    ),
  },
  { $id: "Node", additionalProperties: false },
);
export type NodeJson = Static<typeof NodeSchema>;

export const NodeListSchema = Type.Object({ nodes: Type.Array(NodeSchema) }, { additionalProperties: false });
export type NodeListJson = Static<typeof NodeListSchema>;

export const RegisterNodeBody = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
      description: "stable node name: the pod name (`herd-1`)",
    }),
    host: HostName,
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  { additionalProperties: false },
);
export type RegisterNodeBody = Static<typeof RegisterNodeBody>;

export const NodeIdParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2147483647 }),
});
export type NodeIdParams = Static<typeof NodeIdParams>;

export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String(),
  message: Type.String(),
  code: Type.Optional(Type.String()),
});
export type ErrorBody = Static<typeof ErrorBody>;
