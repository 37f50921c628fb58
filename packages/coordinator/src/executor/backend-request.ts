import { BufferWriter } from "../protocol/buffer-writer.js";
import {
  encodeBind,
  encodeExecute,
  encodeParse,
  encodeQuery,
  encodeSync,
  encodeTarget,
} from "../protocol/frontend-messages.js";
import { FrontendMessage } from "../protocol/message-codes.js";
import type { StatementRun } from "./statement-run.js";

/**
 * The client's statement as a request for the coordinator's PostgreSQL: a Query, or (extended
 * protocol) Parse/Bind/Describe/Execute/Sync on the unnamed statement with the client's
 * parameters, so PostgreSQL answers exactly as if the client had asked it.
 */
export function backendRequest(run: StatementRun): Buffer {
  const w = new BufferWriter(128);
  if (!run.bind) {
    encodeQuery(w, run.sql);
    return w.flush();
  }
  encodeParse(w, "", run.sql, run.parameterTypes);
  encodeBind(w, { ...run.bind, portal: "", statement: "" });
  if (run.describe) encodeTarget(w, FrontendMessage.describe, "P", "");
  encodeExecute(w);
  encodeSync(w);
  return w.flush();
}
