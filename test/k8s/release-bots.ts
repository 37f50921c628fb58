import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { NodeJson } from "@herd/shared";
import { expect } from "vitest";
import { freePortRange } from "../helpers/ports.js";
import { processesMentioning } from "../helpers/processes.js";
import type { ControlPlane } from "./control-plane.js";
import { eventually } from "./eventually.js";
import { CHART, helmOk } from "./helm.js";
import type { ManagedProcess } from "./managed-process.js";
import { type PodPorts, preparePodBot, writeHostsFile } from "./pod-runner.js";

export interface ReleaseBotsOptions {
  readonly plane: ControlPlane;
  readonly namespace: string;
  /** The /etc/hosts the pods see (writeHostsFile). */
  readonly hostsFile: string;
  readonly adminToken: string;
  /** Environment for every bot, after the test's defaults. */
  readonly env?: Record<string, string>;
}

/**
 * The bots of one release's Pods, started as the kubelet would (pod-runner.ts), each pod with its
 * own ports on loopback and its own volume directory (kept when the Pod is replaced, as a claim is).
 */
export class ReleaseBots {
  readonly bots = new Map<string, ManagedProcess>();
  readonly ports = new Map<string, PodPorts>();

  constructor(private readonly options: ReleaseBotsOptions) {}

  /**
   * `helm install herd` into `namespace` with the release's password and admin token (and
   * `sets`, more `--set` values), the pods' hosts file written first; then the coordinator's bot,
   * ready, then the bots of `workers`.
   */
  static async install(
    plane: ControlPlane,
    options: {
      readonly namespace: string;
      readonly password: string;
      readonly adminToken: string;
      readonly sets?: readonly string[];
      readonly workers: readonly string[];
    },
  ): Promise<ReleaseBots> {
    const hostsFile = join(plane.dir, "hosts");
    await writeHostsFile(hostsFile, "herd", "herd-hl", options.namespace, 8);
    const release = new ReleaseBots({ plane, namespace: options.namespace, hostsFile, adminToken: options.adminToken });
    const sets = [
      `auth.password=${options.password}`,
      `auth.adminToken=${options.adminToken}`,
      ...(options.sets ?? []),
    ];
    await helmOk(
      plane,
      "install",
      "herd",
      CHART,
      "--namespace",
      options.namespace,
      "--create-namespace",
      ...sets.flatMap((value) => ["--set", value]),
    );
    await release.startBot("herd-0");
    await release.waitReady();
    await Promise.all(options.workers.map((name) => release.startBot(name)));
    return release;
  }

  get hostsFile(): string {
    return this.options.hostsFile;
  }

  /** Until the coordinator answers its readiness probe. */
  async waitReady(): Promise<void> {
    await eventually(async () => expect((await fetch(`${this.coordinatorAdmin()}/readyz`)).status).toBe(200), 90_000);
  }

  readPod(name: string) {
    return this.options.plane.core.readNamespacedPod({ name, namespace: this.options.namespace });
  }

  dnsName(pod: string): string {
    return `${pod}.herd-hl.${this.options.namespace}.svc.cluster.local`;
  }

  coordinatorAdmin(): string {
    return `http://127.0.0.1:${this.ports.get("herd-0")?.admin}`;
  }

  /** The admin API of the coordinator, with the release's token. */
  admin(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.coordinatorAdmin()}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${this.options.adminToken}`,
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
    });
  }

  async nodes(): Promise<NodeJson[]> {
    const response = await this.admin("/v1/nodes");
    expect(response.status).toBe(200);
    return ((await response.json()) as { nodes: NodeJson[] }).nodes;
  }

  /** Starts the bot of pod `name` (as the kubelet would once the pod is scheduled). */
  async startBot(name: string, env: Record<string, string> = {}): Promise<ManagedProcess> {
    const launch = await this.prepareBot(name, env);
    return launch();
  }

  /** Prepares the bot of pod `name` (token, environment); the returned function starts it. */
  async prepareBot(name: string, env: Record<string, string> = {}): Promise<() => ManagedProcess> {
    const { plane } = this.options;
    const pod = await eventually(() => this.readPod(name));
    let podPorts = this.ports.get(name);
    if (!podPorts) {
      const base = await freePortRange(3);
      podPorts = { pg: base, admin: base + 1, sql: base + 2 };
      this.ports.set(name, podPorts);
    }
    const volumeDir = join(plane.dir, "volumes", `data-${name}`);
    await mkdir(volumeDir, { recursive: true });
    const launch = await preparePodBot({
      plane,
      pod,
      volumeDir,
      ports: podPorts,
      hostsFile: this.options.hostsFile,
      logFile: join(plane.dir, `bot-${name}.log`),
      env: {
        // by DNS name, with the coordinator's test port instead of 6480
        HERD_COORDINATOR_URL: `http://${this.dnsName("herd-0")}:${this.ports.get("herd-0")?.admin}`,
        HERD_HEARTBEAT_INTERVAL_MS: "500",
        // long, so that only the Pod watch can explain a worker read as unreachable in time
        HERD_HEARTBEAT_TIMEOUT_MS: "300000",
        ...this.options.env,
        ...env,
      },
    });
    return () => {
      const bot = launch();
      this.bots.set(name, bot);
      return bot;
    };
  }

  /** Stops every bot; a bot that had to be killed cannot stop its PostgreSQL: that is done here. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.bots.values()].map((bot) => bot.stop("SIGTERM", 20_000)));
    for (const leftover of processesMentioning(`postgres -D ${this.options.plane.dir}`))
      process.kill(leftover.pid, "SIGQUIT");
  }
}
