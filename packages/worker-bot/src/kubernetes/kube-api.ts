import { ApiException, CoreV1Api, KubeConfig } from "@kubernetes/client-node";

/** What the bot knows of the Kubernetes API it runs under: a client and its own Pod. */
export interface KubeApi {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly namespace: string;
}

/**
 * The in-cluster client: the API server from KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's
 * token and CA from the files the kubelet mounts under /var/run/secrets/kubernetes.io/serviceaccount.
 * The token file is read on every request, so a rotated (projected) token is picked up.
 */
export function inClusterKubeApi(namespace: string): KubeApi {
  const config = new KubeConfig();
  config.loadFromCluster();
  return { config, core: config.makeApiClient(CoreV1Api), namespace };
}

/** The HTTP status of a failed API call, or undefined for a network error. */
export function apiStatus(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}
