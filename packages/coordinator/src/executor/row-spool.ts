import type { FileHandle } from "node:fs/promises";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TextRowSink, textRow } from "./intermediate-result.js";

/** A batch of rows as text, in the order they came. */
export type RowBatch = readonly (readonly (string | null)[])[];

/** How big a batch grows before it is written out (text bytes) or how many rows it holds. */
export const SPOOL_BATCH_BYTES = 4 * 1024 ** 2;
export const SPOOL_BATCH_ROWS = 10_000;

/**
 * A statement's rows in batches of bounded size, for a statement that uses them a batch at a
 * time (INSERT … SELECT between tables that are not colocated). The batch being filled is in
 * memory; full batches go to a temporary file on the coordinator's disk, and while one is being
 * written the sender is paused (`raw` answers false), so memory holds about two batches however
 * many rows the statement returns. A result of one batch never touches the disk. `dispose`
 * removes the file.
 */
export class RowSpool extends TextRowSink {
  /** Rows taken so far. */
  count = 0;
  /** Text bytes taken so far. */
  bytes = 0;
  private batch: (string | null)[][] = [];
  private batchBytes = 0;
  private readonly written: { offset: number; length: number }[] = [];
  private file: { directory: string; handle: FileHandle } | undefined;
  private end = 0;
  /** The write of a full batch under way (and the first error of any). */
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** Full batches not yet on disk. */
  private queued = 0;

  constructor(
    private readonly batchBytesLimit = SPOOL_BATCH_BYTES,
    private readonly batchRowsLimit = SPOOL_BATCH_ROWS,
  ) {
    super();
  }

  override onceDrained(resume: () => void): void {
    void this.writing.then(resume, resume);
  }

  /** The batches in order; the rows of each are not kept once the next is asked for. */
  async *batches(): AsyncGenerator<RowBatch> {
    await this.writing;
    if (this.failure) throw this.failure;
    const handle = this.file?.handle;
    for (const { offset, length } of this.written) {
      const buffer = Buffer.allocUnsafe(length);
      await (handle as FileHandle).read(buffer, 0, length, offset);
      yield JSON.parse(buffer.toString("utf8")) as RowBatch;
    }
    if (this.batch.length > 0) yield this.batch;
  }

  /** Removes the temporary file (safe to call more than once). */
  async dispose(): Promise<void> {
    await this.writing.catch(() => {});
    const file = this.file;
    this.file = undefined;
    if (!file) return;
    await file.handle.close().catch(() => {});
    await rm(file.directory, { recursive: true, force: true });
  }

  protected add(values: readonly (Buffer | string | null)[]): void {
    const { row, bytes } = textRow(values);
    this.batch.push(row);
    this.batchBytes += bytes;
    this.bytes += bytes;
    this.count += 1;
    if (this.batchBytes >= this.batchBytesLimit || this.batch.length >= this.batchRowsLimit) this.writeBatch();
  }

  protected override accepting(): boolean {
    return this.queued === 0;
  }

  private writeBatch(): void {
    const full = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.queued += 1;
    this.writing = this.writing.then(async () => {
      if (this.failure) return;
      try {
        this.file ??= await openSpoolFile();
        const data = Buffer.from(JSON.stringify(full), "utf8");
        await this.file.handle.write(data, 0, data.length, this.end);
        this.written.push({ offset: this.end, length: data.length });
        this.end += data.length;
      } catch (error) {
        this.failure = error;
      } finally {
        this.queued -= 1;
      }
    });
  }
}

async function openSpoolFile(): Promise<{ directory: string; handle: FileHandle }> {
  const directory = await mkdtemp(join(tmpdir(), "herd-spool-"));
  return { directory, handle: await open(join(directory, "rows"), "w+", 0o600) };
}
