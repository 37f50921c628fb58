/**
 * Builds PostgreSQL wire messages: `type` byte, int32 length (which counts itself but not the
 * type), then the body. Grows one buffer; `flush()` hands out everything written so far, so many
 * messages can go out in a single socket write.
 */
export class BufferWriter {
  private buffer: Buffer;
  private offset = 0;
  private messageStart = -1;

  constructor(initialSize = 1024) {
    this.buffer = Buffer.allocUnsafe(initialSize);
  }

  /** Starts a message; `type` (a code of message-codes.ts) is omitted for the untyped startup-phase packets. */
  begin(type?: number): this {
    if (type !== undefined) this.byte(type);
    this.messageStart = this.offset;
    return this.int32(0);
  }

  /** Ends the message begun last, filling in its length. */
  end(): this {
    this.buffer.writeInt32BE(this.offset - this.messageStart, this.messageStart);
    this.messageStart = -1;
    return this;
  }

  byte(value: number): this {
    this.ensure(1);
    this.buffer[this.offset++] = value;
    return this;
  }

  int16(value: number): this {
    this.ensure(2);
    this.buffer.writeInt16BE(value, this.offset);
    this.offset += 2;
    return this;
  }

  int32(value: number): this {
    this.ensure(4);
    this.buffer.writeInt32BE(value, this.offset);
    this.offset += 4;
    return this;
  }

  cstring(value: string): this {
    const length = Buffer.byteLength(value);
    this.ensure(length + 1);
    this.buffer.write(value, this.offset, "utf8");
    this.offset += length;
    this.buffer[this.offset++] = 0;
    return this;
  }

  bytes(value: Uint8Array): this {
    this.ensure(value.length);
    this.buffer.set(value, this.offset);
    this.offset += value.length;
    return this;
  }

  get length(): number {
    return this.offset;
  }

  /** Everything written since the last flush, as a new buffer. */
  flush(): Buffer {
    const out = Buffer.from(this.buffer.subarray(0, this.offset));
    this.offset = 0;
    return out;
  }

  private ensure(extra: number): void {
    if (this.offset + extra <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.offset + extra));
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }
}
