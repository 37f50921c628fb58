import { createServer, type Server } from "node:http";
import { listen } from "@herd/shared";

export interface ProbeChecks {
  /** Liveness: false only when the bot cannot recover by itself (its PostgreSQL gave up). */
  readonly live: () => boolean;
  /** Readiness: PostgreSQL answers and the worker is registered. */
  readonly ready: () => Promise<boolean>;
}

/** The worker bot's `/healthz` and `/readyz` for the kubelet's probes (and `herd up`). */
export class ProbeServer {
  private server: Server | undefined;

  constructor(private readonly checks: ProbeChecks) {}

  async listen(host: string, port: number): Promise<void> {
    const server = createServer((request, response) => {
      void this.answer(request.url ?? "/").then(([status, body]) => {
        response.writeHead(status, { "content-type": "application/json" });
        response.end(JSON.stringify(body));
      });
    });
    await listen(server, port, host);
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async answer(url: string): Promise<[number, { status: string }]> {
    const path = url.split("?")[0];
    if (path === "/healthz") return this.checks.live() ? [200, { status: "ok" }] : [503, { status: "failed" }];
    if (path === "/readyz") {
      const ready = await this.checks.ready().catch(() => false);
      return ready ? [200, { status: "ready" }] : [503, { status: "not ready" }];
    }
    return [404, { status: "not found" }];
  }
}
