import { createConnection, type Socket } from "node:net";
import {
  AuthCode,
  BufferReader,
  BufferWriter,
  decodeNotice,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  encodeStartupMessage,
  type Frame,
  MessageFramer,
  type NoticeFields,
  SCRAM_SHA_256,
  ScramClientExchange,
} from "@herd/coordinator";

/**
 * A PostgreSQL protocol client at the message level, for what real drivers never send: split,
 * malformed or oversized messages, pipelines with row limits. Reads frames in order.
 */
export class RawClient {
  private readonly framer = new MessageFramer(1 << 30);
  private readonly frames: Frame[] = [];
  private waiter: (() => void) | undefined;
  closed = false;
  /** BackendKeyData of the session, once authenticated. */
  key: { processId: number; secretKey: number } | undefined;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.frames.push(...this.framer.push(chunk));
      this.waiter?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on("error", () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = createConnection({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new RawClient(socket);
  }

  /** Connects and authenticates; resolves after the first ReadyForQuery. */
  static async ready(port: number, password = "postgres", parameters: Record<string, string> = {}): Promise<RawClient> {
    const client = await RawClient.connect(port);
    const w = new BufferWriter();
    encodeStartupMessage(w, new Map(Object.entries({ user: "postgres", database: "postgres", ...parameters })));
    client.send(w.flush());
    const scram = new ScramClientExchange(password);
    for (;;) {
      const frame = await client.next();
      const type = String.fromCharCode(frame.type);
      if (type === "E") throw new Error(`startup failed: ${decodeNotice(frame.body).message}`);
      if (type === "Z") return client;
      if (type === "K") client.key = { processId: frame.body.readInt32BE(0), secretKey: frame.body.readInt32BE(4) };
      if (type !== "R") continue;
      const reader = new BufferReader(frame.body);
      const code = reader.int32();
      if (code === AuthCode.sasl) encodeSaslInitialResponse(w, SCRAM_SHA_256, Buffer.from(scram.clientFirst()));
      else if (code === AuthCode.saslContinue)
        encodeSaslResponse(w, Buffer.from(scram.clientFinal(reader.rest().toString())));
      else continue;
      client.send(w.flush());
    }
  }

  send(...buffers: Buffer[]): void {
    this.socket.write(Buffer.concat(buffers));
  }

  /** The next frame, or an error when the connection closes first. */
  async next(timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.closed) throw new Error("connection closed");
      if (Date.now() > deadline) throw new Error("no message in time");
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
      this.waiter = undefined;
    }
    return this.frames.shift() as Frame;
  }

  /** Frame types (as letters) up to and including the next ReadyForQuery. */
  async untilReady(): Promise<string[]> {
    const types: string[] = [];
    for (;;) {
      const frame = await this.next();
      types.push(String.fromCharCode(frame.type));
      if (frame.type === 0x5a) return types;
    }
  }

  /** Waits for the server to close the connection; returns the ErrorResponse it sent before, if any. */
  async closedWith(timeoutMs = 10_000): Promise<NoticeFields | undefined> {
    let error: NoticeFields | undefined;
    for (;;) {
      try {
        const frame = await this.next(timeoutMs);
        if (frame.type === 0x45) error = decodeNotice(frame.body);
      } catch {
        return error;
      }
    }
  }

  end(): void {
    this.socket.destroy();
  }
}

/** Message builders for tests (the frontend side of the protocol). */
export const msg = {
  query: (sql: string) => typed("Q", cstr(sql)),
  parse: (name: string, sql: string) => typed("P", Buffer.concat([cstr(name), cstr(sql), int16(0)])),
  bind: (portal: string, statement: string, params: (string | null)[] = []) =>
    typed(
      "B",
      Buffer.concat([
        cstr(portal),
        cstr(statement),
        int16(0),
        int16(params.length),
        ...params.map((p) => (p === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(p)), Buffer.from(p)]))),
        int16(0),
      ]),
    ),
  describePortal: (portal: string) => typed("D", Buffer.concat([Buffer.from("P"), cstr(portal)])),
  execute: (portal: string, maxRows = 0) => typed("E", Buffer.concat([cstr(portal), int32(maxRows)])),
  sync: () => typed("S", Buffer.alloc(0)),
  flush: () => typed("H", Buffer.alloc(0)),
  terminate: () => typed("X", Buffer.alloc(0)),
  raw: (type: string, body: Buffer) => typed(type, body),
};

function typed(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}
function cstr(text: string): Buffer {
  return Buffer.concat([Buffer.from(text), Buffer.from([0])]);
}
function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}
export function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
