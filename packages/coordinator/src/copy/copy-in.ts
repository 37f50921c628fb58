import { type Exchange, ResultCollector } from "../connection/pg-connection.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeCopyData, encodeCopyDone, encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";

/**
 * Runs `COPY … FROM STDIN` on a worker with the given rows: the statement, the rows as CopyData
 * once the server is ready for them, then CopyDone. Throws the server's error.
 */
export async function copyRowsInto(
  connection: WorkerConnection,
  sql: string,
  rows: readonly Buffer[],
): Promise<string> {
  const w = new BufferWriter(64 * 1024);
  const collector = new ResultCollector();
  const exchange: Exchange = {
    message(frame: Frame) {
      if (frame.type === BackendMessage.copyInResponse) {
        for (const row of rows) {
          encodeCopyData(w, row);
          if (w.length > 256 * 1024) connection.write(w.flush());
        }
        encodeCopyDone(w);
        connection.write(w.flush());
        return;
      }
      collector.message(frame);
    },
  };
  const request = new BufferWriter(128);
  encodeQuery(request, sql);
  await connection.exchange(request.flush(), exchange);
  return collector.result().tag;
}
