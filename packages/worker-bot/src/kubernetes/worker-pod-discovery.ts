import {
  Backoff,
  Defaults,
  errorMessage,
  type Logger,
  PodLabels,
  parsePodName,
  type RegisterNodeBody,
} from "@herd/shared";
import { type Informer, makeInformer, type ObjectCache, type V1Pod, type V1PodList } from "@kubernetes/client-node";
import { apiStatus, type KubeApi } from "./kube-api.js";

/** What discovery does with what it sees; the coordinator's node registry implements it. */
export interface DiscoveredNodes {
  /** A worker seen through its Pod: add it when the coordinator does not know it yet. */
  discover(node: RegisterNodeBody): Promise<{ readonly created: boolean }>;
  /**
   * The worker's Pod is gone: whatever it last said no longer holds. Resolves true when this
   * changed the node (it did not read as gone already), so that a gone Pod is logged once.
   */
  podGone(name: string): Promise<boolean>;
  /** The names of every node the coordinator knows. */
  names(): Promise<readonly string[]>;
}

export interface WorkerPodDiscoveryOptions {
  readonly api: KubeApi;
  /** This cluster's StatefulSet: pods of other sets in the namespace are not ours. */
  readonly statefulSet: string;
  /** Label selector narrowing the watch to this cluster's pods (the chart's selector). */
  readonly podSelector?: string;
  /** The stable DNS name of a pod (`<pod>.<headless>.<ns>.svc.cluster.local`). */
  readonly dnsName: (podName: string) => string;
  readonly nodes: DiscoveredNodes;
  readonly logger: Logger;
}

/**
 * The coordinator's side of two-sided discovery. Workers register themselves over the admin API;
 * in Kubernetes the coordinator also lists and watches this cluster's Pods, so that it learns of a
 * ready worker it has not heard from (its registration lost, or the coordinator's metadata new)
 * and notices at once when a worker's Pod is deleted, instead of waiting for the heartbeat timeout.
 *
 * A watch only reports what happens while it runs. When it was away (the API server restarting)
 * and resumes from a resourceVersion the server no longer has (410 Gone), the informer lists
 * again and reports deletions only of Pods it had in its cache: a Pod that registered, got its
 * labels and was deleted while the watch was away never was in that cache. So every list is also
 * checked against the coordinator's own nodes: a node of this StatefulSet whose Pod the list does
 * not hold is gone. And since the StatefulSet controller recreates a deleted Pod under the same
 * name, a Pod seen again with another uid, not ready yet, means its predecessor is gone too.
 */
export class WorkerPodDiscovery {
  private informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private restart: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  /** The uid of each worker Pod as last seen, to tell a replaced Pod from an updated one. */
  private readonly uids = new Map<string, string>();

  constructor(private readonly options: WorkerPodDiscoveryOptions) {}

  /**
   * Every Pod of the cluster, not only those labelled as workers: a worker's role label may land
   * only after it registered (the API server away), and its deletion must be seen all the same.
   */
  get selector(): string | undefined {
    return this.options.podSelector || undefined;
  }

  async start(): Promise<void> {
    const { api, logger } = this.options;
    const selector = this.selector;
    const informer = makeInformer<V1Pod>(
      api.config,
      `/api/v1/namespaces/${api.namespace}/pods`,
      () => this.listPods(),
      selector,
    );
    informer.on("add", (pod) => this.seen(pod));
    informer.on("update", (pod) => this.seen(pod));
    informer.on("delete", (pod) => {
      const name = this.ours(pod);
      if (!name) return;
      this.uids.delete(name);
      this.gone(name, "its pod was deleted");
    });
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
    logger.info("watching worker pods", { selector: selector ?? "(every pod of the namespace)" });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restart);
    await this.informer?.stop();
  }

  /**
   * The informer's list (at start, and after a watch could not resume), checked against the
   * coordinator's nodes. The nodes are read first: a node's Pod existed before the node could
   * register, so a node read before the list and missing from it is gone.
   */
  private async listPods(): Promise<V1PodList> {
    const { api } = this.options;
    const known = await this.options.nodes.names();
    const list = await api.core.listNamespacedPod({ namespace: api.namespace, labelSelector: this.selector });
    this.backoff.reset();
    const present = new Set(list.items.map((pod) => pod.metadata?.name));
    for (const name of known) {
      if (this.isWorkerPodName(name) && !present.has(name)) this.gone(name, "its pod is no longer listed");
    }
    return list;
  }

  private isWorkerPodName(name: string): boolean {
    try {
      const identity = parsePodName(name);
      return identity.statefulSet === this.options.statefulSet && identity.ordinal > 0;
    } catch {
      return false;
    }
  }

  private ours(pod: V1Pod): string | undefined {
    const name = pod.metadata?.name;
    return name && this.isWorkerPodName(name) ? name : undefined;
  }

  private seen(pod: V1Pod): void {
    this.backoff.reset();
    const name = this.ours(pod);
    if (!name) return;
    const labels = pod.metadata?.labels ?? {};
    const ready = labels[PodLabels.role] === "worker" && labels[PodLabels.state] === "ready";
    const uid = pod.metadata?.uid;
    const before = this.uids.get(name);
    if (uid) this.uids.set(name, uid);
    // recreated under the same name while the watch was away (its DELETED event never came); a
    // ready replacement speaks for itself (its bot registered), so only a new one not ready yet
    // says the node's last heartbeat came from a Pod that is gone
    if (before && uid && before !== uid && !ready) this.gone(name, "its pod was replaced");
    if (!ready || pod.metadata?.deletionTimestamp) return;
    const node = { name, host: this.options.dnsName(name), port: postgresPort(pod) };
    void this.options.nodes.discover(node).then(
      ({ created }) => {
        if (created) this.options.logger.info("learned of a worker from its pod", { name, host: node.host });
      },
      (error) => this.options.logger.warn("cannot record a discovered worker", { name, error: errorMessage(error) }),
    );
  }

  private gone(name: string, reason: string): void {
    void this.options.nodes.podGone(name).then(
      (changed) => {
        if (changed) this.options.logger.info("a worker's pod is gone; the worker reads unreachable", { name, reason });
      },
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
