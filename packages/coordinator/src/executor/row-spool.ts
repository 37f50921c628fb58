import { TextRowSink, textRow } from "./intermediate-result.js";
import { SpillFiles } from "./spill-files.js";

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
  /** Where each full batch is in the file. */
  private readonly written: { offset: number; length: number }[] = [];
  private end = 0;
  private readonly files = new SpillFiles("herd-spool-");

  constructor(
    private readonly batchBytesLimit = SPOOL_BATCH_BYTES,
    private readonly batchRowsLimit = SPOOL_BATCH_ROWS,
  ) {
    super();
  }

  override onceDrained(resume: () => void): void {
    this.files.onceWritten(resume);
  }

  /** The batches in order; the rows of each are not kept once the next is asked for. */
  async *batches(): AsyncGenerator<RowBatch> {
    await this.files.settled();
    for (const { offset, length } of this.written) {
      const buffer = Buffer.allocUnsafe(length);
      await this.files.read(0, buffer, length, offset);
      yield JSON.parse(buffer.toString("utf8")) as RowBatch;
    }
    if (this.batch.length > 0) yield this.batch;
  }

  /** Removes the temporary file (safe to call more than once). */
  dispose(): Promise<void> {
    return this.files.dispose();
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
    return this.files.pending === 0;
  }

  private writeBatch(): void {
    const data = Buffer.from(JSON.stringify(this.batch), "utf8");
    this.batch = [];
    this.batchBytes = 0;
    this.written.push({ offset: this.end, length: data.length });
    this.end += data.length;
    this.files.append(0, data);
  }
}
