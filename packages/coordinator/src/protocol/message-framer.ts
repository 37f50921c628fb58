import { ProtocolError } from "./protocol-error.js";

/** One complete message: its type byte (0 for startup packets) and body, plus its raw bytes. */
export interface Frame {
  readonly type: number;
  readonly body: Buffer;
  /** The whole message as it arrived (type, length, body): forwarded as is. */
  readonly raw: Buffer;
}

/**
 * A message where it lies in the chunk it arrived in: its offsets, with the views of its body and
 * of its whole bytes cut (`subarray`, a Buffer object each) only when asked for. A relayed DataRow
 * is asked for its raw bytes only, a decoded message for its body only.
 */
class ChunkFrame implements Frame {
  private bodyView: Buffer | undefined;
  private rawView: Buffer | undefined;

  constructor(
    readonly type: number,
    private readonly data: Buffer,
    private readonly start: number,
    private readonly bodyStart: number,
    private readonly end: number,
  ) {}

  get body(): Buffer {
    if (this.bodyView === undefined) this.bodyView = this.data.subarray(this.bodyStart, this.end);
    return this.bodyView;
  }

  get raw(): Buffer {
    if (this.rawView === undefined) this.rawView = this.data.subarray(this.start, this.end);
    return this.rawView;
  }
}

/**
 * Cuts a byte stream into messages. Typed messages are `type(1) length(4) body`; the first
 * packet of a connection is untyped (`length(4) body`). Chunks may split or join messages
 * anywhere; complete messages are returned as views of the chunk where possible (no copy).
 * A length below 4 or above `maxMessageBytes` is a protocol violation: the framer throws
 * before buffering anything of it.
 */
export class MessageFramer {
  /** Received bytes not yet framed, kept as chunks: joined once, when a whole message is there. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Size of the message at the head of `pending`, once its header has arrived. */
  private needed = 0;

  constructor(
    private maxMessageBytes: number,
    private typed = true,
  ) {}

  /** Switches to typed messages (after the startup packet) and a new size limit. */
  startTyped(maxMessageBytes: number): void {
    this.typed = true;
    this.maxMessageBytes = maxMessageBytes;
    this.needed = 0;
  }

  /** Bytes received but not yet part of a complete message. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Frames what has arrived. In untyped mode at most one (startup) packet is returned; what
   * follows it stays buffered until `startTyped()` and the next push (an empty one will do).
   * A large message arriving in many chunks is copied once, not once per chunk.
   */
  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    const header = this.typed ? 5 : 4;
    if (this.needed === 0 && this.pendingBytes >= header) this.needed = this.messageSize(this.joinPending(), 0, header);
    if (this.needed === 0 || this.pendingBytes < this.needed) return [];

    const data = this.joinPending();
    const frames: Frame[] = [];
    let offset = 0;
    while (data.length - offset >= header) {
      const total = this.messageSize(data, offset, header);
      if (data.length - offset < total) break;
      const type = this.typed ? (data[offset] as number) : 0;
      frames.push(new ChunkFrame(type, data, offset, offset + header, offset + total));
      offset += total;
      if (!this.typed) break;
    }
    this.pending = offset < data.length ? [data.subarray(offset)] : [];
    this.pendingBytes = data.length - offset;
    this.needed = 0;
    if (this.typed && this.pendingBytes >= header) this.needed = this.messageSize(this.joinPending(), 0, header);
    return frames;
  }

  /** Takes the bytes not yet framed (e.g. to hand them to a TLS layer after SSLRequest). */
  takePending(): Buffer | undefined {
    const pending = this.pendingBytes > 0 ? this.joinPending() : undefined;
    this.pending = [];
    this.pendingBytes = 0;
    this.needed = 0;
    return pending;
  }

  /** Total size (header included) of the message starting at `data[offset]`, checked against the limits. */
  private messageSize(data: Buffer, offset: number, header: number): number {
    const length = data.readInt32BE(offset + header - 4);
    if (length < 4 || length > this.maxMessageBytes) {
      throw new ProtocolError(
        length < 4
          ? `invalid message length ${length}`
          : `message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`,
      );
    }
    return header - 4 + length;
  }

  private joinPending(): Buffer {
    if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
    return this.pending[0] as Buffer;
  }
}

/**
 * The raw bytes of consecutive frames as one buffer: a view of the chunk they came from when they
 * lie back to back in it (the usual case: a client's Bind/Execute/Sync arrive together), else a copy.
 */
export function joinFrames(frames: readonly Frame[]): Buffer {
  const first = (frames[0] as Frame).raw;
  if (frames.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < frames.length; i += 1) {
    const raw = (frames[i] as Frame).raw;
    if (raw.buffer !== first.buffer || raw.byteOffset !== end) return Buffer.concat(frames.map((frame) => frame.raw));
    end += raw.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}
