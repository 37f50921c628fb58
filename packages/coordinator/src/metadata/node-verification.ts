import { errorMessage } from "@herd/shared";
import pg from "pg";

/** What the coordinator concluded of a node's registration. */
export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface NodeVerifierOptions {
  /** The cluster this coordinator serves: a node must carry the same cluster id. */
  readonly clusterId: string;
  /** How the coordinator logs in to workers' PostgreSQL. */
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** How long to try to reach the node (ms). */
  readonly timeoutMs?: number;
}

/**
 * Proves a registration: the coordinator connects to the PostgreSQL at the address the node gave,
 * with its own credential, and reads the identity the node's bot stamped on its volume
 * (`herd-node.json`, next to the data directory: cluster id and pod name, worker-bot's
 * volume-identity.ts). Only a server that accepts the coordinator's credential and whose volume
 * belongs to this node of this cluster is that node; anything else is a forged or misdirected
 * registration, and the node stays pending with the reason.
 */
export class NodeVerifier {
  constructor(private readonly options: NodeVerifierOptions) {}

  async verify(node: { readonly name: string; readonly host: string; readonly port: number }): Promise<Verdict> {
    const { options } = this;
    const client = new pg.Client({
      host: node.host,
      port: node.port,
      user: options.user,
      password: options.password,
      database: options.database,
      application_name: "herd-verify",
      connectionTimeoutMillis: options.timeoutMs ?? 3_000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      const { rows } = await client.query<{ identity: string }>(
        "SELECT pg_catalog.pg_read_file(pg_catalog.current_setting('data_directory') || '/../herd-node.json') AS identity",
      );
      const identity = JSON.parse(rows[0]?.identity ?? "null") as { clusterId?: unknown; podName?: unknown } | null;
      if (identity?.clusterId !== options.clusterId || identity?.podName !== node.name) {
        return {
          ok: false,
          reason: `${node.host}:${node.port} holds the volume of ${String(identity?.podName)} of cluster "${String(identity?.clusterId)}", not ${node.name} of "${options.clusterId}"`,
        };
      }
      return { ok: true };
    } catch (error) {
      return {
        ok: false,
        reason: `could not read the volume identity at ${node.host}:${node.port}: ${errorMessage(error)}`,
      };
    } finally {
      await client.end().catch(() => {});
    }
  }
}
