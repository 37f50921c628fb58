import { HerdError, type Severity, SqlState, type SqlStateCode } from "@herd/shared";

/** The IPC channel of a forked process, as seen from either end (a ChildProcess, or `process` in the child). */
export interface IpcChannel {
  send?(message: unknown, sendHandle?: unknown): boolean;
  on(event: "message", listener: (message: unknown, handle?: unknown) => void): unknown;
  on(event: "disconnect", listener: () => void): unknown;
  readonly connected?: boolean;
}

type Handler = (payload: unknown, handle?: unknown) => unknown;

interface Request {
  readonly herd: "request";
  readonly id: number;
  readonly kind: string;
  readonly payload: unknown;
}

interface Reply {
  readonly herd: "reply";
  readonly id: number;
  readonly value?: unknown;
  readonly error?: { message: string; sqlState?: string; severity?: string; detail?: string; hint?: string };
}

/** How long a request waits for the other process before failing (a stuck peer must not hang a client). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Requests and replies between two coordinator processes over their IPC channel: `request(kind,
 * payload)` runs the other end's handler for `kind` and resolves with what it returned. A
 * HerdError thrown there arrives as a HerdError with its SQLSTATE (so a client gets the same
 * error whichever process ran the work); any other error arrives as its message.
 */
export class ProcessLink {
  private readonly handlers = new Map<string, Handler>();
  private readonly waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 1;
  private gone = false;

  constructor(
    private readonly channel: IpcChannel,
    private readonly name: string,
  ) {
    channel.on("message", (message, handle) => this.receive(message, handle));
    channel.on("disconnect", () => this.lost());
  }

  /** Answers the other end's requests of `kind` (a handle sent along comes as the second argument). */
  handle(kind: string, handler: Handler): void {
    this.handlers.set(kind, handler);
  }

  request<T>(kind: string, payload?: unknown, handle?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    if (this.gone || this.channel.connected === false) {
      return Promise.reject(
        new HerdError(`coordinator process ${this.name} is gone`, { sqlState: SqlState.connectionFailure }),
      );
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      // (a long operation, a shard move, waits as long as it takes: timeoutMs Infinity)
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            this.waiting.delete(id);
            reject(
              new HerdError(`coordinator process ${this.name} did not answer ${kind}`, {
                sqlState: SqlState.connectionFailure,
              }),
            );
          }, timeoutMs).unref()
        : undefined;
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      const message: Request = { herd: "request", id, kind, payload };
      this.channel.send?.(message, handle);
    });
  }

  private receive(message: unknown, handle: unknown): void {
    if (typeof message !== "object" || message === null) return;
    const envelope = message as Request | Reply;
    if (envelope.herd === "reply") {
      const waiter = this.waiting.get(envelope.id);
      if (!waiter) return;
      this.waiting.delete(envelope.id);
      if (envelope.error) waiter.reject(revive(envelope.error));
      else waiter.resolve(envelope.value);
    } else if (envelope.herd === "request") {
      void this.answer(envelope, handle);
    }
  }

  private async answer(request: Request, handle: unknown): Promise<void> {
    let reply: Reply;
    try {
      const handler = this.handlers.get(request.kind);
      if (!handler) throw new Error(`no handler for ${request.kind}`);
      reply = { herd: "reply", id: request.id, value: await handler(request.payload, handle) };
    } catch (error) {
      const herd = error instanceof HerdError ? error : undefined;
      reply = {
        herd: "reply",
        id: request.id,
        error: {
          message: error instanceof Error ? error.message : String(error),
          sqlState: herd?.sqlState,
          severity: herd?.severity,
          detail: herd?.detail,
          hint: herd?.hint,
        },
      };
    }
    if (!this.gone && this.channel.connected !== false) this.channel.send?.(reply);
  }

  /** The other end is gone: whoever waits for it fails now. */
  private lost(): void {
    this.gone = true;
    for (const waiter of this.waiting.values()) {
      waiter.reject(
        new HerdError(`coordinator process ${this.name} is gone`, { sqlState: SqlState.connectionFailure }),
      );
    }
    this.waiting.clear();
  }
}

function revive(error: NonNullable<Reply["error"]>): Error {
  if (!error.sqlState) return new Error(error.message);
  return new HerdError(error.message, {
    sqlState: error.sqlState as SqlStateCode,
    severity: error.severity as Severity | undefined,
    detail: error.detail,
    hint: error.hint,
  });
}
