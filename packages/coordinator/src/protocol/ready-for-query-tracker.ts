import type { TransactionStatus } from "./backend-messages.js";

/**
 * Follows message boundaries in a server's byte stream without copying it, to learn the
 * transaction status from each ReadyForQuery ('Z') while the bytes are relayed untouched.
 * Messages may be split anywhere across chunks, even inside the 5-byte header.
 */
export class ReadyForQueryTracker {
  status: TransactionStatus = "I";
  /** ReadyForQuery messages seen so far. */
  readyCount = 0;
  private readonly header = Buffer.alloc(5);
  private headerFilled = 0;
  private bodyRemaining = 0;
  private bodyIsReady = false;

  scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyRemaining > 0) {
        if (this.bodyIsReady) {
          this.status = String.fromCharCode(chunk[i] as number) as TransactionStatus;
          this.readyCount += 1;
          this.bodyIsReady = false;
        }
        const take = Math.min(this.bodyRemaining, chunk.length - i);
        this.bodyRemaining -= take;
        i += take;
        continue;
      }
      const take = Math.min(5 - this.headerFilled, chunk.length - i);
      chunk.copy(this.header, this.headerFilled, i, i + take);
      this.headerFilled += take;
      i += take;
      if (this.headerFilled === 5) {
        this.headerFilled = 0;
        this.bodyRemaining = this.header.readInt32BE(1) - 4;
        this.bodyIsReady = this.header[0] === 0x5a && this.bodyRemaining > 0; // 'Z'
      }
    }
  }
}
