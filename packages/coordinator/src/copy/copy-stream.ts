import { type Exchange, ResultCollector } from "../connection/pg-connection.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeCopyDone, encodeCopyFail, encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";

/** What a stream needs of either end: a worker's connection, or the coordinator's own (a session's backend). */
export type CopyEnd = Pick<WorkerConnection, "exchange" | "write" | "onceDrained" | "pause" | "resume">;

/** What a stream carried: the two COPY tags' row counts, and the bytes of data. */
export interface CopyStreamResult {
  readonly rowsOut: number;
  readonly rowsIn: number;
  readonly bytes: number;
}

/**
 * Streams `COPY … TO STDOUT` on `source` into `COPY … FROM STDIN` on `target`, server to server
 * through herd: a CopyData message from a server is byte for byte the CopyData a client sends,
 * so each is forwarded as it comes. A slow target holds the source back (its socket is paused).
 * Both statements run in whatever transaction their connections are in; a failure on either
 * side fails both (the target's COPY gets CopyFail) and is thrown.
 */
export async function streamCopy(
  source: CopyEnd,
  outSql: string,
  target: CopyEnd,
  inSql: string,
  progress?: (bytes: number) => void,
): Promise<CopyStreamResult> {
  let bytes = 0;
  const inbound = new ResultCollector();
  let targetReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    targetReady = resolve;
  });
  const inExchange: Exchange = {
    message(frame: Frame) {
      if (frame.type === BackendMessage.copyInResponse) targetReady();
      else inbound.message(frame);
    },
  };
  const inRequest = new BufferWriter(128);
  encodeQuery(inRequest, inSql);
  const copyingIn = target.exchange(inRequest.flush(), inExchange);
  // the target refused the COPY (no such table): its answer comes instead of CopyInResponse
  await Promise.race([ready, copyingIn]);
  if (inbound.error) {
    await copyingIn;
    throw inbound.error;
  }

  const outbound = new ResultCollector();
  const outExchange: Exchange = {
    message(frame: Frame) {
      if (frame.type === BackendMessage.copyData) {
        bytes += frame.raw.length;
        if (!target.write(frame.raw)) {
          source.pause();
          target.onceDrained(() => source.resume());
        }
        progress?.(bytes);
      } else if (frame.type !== BackendMessage.copyOutResponse && frame.type !== BackendMessage.copyDone) {
        outbound.message(frame);
      }
    },
  };
  const outRequest = new BufferWriter(128);
  encodeQuery(outRequest, outSql);
  const end = new BufferWriter(64);
  try {
    await source.exchange(outRequest.flush(), outExchange);
  } catch (error) {
    encodeCopyFail(end, "the source of the copy failed");
    target.write(end.flush());
    await copyingIn.catch(() => {});
    throw error;
  }
  if (outbound.error) {
    encodeCopyFail(end, `the source of the copy failed: ${outbound.error.message}`);
    target.write(end.flush());
    await copyingIn.catch(() => {});
    throw outbound.error;
  }
  encodeCopyDone(end);
  target.write(end.flush());
  await copyingIn;
  const rowsIn = countOf(inbound.result().tag);
  return { rowsOut: countOf(outbound.result().tag), rowsIn, bytes };
}

/** The row count of a `COPY n` tag. */
function countOf(tag: string): number {
  return Number(tag.split(" ").at(-1));
}
