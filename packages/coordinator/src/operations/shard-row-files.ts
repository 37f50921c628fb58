import { type FileHandle, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Exchange, ResultCollector } from "../connection/pg-connection.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
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
  private readonly files: ({ handle: FileHandle; size: number } | undefined)[];
  private directory: Promise<string> | undefined;
  /** Writes under way, in order (one chain: the disk is one resource), and the first failure. */
  private writing: Promise<void> = Promise.resolve();
  private queued = 0;
  private failure: unknown;

  constructor(shardCount: number) {
    this.buffers = Array.from({ length: shardCount }, () => []);
    this.buffered = new Array(shardCount).fill(0);
    this.files = new Array(shardCount).fill(undefined);
  }

  /** Adds a row to shard `index`; false: wait for `onceDrained` before adding more. */
  add(index: number, row: Buffer): boolean {
    this.rows += 1;
    (this.buffers[index] as Buffer[]).push(row);
    this.buffered[index] = (this.buffered[index] as number) + row.length;
    if ((this.buffered[index] as number) >= BUFFER_BYTES) this.write(index);
    return this.queued === 0;
  }

  /** Shard `index` has rows. */
  has(index: number): boolean {
    return this.files[index] !== undefined;
  }

  onceDrained(resume: () => void): void {
    void this.writing.then(resume, resume);
  }

  /** Writes what is still buffered; throws the first write failure. */
  async finish(): Promise<void> {
    for (let index = 0; index < this.buffers.length; index += 1) if (this.buffered[index]) this.write(index);
    await this.writing;
    if (this.failure) throw this.failure;
  }

  /** Streams shard `index`'s rows into `sql` (a COPY … FROM STDIN) on `connection`; resolves with its tag. */
  async copyInto(index: number, connection: WorkerConnection, sql: string): Promise<string> {
    const file = this.files[index];
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
          for (let offset = 0; file && offset < file.size && !answered; ) {
            const { bytesRead } = await file.handle.read(chunk, 0, Math.min(CHUNK_BYTES, file.size - offset), offset);
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
  async dispose(): Promise<void> {
    await this.writing.catch(() => {});
    const directory = this.directory;
    this.directory = undefined;
    for (const file of this.files) await file?.handle.close().catch(() => {});
    this.files.fill(undefined);
    if (directory) await rm(await directory, { recursive: true, force: true });
  }

  private write(index: number): void {
    const rows = this.buffers[index] as Buffer[];
    this.buffers[index] = [];
    this.buffered[index] = 0;
    this.queued += 1;
    this.writing = this.writing.then(async () => {
      try {
        if (this.failure) return;
        this.directory ??= mkdtemp(join(tmpdir(), "herd-distribute-"));
        const directory = await this.directory;
        let file = this.files[index];
        if (!file) {
          file = { handle: await open(join(directory, `shard-${index}`), "w+", 0o600), size: 0 };
          this.files[index] = file;
        }
        const data = Buffer.concat(rows);
        await file.handle.write(data, 0, data.length, file.size);
        file.size += data.length;
      } catch (error) {
        this.failure ??= error;
      } finally {
        this.queued -= 1;
      }
    });
  }
}
