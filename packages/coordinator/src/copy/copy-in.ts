import { type Exchange, ResultCollector } from "../connection/pg-connection.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeCopyDone, encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";

/** Bytes of rows put in one CopyData message. */
const COPY_DATA_BYTES = 256 * 1024;

/**
 * Runs `COPY … FROM STDIN` on a worker with the given rows (whole rows, one after another): the
 * statement, the rows as CopyData once the server is ready for them, then CopyDone. Throws the
 * server's error.
 */
export async function copyRowsInto(connection: WorkerConnection, sql: string, rows: Buffer): Promise<string> {
  const collector = new ResultCollector();
  const exchange: Exchange = {
    message(frame: Frame) {
      if (frame.type === BackendMessage.copyInResponse) {
        // (PostgreSQL takes rows cut anywhere between CopyData messages)
        const w = new BufferWriter(rows.length + 5 * Math.ceil(rows.length / COPY_DATA_BYTES) + 16);
        for (let offset = 0; offset < rows.length; offset += COPY_DATA_BYTES) {
          w.begin(FrontendMessage.copyData);
          w.bytes(rows.subarray(offset, offset + COPY_DATA_BYTES));
          w.end();
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
