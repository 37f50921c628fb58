import type { Socket } from "node:net";
import { BufferWriter } from "./buffer-writer.js";

/**
 * What goes back to the client: messages herd encodes and messages relayed from servers,
 * gathered in one buffer and written in one go at `flush()`, when the client's messages at hand
 * are all answered (DESIGN.md: one write per Sync; each write is a system call, and a routed
 * statement's answer is a few dozen bytes). Large results go out every 256 kB as they stream.
 */
export class ClientOutput {
  readonly writer = new BufferWriter(4096);

  constructor(private readonly socket: Socket) {}

  /** A whole message as a server sent it; false when the client is not keeping up. */
  raw(message: Buffer): boolean {
    this.writer.bytes(message);
    // keep memory bounded while a large result streams through
    if (this.writer.length > 256 * 1024) return this.flush();
    return true;
  }

  /** Calls `resume` once the client has taken what was written (after raw/flush said false). */
  onceDrained(resume: () => void): void {
    if (this.socket.destroyed) resume();
    else this.socket.once("drain", resume);
  }

  /** Writes what has been gathered; false when the socket's buffer is full. */
  flush(): boolean {
    if (this.writer.length === 0 || this.socket.destroyed) return true;
    return this.socket.write(this.writer.flush());
  }

  /** Writes bytes that must go out in order with what was gathered. */
  write(bytes: Buffer): boolean {
    this.flush();
    if (this.socket.destroyed) return true;
    return this.socket.write(bytes);
  }
}
