import type { RunningStatement } from "../executor/statement-activity.js";
import type { TransactionBackends } from "../transaction/active-transactions.js";

/**
 * The other coordinator processes serving the SQL port, as one process reaches them (for what
 * is per process but must be seen whole: the catalog a statement plans with, cancel keys, the
 * statements and transactions under way). With one process there are none (`NO_PEERS`).
 */
export interface Peers {
  /** How many other processes serve the SQL port. */
  readonly count: number;
  /** Every other process has loaded the catalog again (after a change a client is about to be told of). */
  reloadCatalogs(): Promise<void>;
  /** Cancels the statement of the session holding this key, in whichever other process holds it. */
  cancel(processId: number, secretKey: number): Promise<boolean>;
  /** The statements herd runs for sessions of the other processes, by coordinator backend pid. */
  runningStatements(): Promise<Map<number, RunningStatement>>;
  /** The distributed transactions under way in the other processes (for the deadlock detector). */
  transactions(): Promise<TransactionBackends[]>;
  /** Tells every other process that the session of coordinator backend `pid` is a deadlock victim. */
  markVictim(pid: number): Promise<void>;
  /** Every other process ends its idle connections to the coordinator's PostgreSQL (before DROP DATABASE). */
  closeIdleBackends(): Promise<void>;
}

export const NO_PEERS: Peers = {
  count: 0,
  reloadCatalogs: async () => {},
  cancel: async () => false,
  runningStatements: async () => new Map(),
  transactions: async () => [],
  markVictim: async () => {},
  closeIdleBackends: async () => {},
};

let installed: Peers = NO_PEERS;

/** The other processes of this coordinator (set once at start when there are several). */
export function peers(): Peers {
  return installed;
}

export function installPeers(value: Peers): void {
  installed = value;
}
