import { type Exchange, ResultCollector } from "../connection/pg-connection.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeCopyDone, encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";

/** Bytes of rows put in one CopyData message. */
const COPY_DATA_BYTES = 64 * 1024;

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
        // rows several to a CopyData message (PostgreSQL takes rows cut anywhere between messages)
        let inMessage = 0;
        for (const row of rows) {
          if (inMessage === 0) w.begin(FrontendMessage.copyData);
          w.bytes(row);
          inMessage += row.length;
          if (inMessage >= COPY_DATA_BYTES) {
            w.end();
            inMessage = 0;
            if (w.length > 256 * 1024) connection.write(w.flush());
          }
        }
        if (inMessage > 0) w.end();
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
