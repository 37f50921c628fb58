import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const CHART = join(import.meta.dirname, "..", "..", "charts", "herd");

export interface HelmResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where helm runs: its binary, a scratch directory, and the API server's kubeconfig if any. */
export interface HelmPlace {
  readonly binaries: { readonly helm: string };
  readonly dir: string;
  readonly kubeconfigPath?: string;
}

/**
 * Runs the real helm (against the control plane's API server when given one), with its cache and
 * config kept in the control plane's scratch directory. Never throws: the result says how it went.
 */
export async function helm(plane: HelmPlace, ...args: string[]): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await run(plane.binaries.helm, args, {
      env: {
        PATH: process.env.PATH,
        HOME: plane.dir,
        KUBECONFIG: plane.kubeconfigPath ?? join(plane.dir, "no-cluster.kubeconfig"),
        HELM_CACHE_HOME: join(plane.dir, "helm", "cache"),
        HELM_CONFIG_HOME: join(plane.dir, "helm", "config"),
        HELM_DATA_HOME: join(plane.dir, "helm", "data"),
      },
      maxBuffer: 32 * 1024 * 1024,
      timeout: 120_000,
    });
    return { ok: true, stdout, stderr };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: failed.stdout ?? "", stderr: failed.stderr ?? failed.message };
  }
}

/** Like `helm`, but a failure throws with helm's own words. */
export async function helmOk(plane: HelmPlace, ...args: string[]): Promise<string> {
  const result = await helm(plane, ...args);
  if (!result.ok) throw new Error(`helm ${args.join(" ")} failed:\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}
