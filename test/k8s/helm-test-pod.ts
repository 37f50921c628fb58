import { PatchStrategy, setHeaderOptions, type V1Pod } from "@kubernetes/client-node";
import type { ControlPlane } from "./control-plane.js";
import { ManagedProcess } from "./managed-process.js";
import { containerEnv } from "./pod-runner.js";

/**
 * Plays the kubelet for a run-to-completion Pod such as the chart's `helm test` hook: runs its
 * container's command with its environment (this machine's psql and sh instead of the image's) in
 * a private mount namespace with the test's hosts file and a private /tmp, then reports the
 * outcome as the Pod's phase, which is what `helm test` waits for.
 */
export async function runToCompletion(
  plane: ControlPlane,
  pod: V1Pod,
  options: { hostsFile: string; env?: Record<string, string>; logFile: string },
): Promise<number | null> {
  const name = pod.metadata?.name as string;
  const namespace = pod.metadata?.namespace as string;
  const container = pod.spec?.containers[0];
  const command = [...(container?.command ?? []), ...(container?.args ?? [])];
  const script = [
    "set -e",
    'mount --bind "$1" /etc/hosts',
    "mount -t tmpfs -o mode=1777,size=16m herd-test-tmp /tmp",
    "shift",
    'exec "$@"',
  ].join("\n");
  const run = ManagedProcess.start(
    `pod ${name}`,
    "unshare",
    ["--mount", "sh", "-c", script, "sh", options.hostsFile, ...command],
    {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...(await containerEnv(plane, pod)), ...options.env },
      logFile: options.logFile,
    },
  );
  const code = await run.exitCode();
  await plane.core.patchNamespacedPodStatus(
    { name, namespace, body: { status: { phase: code === 0 ? "Succeeded" : "Failed" } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  return code;
}
