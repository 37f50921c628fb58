import { activeTransactions } from "../transaction/active-transactions.js";
import type { TransactionsView } from "../transaction/deadlock-detector.js";
import { peers } from "./peers.js";

/**
 * The distributed transactions of every coordinator process, as the deadlock detector (which
 * runs in the first process) must see them: a cycle may pass through sessions of several.
 */
export const clusterTransactions: TransactionsView = {
  async snapshot() {
    return [...activeTransactions.snapshot(), ...(await peers().transactions())];
  },
  async markVictim(pid) {
    activeTransactions.markVictim(pid);
    await peers().markVictim(pid);
  },
};
