import { type FileHandle, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Temporary files on the coordinator's disk for data that must not stay in memory (RowSpool,
 * ShardRowFiles): a directory made at the first write, one file per key, each appended to in
 * order. Writes run one after another (the disk is one resource); `pending` counts those not on
 * disk yet, so that a writer can hold its sender back; the first failure is kept and thrown by
 * `settled`. `dispose` removes everything (safe to call more than once).
 */
export class SpillFiles {
  /** Appends not on disk yet. */
  pending = 0;
  private directory: Promise<string> | undefined;
  private readonly files = new Map<number, { handle: FileHandle; size: number }>();
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown;

  /** `prefix`: the directory's name starts with it (`herd-spool-`). */
  constructor(private readonly prefix: string) {}

  /** Appends `data` to file `key`, after everything appended before. */
  append(key: number, data: Buffer): void {
    this.pending += 1;
    this.writing = this.writing.then(async () => {
      try {
        if (this.failure) return;
        this.directory ??= mkdtemp(join(tmpdir(), this.prefix));
        let file = this.files.get(key);
        if (!file) {
          file = { handle: await open(join(await this.directory, `file-${key}`), "w+", 0o600), size: 0 };
          this.files.set(key, file);
        }
        await file.handle.write(data, 0, data.length, file.size);
        file.size += data.length;
      } catch (error) {
        this.failure ??= error;
      } finally {
        this.pending -= 1;
      }
    });
  }

  /** File `key` has data. */
  has(key: number): boolean {
    return this.files.has(key);
  }

  /** Bytes appended to file `key` so far (once `settled`). */
  size(key: number): number {
    return this.files.get(key)?.size ?? 0;
  }

  /** Calls `resume` once the appends made so far are on disk (or failed). */
  onceWritten(resume: () => void): void {
    void this.writing.then(resume, resume);
  }

  /** Waits for every append; throws the first failure. */
  async settled(): Promise<void> {
    await this.writing;
    if (this.failure) throw this.failure;
  }

  /** Reads up to `length` bytes of file `key` at `position` into `buffer`; resolves with how many. */
  async read(key: number, buffer: Buffer, length: number, position: number): Promise<number> {
    const file = this.files.get(key);
    if (!file) return 0;
    return (await file.handle.read(buffer, 0, length, position)).bytesRead;
  }

  async dispose(): Promise<void> {
    await this.writing.catch(() => {});
    const directory = this.directory;
    this.directory = undefined;
    for (const file of this.files.values()) await file.handle.close().catch(() => {});
    this.files.clear();
    if (directory) await rm(await directory, { recursive: true, force: true });
  }
}
