import { createConnection, type Socket } from "node:net";
import { AuthCode, decodeNotice, type NoticeFields, type TransactionStatus } from "./backend-messages.js";
import { BufferReader } from "./buffer-reader.js";
import { BufferWriter } from "./buffer-writer.js";
import {
  encodeCancelRequest,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  encodeStartupMessage,
} from "./frontend-messages.js";
import { MessageFramer } from "./message-framer.js";
import { SCRAM_SHA_256, ScramClientExchange, type ScramSecret } from "./scram.js";

export interface BackendTarget {
  readonly host: string;
  readonly port: number;
  readonly password: ScramSecret;
}

/** A PostgreSQL connection after its startup: authenticated and ready for queries. */
export interface BackendConnection {
  readonly socket: Socket;
  /** ParameterStatus values the server reported during startup, in order. */
  readonly parameters: readonly (readonly [string, string])[];
  readonly processId: number;
  readonly secretKey: number;
  readonly status: TransactionStatus;
  /** Bytes the server sent after ReadyForQuery (none in practice). */
  readonly leftover: Buffer | undefined;
}

/** The server refused the connection (bad database, too many connections, …): its ErrorResponse. */
export class BackendStartupError extends Error {
  constructor(readonly fields: NoticeFields) {
    super(fields.message);
  }
}

const STARTUP_TIMEOUT_MS = 30_000;

/**
 * Opens a connection to a PostgreSQL server and runs its startup as a client: StartupMessage,
 * SCRAM-SHA-256, then ParameterStatus/BackendKeyData until ReadyForQuery.
 */
export function connectBackend(
  target: BackendTarget,
  parameters: ReadonlyMap<string, string>,
): Promise<BackendConnection> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: target.host, port: target.port, noDelay: true });
    const framer = new MessageFramer(64 * 1024 * 1024);
    const writer = new BufferWriter(256);
    const reported: [string, string][] = [];
    let scram: ScramClientExchange | undefined;
    let processId = 0;
    let secretKey = 0;
    const timer = setTimeout(
      () => fail(new Error("PostgreSQL did not finish the startup in time")),
      STARTUP_TIMEOUT_MS,
    );

    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once("error", fail);
    socket.once("close", () => fail(new Error("PostgreSQL closed the connection during startup")));
    socket.once("connect", () => {
      encodeStartupMessage(writer, parameters);
      socket.write(writer.flush());
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const frame of framer.push(chunk)) {
          const type = String.fromCharCode(frame.type);
          if (type === "E") throw new BackendStartupError(decodeNotice(frame.body));
          if (type === "S") {
            const reader = new BufferReader(frame.body);
            reported.push([reader.cstring(), reader.cstring()]);
          } else if (type === "K") {
            const reader = new BufferReader(frame.body);
            processId = reader.int32();
            secretKey = reader.int32();
          } else if (type === "R") {
            scram = authenticate(frame.body, scram);
          } else if (type === "Z") {
            clearTimeout(timer);
            socket.removeAllListeners("data");
            socket.removeAllListeners("error");
            socket.removeAllListeners("close");
            socket.removeAllListeners("connect");
            resolve({
              socket,
              parameters: reported,
              processId,
              secretKey,
              status: String.fromCharCode(frame.body[0] as number) as TransactionStatus,
              leftover: framer.takePending(),
            });
            return;
          }
          // 'N' (notices) and 'v' during startup carry nothing we need
        }
      } catch (error) {
        fail(error as Error);
      }
    });

    function authenticate(body: Buffer, exchange: ScramClientExchange | undefined): ScramClientExchange | undefined {
      const reader = new BufferReader(body);
      const code = reader.int32();
      switch (code) {
        case AuthCode.ok:
          return exchange;
        case AuthCode.sasl: {
          const mechanisms: string[] = [];
          for (let name = reader.cstring(); name !== ""; name = reader.cstring()) mechanisms.push(name);
          if (!mechanisms.includes(SCRAM_SHA_256))
            throw new Error(`PostgreSQL offers no ${SCRAM_SHA_256} (${mechanisms.join(", ")})`);
          const next = new ScramClientExchange(target.password);
          encodeSaslInitialResponse(writer, SCRAM_SHA_256, Buffer.from(next.clientFirst()));
          socket.write(writer.flush());
          return next;
        }
        case AuthCode.saslContinue: {
          if (!exchange) throw new Error("unexpected SASL continue");
          encodeSaslResponse(writer, Buffer.from(exchange.clientFinal(reader.rest().toString())));
          socket.write(writer.flush());
          return exchange;
        }
        case AuthCode.saslFinal:
          exchange?.verifyServerFinal(reader.rest().toString());
          return exchange;
        default:
          throw new Error(`PostgreSQL asks for authentication method ${code}; herd's servers use SCRAM-SHA-256`);
      }
    }
  });
}

/** Asks a PostgreSQL server to cancel what one of its backends is running (fire and forget). */
export function sendCancelRequest(host: string, port: number, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const writer = new BufferWriter(16);
    encodeCancelRequest(writer, processId, secretKey);
    socket.once("connect", () => socket.end(writer.flush()));
    socket.once("close", () => resolve());
    socket.once("error", () => resolve());
    socket.setTimeout(10_000, () => socket.destroy());
  });
}
