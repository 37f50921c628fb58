import { Backoff, errorMessage, type Logger, type NodeJson, type RegisterNodeBody, sleep } from "@herd/shared";

export interface RegistrarOptions {
  readonly coordinatorUrl: string;
  readonly adminToken: string;
  readonly node: RegisterNodeBody;
  readonly heartbeatIntervalMs: number;
  readonly logger: Logger;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

/**
 * Registers this worker with the coordinator and keeps doing so as a heartbeat. Registration is
 * idempotent by node name, so the heartbeat is the same call: a coordinator that restarted (or
 * lost its metadata) relearns this worker within one interval. Failures retry with capped
 * exponential backoff and jitter, so a cluster's workers don't hammer a coordinator that is
 * coming up.
 */
export class Registrar {
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private registered: NodeJson | undefined;
  private failures = 0;

  constructor(private readonly options: RegistrarOptions) {}

  get node(): NodeJson | undefined {
    return this.registered;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.options.backoff ?? { initialMs: 250, maxMs: 10_000 });
    const { logger } = this.options;
    while (!this.stopped.signal.aborted) {
      try {
        const node = await this.registerOnce();
        if (this.registered?.id !== node.id || this.failures > 0) {
          logger.info("registered with the coordinator", { node_id: node.id, name: node.name });
        }
        this.registered = node;
        this.failures = 0;
        backoff.reset();
        await sleep(this.options.heartbeatIntervalMs, this.stopped.signal);
      } catch (error) {
        if (this.stopped.signal.aborted) return;
        this.failures += 1;
        const delay = backoff.next();
        // first failure, then every tenth: a coordinator that takes a while must not flood the log
        if (this.failures === 1 || this.failures % 10 === 0) {
          logger.warn("cannot register with the coordinator; retrying", {
            url: this.options.coordinatorUrl,
            error: errorMessage(error),
            failures: this.failures,
            retry_in_ms: delay,
          });
        }
        await sleep(delay, this.stopped.signal);
      }
    }
  }

  private async registerOnce(): Promise<NodeJson> {
    const response = await fetch(new URL("/v1/nodes", this.options.coordinatorUrl), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.options.adminToken}` },
      body: JSON.stringify(this.options.node),
      signal: AbortSignal.any([this.stopped.signal, AbortSignal.timeout(5_000)]),
    });
    if (response.status === 401) throw new Error("the coordinator rejected the admin token (401)");
    if (!response.ok) throw new Error(`the coordinator answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as NodeJson;
  }
}
