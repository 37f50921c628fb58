import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export interface ControlPlaneBinaries {
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly helm: string;
}

/**
 * The binaries built by build-control-plane.sh (`.ci/run` builds them before the tests). A test
 * never builds them itself: that takes far longer than a test may, so a missing binary fails the
 * test with the command that builds it.
 */
export function controlPlaneBinaries(): ControlPlaneBinaries {
  const script = join(import.meta.dirname, "build-control-plane.sh");
  const binDir = execFileSync("bash", [script, "--bin-dir"], { encoding: "utf8" }).trim();
  const found = {
    etcd: join(binDir, "etcd"),
    kubeApiserver: join(binDir, "kube-apiserver"),
    kubeControllerManager: join(binDir, "kube-controller-manager"),
    helm: join(binDir, "helm"),
  };
  const missing = Object.values(found).filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(", ")}: run \`bash test/k8s/build-control-plane.sh\` first`);
  }
  return found;
}
