import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { NodeRegistry } from "../metadata/node-registry.js";

/** The coordinator's Prometheus metrics; `/metrics` renders `registry`. */
export class AdminMetrics {
  readonly registry = new Registry();
  readonly adminRequests: Counter<"method" | "route" | "status">;

  constructor(nodes: NodeRegistry) {
    collectDefaultMetrics({ register: this.registry, prefix: "herd_coordinator_" });
    this.adminRequests = new Counter({
      name: "herd_admin_requests_total",
      help: "Admin API requests by route and status code.",
      labelNames: ["method", "route", "status"] as const,
      registers: [this.registry],
    });
    new Gauge({
      name: "herd_nodes",
      help: "Worker nodes known to the coordinator, by state.",
      labelNames: ["state"] as const,
      registers: [this.registry],
      async collect() {
        const counts = { pending: 0, active: 0, unreachable: 0, draining: 0 };
        for (const node of await nodes.list()) counts[node.state] += 1;
        for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
      },
    });
  }
}
