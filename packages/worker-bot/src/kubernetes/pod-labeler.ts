import { Backoff, errorMessage, type Logger, PodLabels, type PodState, type Role, sleep } from "@herd/shared";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { apiStatus, type KubeApi } from "./kube-api.js";

export interface PodLabelerOptions {
  readonly api: KubeApi;
  readonly podName: string;
  readonly role: Role;
  readonly logger: Logger;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

/**
 * Keeps this pod's `herd.dev/role` and `herd.dev/state` labels on its own Pod object, so the
 * client Service finds the coordinator and the coordinator finds the workers.
 *
 * Each change is a JSON merge patch of `metadata.labels` (only the two keys; other labels stay).
 * client-node sends JSON Patch unless the Content-Type is set, hence `setHeaderOptions`. A failed
 * patch (409 conflict, 429, 5xx, the API server restarting, RBAC not yet in place) is retried with
 * backoff until it lands or a newer state replaces it: only the latest state matters.
 */
export class PodLabeler {
  private wanted: PodState | undefined;
  private applied: PodState | undefined;
  private loop: Promise<void> | undefined;
  private readonly stopped = new AbortController();

  constructor(private readonly options: PodLabelerOptions) {}

  /** Asks for `state`; the returned promise settles when it (or a later state) is on the Pod. */
  set(state: PodState): Promise<void> {
    this.wanted = state;
    this.loop ??= this.run();
    return this.loop;
  }

  /** The state last written to the Pod. */
  get current(): PodState | undefined {
    return this.applied;
  }

  /** Gives up on any patch still retrying. */
  stop(): void {
    this.stopped.abort();
  }

  private async run(): Promise<void> {
    const { logger } = this.options;
    const backoff = new Backoff(this.options.backoff ?? { initialMs: 200, maxMs: 10_000 });
    let failures = 0;
    try {
      while (this.wanted !== this.applied && !this.stopped.signal.aborted) {
        const state = this.wanted as PodState;
        try {
          await this.patch(state);
          this.applied = state;
          logger.info("labelled the pod", { [PodLabels.state]: state });
          failures = 0;
          backoff.reset();
        } catch (error) {
          failures += 1;
          const delay = backoff.next();
          if (failures === 1 || failures % 10 === 0) {
            logger.warn("cannot label the pod; retrying", {
              status: apiStatus(error),
              error: errorMessage(error).split("\n")[0],
              failures,
              retry_in_ms: delay,
            });
          }
          await sleep(delay, this.stopped.signal);
        }
      }
    } finally {
      // cleared in the same step as the loop's last check: a later `set` starts a new loop
      this.loop = undefined;
    }
  }

  private async patch(state: PodState): Promise<void> {
    const { api, podName, role } = this.options;
    await api.core.patchNamespacedPod(
      {
        name: podName,
        namespace: api.namespace,
        body: { metadata: { labels: { [PodLabels.role]: role, [PodLabels.state]: state } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
}
