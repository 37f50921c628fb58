import {
  Backoff,
  Defaults,
  errorMessage,
  type Logger,
  PodLabels,
  parsePodName,
  type RegisterNodeBody,
} from "@herd/shared";
import { type Informer, makeInformer, type ObjectCache, type V1Pod } from "@kubernetes/client-node";
import { apiStatus, type KubeApi } from "./kube-api.js";

/** What discovery does with what it sees; the coordinator's node registry implements it. */
export interface DiscoveredNodes {
  /** A worker seen through its Pod: add it when the coordinator does not know it yet. */
  discover(node: RegisterNodeBody): Promise<{ readonly created: boolean }>;
  /** The worker's Pod is gone: whatever it last said no longer holds. */
  podGone(name: string): Promise<void>;
}

export interface WorkerPodDiscoveryOptions {
  readonly api: KubeApi;
  /** This cluster's StatefulSet: pods of other sets in the namespace are not ours. */
  readonly statefulSet: string;
  /** Extra label selector narrowing the watch to this cluster's pods (the chart's selector). */
  readonly podSelector?: string;
  /** The stable DNS name of a pod (`<pod>.<headless>.<ns>.svc.cluster.local`). */
  readonly dnsName: (podName: string) => string;
  readonly nodes: DiscoveredNodes;
  readonly logger: Logger;
}

/**
 * The coordinator's side of two-sided discovery. Workers register themselves over the admin API;
 * in Kubernetes the coordinator also lists and watches the worker Pods (by their `herd.dev/role`
 * label), so that it learns of a ready worker it has not heard from (its registration lost, or the
 * coordinator's metadata new) and notices at once when a worker's Pod is deleted, instead of
 * waiting for the heartbeat timeout.
 */
export class WorkerPodDiscovery {
  private informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private restart: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });

  constructor(private readonly options: WorkerPodDiscoveryOptions) {}

  get selector(): string {
    const { podSelector } = this.options;
    return [`${PodLabels.role}=worker`, podSelector].filter(Boolean).join(",");
  }

  async start(): Promise<void> {
    const { api, logger } = this.options;
    const selector = this.selector;
    const informer = makeInformer<V1Pod>(
      api.config,
      `/api/v1/namespaces/${api.namespace}/pods`,
      () => api.core.listNamespacedPod({ namespace: api.namespace, labelSelector: selector }),
      selector,
    );
    // an event means the list or watch works again (`connect` would not: it comes before the list)
    informer.on("add", (pod) => this.seen(pod));
    informer.on("update", (pod) => this.seen(pod));
    informer.on("delete", (pod) => this.gone(pod));
    // client-node's informer stops on an error (API server away, 403): start it again later
    informer.on("error", (error) => {
      if (this.stopped) return;
      const delay = this.backoff.next();
      logger.warn("watching worker pods failed; retrying", {
        status: apiStatus(error),
        error: errorMessage(error).split("\n")[0],
        retry_in_ms: delay,
      });
      this.restart = setTimeout(() => void informer.start().catch(() => {}), delay);
    });
    this.informer = informer;
    await informer.start().catch(() => {}); // reported through "error", and retried
    logger.info("watching worker pods", { selector });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restart);
    await this.informer?.stop();
  }

  private ours(pod: V1Pod): string | undefined {
    const name = pod.metadata?.name;
    if (!name) return undefined;
    try {
      const identity = parsePodName(name);
      return identity.statefulSet === this.options.statefulSet && identity.ordinal > 0 ? name : undefined;
    } catch {
      return undefined;
    }
  }

  private seen(pod: V1Pod): void {
    this.backoff.reset();
    const name = this.ours(pod);
    if (!name || pod.metadata?.labels?.[PodLabels.state] !== "ready" || pod.metadata.deletionTimestamp) return;
    const node = { name, host: this.options.dnsName(name), port: postgresPort(pod) };
    void this.options.nodes.discover(node).then(
      ({ created }) => {
        if (created) this.options.logger.info("learned of a worker from its pod", { name, host: node.host });
      },
      (error) => this.options.logger.warn("cannot record a discovered worker", { name, error: errorMessage(error) }),
    );
  }

  private gone(pod: V1Pod): void {
    this.backoff.reset();
    const name = this.ours(pod);
    if (!name) return;
    void this.options.nodes.podGone(name).then(
      () => this.options.logger.info("a worker's pod is gone; the worker reads unreachable", { name }),
      (error) => this.options.logger.warn("cannot record a gone worker pod", { name, error: errorMessage(error) }),
    );
  }
}

/** The container port named `postgresql` of the Pod's spec (the chart names it so), else 5432. */
function postgresPort(pod: V1Pod): number {
  for (const container of pod.spec?.containers ?? []) {
    const port = container.ports?.find((p) => p.name === "postgresql");
    if (port) return port.containerPort;
  }
  return Defaults.workerPostgresPort;
}
