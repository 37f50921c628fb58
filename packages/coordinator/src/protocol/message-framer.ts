import { ProtocolError } from "./protocol-error.js";

/** One complete message: its type byte (0 for startup packets) and body, plus its raw bytes. */
export interface Frame {
  readonly type: number;
  readonly body: Buffer;
  /** The whole message as it arrived (type, length, body): forwarded as is. */
  readonly raw: Buffer;
}

/**
 * Cuts a byte stream into messages. Typed messages are `type(1) length(4) body`; the first
 * packet of a connection is untyped (`length(4) body`). Chunks may split or join messages
 * anywhere; complete messages are returned as views of the chunk where possible (no copy).
 * A length below 4 or above `maxMessageBytes` is a protocol violation: the framer throws
 * before buffering anything of it.
 */
export class MessageFramer {
  private pending: Buffer | undefined;

  constructor(
    private maxMessageBytes: number,
    private typed = true,
  ) {}

  /** Switches to typed messages (after the startup packet) and a new size limit. */
  startTyped(maxMessageBytes: number): void {
    this.typed = true;
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Bytes received but not yet part of a complete message. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  /**
   * Frames what has arrived. In untyped mode at most one (startup) packet is returned; what
   * follows it stays buffered until `startTyped()` and the next push (an empty one will do).
   */
  push(chunk: Buffer): Frame[] {
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const frames: Frame[] = [];
    const header = this.typed ? 5 : 4;
    let offset = 0;
    while (data.length - offset >= header) {
      const type = this.typed ? (data[offset] as number) : 0;
      const length = data.readInt32BE(offset + header - 4);
      if (length < 4 || length > this.maxMessageBytes) {
        throw new ProtocolError(
          length < 4
            ? `invalid message length ${length}`
            : `message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`,
        );
      }
      const total = header - 4 + length;
      if (data.length - offset < total) break;
      frames.push({
        type,
        body: data.subarray(offset + header, offset + total),
        raw: data.subarray(offset, offset + total),
      });
      offset += total;
      if (!this.typed) break;
    }
    // copy the tail: the chunk it came from may be reused by the socket layer
    if (offset < data.length) this.pending = Buffer.from(data.subarray(offset));
    return frames;
  }

  /** Takes the bytes not yet framed (e.g. to hand them to a TLS layer after SSLRequest). */
  takePending(): Buffer | undefined {
    const pending = this.pending;
    this.pending = undefined;
    return pending;
  }
}
