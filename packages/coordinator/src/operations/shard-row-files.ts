import { type Exchange, ResultCollector } from "../connection/pg-connection.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { SpillFiles } from "../executor/spill-files.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeCopyData, encodeCopyDone, encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";

/** Rows gathered per shard before they are appended to its file. */
const BUFFER_BYTES = 256 * 1024;
/** CopyData messages sent from a file are this big. */
const CHUNK_BYTES = 256 * 1024;

/**
 * A table's rows (COPY text, one line each) sorted by shard into temporary files on the
 * coordinator's disk, so that distributing a table of any size holds only a few hundred kB of its
 * rows per shard in memory: `add` appends to the shard's buffer, a full buffer is written to the
 * shard's file (the sender waits for it: `add` answers false, `onceDrained` says when to go on),
 * then `copyInto` streams a shard's file into a COPY FROM STDIN. `dispose` removes the files.
 */
export class ShardRowFiles {
  /** Rows added so far. */
  rows = 0;
  private readonly buffers: Buffer[][];
  private readonly buffered: number[];
  private readonly files = new SpillFiles("herd-distribute-");

  constructor(shardCount: number) {
    this.buffers = Array.from({ length: shardCount }, () => []);
    this.buffered = new Array(shardCount).fill(0);
  }

  /** Adds a row to shard `index`; false: wait for `onceDrained` before adding more. */
  add(index: number, row: Buffer): boolean {
    this.rows += 1;
    (this.buffers[index] as Buffer[]).push(row);
    this.buffered[index] = (this.buffered[index] as number) + row.length;
    if ((this.buffered[index] as number) >= BUFFER_BYTES) this.write(index);
    return this.files.pending === 0;
  }

  /** Shard `index` has rows (once `finish` resolved). */
  has(index: number): boolean {
    return this.files.has(index);
  }

  onceDrained(resume: () => void): void {
    this.files.onceWritten(resume);
  }

  /** Writes what is still buffered; throws the first write failure. */
  async finish(): Promise<void> {
    for (let index = 0; index < this.buffers.length; index += 1) if (this.buffered[index]) this.write(index);
    await this.files.settled();
  }

  /** Streams shard `index`'s rows into `sql` (a COPY … FROM STDIN) on `connection`; resolves with its tag. */
  async copyInto(index: number, connection: WorkerConnection, sql: string): Promise<string> {
    const files = this.files;
    const size = files.size(index);
    const collector = new ResultCollector();
    let sending: Promise<void> = Promise.resolve();
    // the server answered (an error stops the COPY): nothing more to send
    let answered = false;
    const exchange: Exchange = {
      message(frame: Frame) {
        if (frame.type !== BackendMessage.copyInResponse) {
          collector.message(frame);
          return;
        }
        sending = (async () => {
          const w = new BufferWriter(CHUNK_BYTES + 64);
          const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
          for (let offset = 0; offset < size && !answered; ) {
            const bytesRead = await files.read(index, chunk, Math.min(CHUNK_BYTES, size - offset), offset);
            if (bytesRead === 0) break;
            offset += bytesRead;
            encodeCopyData(w, chunk.subarray(0, bytesRead));
            if (!connection.write(w.flush())) await new Promise<void>((resume) => connection.onceDrained(resume));
          }
          encodeCopyDone(w);
          connection.write(w.flush());
        })();
      },
    };
    const request = new BufferWriter(128);
    encodeQuery(request, sql);
    try {
      await connection.exchange(request.flush(), exchange);
    } finally {
      answered = true;
    }
    await sending;
    return collector.result().tag;
  }

  /** Removes the files (safe to call more than once). */
  dispose(): Promise<void> {
    return this.files.dispose();
  }

  private write(index: number): void {
    const rows = this.buffers[index] as Buffer[];
    this.buffers[index] = [];
    this.buffered[index] = 0;
    this.files.append(index, Buffer.concat(rows));
  }
}
