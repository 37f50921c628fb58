import { HerdError } from "./herd-error.js";
import { SqlState } from "./sql-state.js";

export interface PodIdentity {
  /** The StatefulSet's name: the pod name without its ordinal suffix (`mydb` for `mydb-2`). */
  readonly statefulSet: string;
  readonly ordinal: number;
  readonly podName: string;
}

// A StatefulSet pod is named `<statefulset>-<ordinal>`; the set name is a DNS label (RFC 1123).
const POD_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)-(0|[1-9][0-9]{0,5})$/;

/** Reads the ordinal from a StatefulSet pod name such as `herd-0` or `my-db-12`. */
export function parsePodName(podName: string): PodIdentity {
  const match = POD_NAME.exec(podName);
  if (!match || podName.length > 63) {
    throw new HerdError(`cannot read an ordinal from pod name "${podName}"`, {
      sqlState: SqlState.invalidParameterValue,
      hint: "A pod name must look like <statefulset>-<ordinal>, e.g. herd-0 (set POD_NAME).",
    });
  }
  return { statefulSet: match[1] as string, ordinal: Number(match[3]), podName };
}

/** Ordinal 0 leads; every other ordinal carries shards. */
export function roleForOrdinal(ordinal: number): "coordinator" | "worker" {
  return ordinal === 0 ? "coordinator" : "worker";
}
