import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { Logger } from "@herd/shared";

export interface PassthroughProxyOptions {
  readonly listenHost: string;
  readonly listenPort: number;
  /** The coordinator's own PostgreSQL. */
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  readonly logger: Logger;
}

/**
 * Interim SQL front door: relays each client connection byte for byte to the coordinator's own
 * PostgreSQL, which authenticates it (SCRAM, the cluster password). It makes the SQL port usable
 * for psql and drivers until the protocol server (which parses and routes statements) replaces it.
 */
export class PassthroughProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly options: PassthroughProxyOptions) {}

  async listen(): Promise<void> {
    const { listenHost, listenPort } = this.options;
    const server = createServer({ noDelay: true }, (client) => this.relay(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listenPort, listenHost, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    this.server = undefined;
  }

  private relay(client: Socket): void {
    const upstream = createConnection({
      host: this.options.upstreamHost,
      port: this.options.upstreamPort,
      noDelay: true,
    });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const teardown = (error?: Error) => {
      if (error) this.options.logger.debug("relay closed", { error: error.message });
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", teardown).on("close", () => teardown());
    upstream.on("error", teardown).on("close", () => teardown());
    // pipe() gives backpressure both ways: a slow reader pauses the other side.
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
