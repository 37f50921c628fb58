import { type RunningStatement, statementActivity } from "../executor/statement-activity.js";
import type { Catalog } from "../metadata/catalog.js";
import type { BackendPool } from "../protocol/backend-pool.js";
import type { CancelRegistry } from "../protocol/cancel-registry.js";
import { activeTransactions, type TransactionBackends } from "../transaction/active-transactions.js";
import type { Peers } from "./peers.js";

/** What one process answers about itself when another asks (peers.ts), by operation. */
export type PeerOperation =
  | "reloadCatalogs"
  | "cancel"
  | "runningStatements"
  | "transactions"
  | "markVictim"
  | "closeIdleBackends";

export interface PeerCall {
  readonly kind: PeerOperation;
  readonly args?: readonly number[];
}

/**
 * This process's own part of a peer operation. A process still starting has no catalog or no
 * SQL port yet: nothing to reload (its first load comes after the change) and no session to cancel.
 */
export function answerHere(
  call: PeerCall,
  here: { catalog?: Catalog; cancels?: CancelRegistry; backends?: BackendPool },
): Promise<unknown> {
  const [first = 0, second = 0] = call.args ?? [];
  switch (call.kind) {
    case "reloadCatalogs":
      return (here.catalog?.reloadHere() ?? Promise.resolve()).then(() => null);
    case "cancel":
      return here.cancels?.cancelHere(first, second) ?? Promise.resolve(false);
    case "runningStatements":
      // (entries: what crosses the IPC channel is JSON)
      return Promise.resolve([...statementActivity.here()]);
    case "transactions":
      return Promise.resolve(activeTransactions.snapshot());
    case "markVictim":
      activeTransactions.markVictim(first);
      return Promise.resolve(null);
    case "closeIdleBackends":
      here.backends?.closeIdle();
      return Promise.resolve(null);
  }
}

/** The answers of several processes to one operation, as one. */
export function mergeAnswers(kind: PeerOperation, answers: readonly unknown[]): unknown {
  switch (kind) {
    case "cancel":
      return answers.some((answer) => answer === true);
    case "runningStatements":
    case "transactions":
      return answers.flatMap((answer) => (Array.isArray(answer) ? answer : []));
    default:
      return null;
  }
}

/** Peers reached through `ask`, which runs a call on every other process and merges their answers. */
export function peersThrough(count: () => number, ask: (call: PeerCall) => Promise<unknown>): Peers {
  return {
    get count() {
      return count();
    },
    reloadCatalogs: async () => {
      await ask({ kind: "reloadCatalogs" });
    },
    cancel: async (processId, secretKey) => (await ask({ kind: "cancel", args: [processId, secretKey] })) === true,
    runningStatements: async () => new Map((await ask({ kind: "runningStatements" })) as [number, RunningStatement][]),
    transactions: async () => (await ask({ kind: "transactions" })) as TransactionBackends[],
    markVictim: async (pid) => {
      await ask({ kind: "markVictim", args: [pid] });
    },
    closeIdleBackends: async () => {
      await ask({ kind: "closeIdleBackends" });
    },
  };
}
