import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { type SecureContext, TLSSocket } from "node:tls";
import { errorMessage, HerdError, isHerdError, type Logger, SqlState } from "@herd/shared";
import { type BackendConnection, BackendStartupError, type BackendTarget } from "./backend-connection.js";
import {
  AuthCode,
  encodeAuthentication,
  encodeBackendKeyData,
  encodeHerdError,
  encodeNegotiateProtocolVersion,
  encodeNotice,
  encodeParameterStatus,
  encodeReadyForQuery,
} from "./backend-messages.js";
import type { BackendLender, BackendPool } from "./backend-pool.js";
import { BufferWriter } from "./buffer-writer.js";
import type { CancelRegistry } from "./cancel-registry.js";
import { decodeSaslInitialResponse, decodeStartupPacket, StartupCode } from "./frontend-messages.js";
import { BackendMessage, FrontendMessage } from "./message-codes.js";
import { type Frame, MessageFramer } from "./message-framer.js";
import { ProtocolError } from "./protocol-error.js";
import {
  makeVerifier,
  SCRAM_SHA_256,
  ScramError,
  type ScramSecret,
  ScramServerExchange,
  type ScramVerifier,
} from "./scram.js";
import type { SessionAdmission } from "./session-slots.js";

export interface SessionLimits {
  /** Largest message accepted once authenticated. */
  readonly maxMessageBytes: number;
  /** Largest message before authentication (startup packet, SASL): keeps strangers cheap. */
  readonly maxStartupBytes: number;
  readonly authTimeoutMs: number;
}

/** How a role logs in: what its password must match, and how herd then logs in to PostgreSQL as it. */
export interface LoginCredential {
  readonly verifier: ScramVerifier;
  readonly superuser: boolean;
  /**
   * herd's own secret for the role's connection to the coordinator's PostgreSQL (the SQL user
   * `postgres`, whose SQL password is the cluster's and not what PostgreSQL holds); absent, the
   * keys of the client's own exchange log in (the role's verifier is PostgreSQL's).
   */
  readonly backendSecret?: string;
}

export interface SessionContext {
  /** The role's login credential; undefined when it cannot log in with a password (unknown role, none set). */
  readonly credentials: (user: string) => Promise<LoginCredential | undefined>;
  readonly backend: Omit<BackendTarget, "password">;
  /** The connections to it, shared between sessions. */
  readonly backends: BackendPool;
  readonly tls: SecureContext | undefined;
  readonly cancels: CancelRegistry;
  /** Takes over an authenticated connection: what runs the client's statements. */
  readonly openSession: OpenSession;
  /** A slot is taken once the password is right (53300 when none is free for such a role), given back at close. */
  readonly admission?: SessionAdmission;
  readonly limits: SessionLimits;
  readonly logger: Logger;
}

/** What runs an authenticated client's statements (session/conversation.ts). */
export interface SessionHandler {
  receive(frames: Frame[]): void;
  /** Cancels the statement under way, on the coordinator's PostgreSQL and on the workers. */
  cancel(): Promise<void>;
  /** Shutdown: handle nothing more; resolves when the statement under way has finished. */
  finish?(): Promise<void>;
  /** The client is gone: what it runs is cancelled, its PostgreSQL connection ended or given back. */
  close(): void;
}

export interface OpenSessionArgs {
  readonly socket: Socket;
  /** The session's first connection to the coordinator's PostgreSQL, new. */
  readonly backend: BackendConnection;
  /** Where the session takes its next ones once it gave that back (shared with other sessions). */
  readonly lender: BackendLender;
  readonly startupParameters: ReadonlyMap<string, string>;
  /** Ends the session with this error (FATAL), or quietly when undefined (Terminate). */
  readonly fail: (error: unknown) => void;
}

export type OpenSession = (args: OpenSessionArgs) => SessionHandler;

type Phase = "startup" | "lookup" | "sasl-initial" | "sasl-final" | "connecting" | "ready" | "closed";

/**
 * One client connection, from its first byte to its close.
 *
 * Startup: SSLRequest (TLS when a certificate is configured, else 'N') and GSSENCRequest ('N'),
 * CancelRequest, or StartupMessage; then SCRAM-SHA-256 against the role's password (the cluster
 * password for `postgres`, PostgreSQL's own verifier for every other role); then a new PostgreSQL
 * connection to the coordinator's server as that role (PostgreSQL checks the login again), whose
 * ParameterStatus values the client receives, with herd's own BackendKeyData. The session gives
 * that connection back to the pool when it holds nothing of the session's (protocol/backend-pool.ts).
 *
 * Then the client's messages are framed and handed to the session handler (`openSession`), which
 * runs them: forwarded to that PostgreSQL connection, or run by herd on the workers.
 */
export class ClientSession {
  private phase: Phase = "startup";
  private readonly framer: MessageFramer;
  private readonly out = new BufferWriter(512);
  private socket: Socket;
  private handler: SessionHandler | undefined;
  private parameters: ReadonlyMap<string, string> = new Map();
  private scram: ScramServerExchange | undefined;
  /** It holds a session slot (given back at close). */
  private admitted = false;
  private credential: LoginCredential | undefined;
  private key: { processId: number; secretKey: number } | undefined;
  private authTimer: NodeJS.Timeout | undefined;
  private readonly onCloseCallbacks: (() => void)[] = [];

  constructor(
    socket: Socket,
    private readonly context: SessionContext,
  ) {
    this.socket = socket;
    this.framer = new MessageFramer(context.limits.maxStartupBytes, false);
    this.attach(socket);
    this.authTimer = setTimeout(
      () =>
        this.fail(
          new HerdError("canceling authentication due to timeout", {
            sqlState: SqlState.protocolViolation,
            severity: "FATAL",
          }),
        ),
      context.limits.authTimeoutMs,
    );
  }

  /** The client proved its password (slots for such sessions are counted apart from strangers'). */
  get authenticated(): boolean {
    return this.phase === "connecting" || this.phase === "ready";
  }

  onClose(callback: () => void): void {
    this.onCloseCallbacks.push(callback);
  }

  /** Ends the session from the server side: a FATAL to the client, then close. */
  terminate(error: HerdError): void {
    this.fail(error);
  }

  /**
   * Ends the session for a shutdown: starts nothing new of the client's, lets the statement under
   * way finish (a COMMIT the client is waiting for is answered), for up to `graceMs`, cancels it
   * after that, then sends the FATAL.
   */
  async shutdown(error: HerdError, graceMs: number): Promise<void> {
    const handler = this.handler;
    if (this.phase !== "ready" || !handler?.finish) {
      this.fail(error);
      return;
    }
    const finished = handler.finish();
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      finished.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      this.context.logger.warn("a statement outlived the shutdown grace period; cancelling it");
      await this.cancelRunningStatement();
      await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, 1_000))]);
    }
    this.fail(error);
  }

  private attach(socket: Socket): void {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error) => {
      this.context.logger.debug("client socket error", { error: error.message });
      this.close();
    });
    socket.on("close", () => this.close());
  }

  private receive(chunk: Buffer): void {
    try {
      this.handleFrames(this.framer.push(chunk));
    } catch (error) {
      this.fail(error);
    }
  }

  private handleFrames(frames: Frame[]): void {
    if (this.phase === "ready") {
      this.handler?.receive(frames);
      return;
    }
    for (const frame of frames) {
      switch (this.phase) {
        case "startup":
          this.handleStartupPacket(frame);
          // what followed the startup packet in the same chunk is framed as typed messages now
          if (this.phase !== "startup" && this.phase !== "closed" && this.framer.buffered > 0) {
            this.handleFrames(this.framer.push(Buffer.alloc(0)));
          }
          return;
        case "sasl-initial":
        case "sasl-final":
          this.handleSasl(frame);
          break;
        case "lookup":
        case "connecting":
          throw new ProtocolError("unexpected message before authentication finished");
        default:
          return;
      }
    }
  }

  private handleStartupPacket(frame: Frame): void {
    const packet = decodeStartupPacket(frame.body);
    switch (packet.kind) {
      case "ssl":
        this.answerSsl();
        return;
      case "gssenc":
        this.socket.write("N");
        return;
      case "cancel":
        void this.context.cancels.cancel(packet.processId, packet.secretKey);
        this.close();
        return;
      case "startup":
        this.phase = "lookup";
        void this.startAuthentication(packet.minor, packet.parameters).catch((error) => this.fail(error));
        return;
    }
  }

  private answerSsl(): void {
    const { tls } = this.context;
    if (!tls) {
      this.socket.write("N");
      return;
    }
    // Bytes sent after SSLRequest but before our answer would be read as if they were encrypted
    // (CVE-2021-23222): refuse them.
    if (this.framer.buffered > 0) throw new ProtocolError("received unencrypted data after SSL request");
    this.socket.write("S");
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    plain.removeAllListeners("error");
    plain.removeAllListeners("drain");
    const secure = new TLSSocket(plain, { isServer: true, secureContext: tls });
    this.socket = secure;
    this.attach(secure);
  }

  private async startAuthentication(minor: number, parameters: ReadonlyMap<string, string>): Promise<void> {
    const user = parameters.get("user");
    if (!user) {
      throw new HerdError("no PostgreSQL user name specified in startup packet", {
        sqlState: SqlState.invalidAuthorizationSpecification,
        severity: "FATAL",
      });
    }
    if (parameters.has("replication") && parameters.get("replication") !== "false") {
      throw new HerdError("herd does not accept replication connections", {
        sqlState: SqlState.featureNotSupported,
        severity: "FATAL",
      });
    }
    this.parameters = parameters;
    // anything sent before herd asks for the password is a protocol violation (typed messages now)
    this.framer.startTyped(this.context.limits.maxStartupBytes);
    this.socket.pause();
    try {
      this.credential = await this.context.credentials(user);
    } catch (error) {
      throw new HerdError("the coordinator cannot reach its PostgreSQL", {
        sqlState: SqlState.cannotConnectNow,
        severity: "FATAL",
        detail: errorMessage(error),
      });
    }
    if (this.phase !== "lookup") return;
    this.socket.resume();
    const unsupported = [...parameters.keys()].filter((name) => name.startsWith("_pq_."));
    if (minor > 0 || unsupported.length > 0)
      encodeNegotiateProtocolVersion(this.out, StartupCode.protocol3, unsupported);
    encodeAuthentication(this.out, AuthCode.sasl, [SCRAM_SHA_256]);
    this.socket.write(this.out.flush());
    this.phase = "sasl-initial";
  }

  private handleSasl(frame: Frame): void {
    if (frame.type !== FrontendMessage.password)
      throw new ProtocolError(`expected SASL response, got message type "${String.fromCharCode(frame.type)}"`);
    const user = this.parameters.get("user") as string;
    if (this.phase === "sasl-initial") {
      const initial = decodeSaslInitialResponse(frame.body);
      if (initial.mechanism !== SCRAM_SHA_256) {
        throw new HerdError(`SASL authentication mechanism ${initial.mechanism} is not supported`, {
          sqlState: SqlState.protocolViolation,
          severity: "FATAL",
        });
      }
      // a role that cannot log in goes through the whole exchange against a verifier nobody
      // knows, as PostgreSQL's mock authentication does: the answer reveals nothing
      this.scram = new ScramServerExchange(this.credential?.verifier ?? makeVerifier(randomUUID(), 4096));
      const serverFirst = this.scramStep(() => this.scram?.start(initial.data.toString()) as string);
      encodeAuthentication(this.out, AuthCode.saslContinue, Buffer.from(serverFirst));
      this.socket.write(this.out.flush());
      this.phase = "sasl-final";
      return;
    }
    const serverFinal = this.scramStep(() => this.scram?.finish(frame.body.toString()));
    // PostgreSQL answers an unknown role like a wrong password, revealing nothing.
    if (serverFinal === undefined || this.credential === undefined) {
      this.context.logger.info("password authentication failed", { user });
      throw new HerdError(`password authentication failed for user "${user}"`, {
        sqlState: SqlState.invalidPassword,
        severity: "FATAL",
      });
    }
    // (the client waits for the answer: anything it sends meanwhile is a protocol violation)
    this.phase = "connecting";
    this.socket.pause();
    void this.admit(this.credential.superuser, serverFinal).catch((error) => this.fail(error));
  }

  /** Takes a session slot (53300 when none is left), then tells the client it is in and connects. */
  private async admit(superuser: boolean, serverFinal: string): Promise<void> {
    await this.context.admission?.take(superuser);
    if (this.phase === "closed") {
      this.context.admission?.release();
      return;
    }
    this.admitted = true;
    encodeAuthentication(this.out, AuthCode.saslFinal, Buffer.from(serverFinal));
    encodeAuthentication(this.out, AuthCode.ok);
    this.socket.write(this.out.flush());
    clearTimeout(this.authTimer);
    await this.connect();
  }

  private scramStep<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      if (error instanceof ScramError) throw new ProtocolError(error.message);
      throw error;
    }
  }

  private async connect(): Promise<void> {
    const parameters = new Map(this.parameters);
    const user = parameters.get("user") as string;
    if (!parameters.has("database")) parameters.set("database", user);
    const credential = this.credential as LoginCredential;
    const secret: ScramSecret = credential.backendSecret ?? {
      clientKey: this.scram?.clientKey as Buffer,
      serverKey: credential.verifier.serverKey,
    };
    this.scram = undefined;
    const target = { ...this.context.backend, password: secret };
    const { backends } = this.context;
    try {
      const backend = await backends.connect(target, parameters);
      const lender = backends.lender(target, parameters, backend.processId);
      if (this.phase === "closed") {
        lender.release(backend);
        return;
      }
      this.handler = this.context.openSession({
        socket: this.socket,
        backend,
        lender,
        startupParameters: this.parameters,
        fail: (error) => (error === undefined ? this.close() : this.fail(error)),
      });
      // The process id is the PostgreSQL backend's own, so that pg_backend_pid() and the pid in
      // NotificationResponse match what the client was told (while the session uses that
      // backend: it is the one the session takes again whenever it is free); the secret is herd's.
      this.key = this.context.cancels.register(backend.processId, { cancel: () => this.cancelRunningStatement() });
      for (const [name, value] of backend.parameters) encodeParameterStatus(this.out, name, value);
      encodeBackendKeyData(this.out, this.key.processId, this.key.secretKey);
      encodeReadyForQuery(this.out, backend.status);
      this.socket.write(this.out.flush());
      this.phase = "ready";
      this.framer.startTyped(this.context.limits.maxMessageBytes);
      this.socket.resume();
      if (this.framer.buffered > 0) this.handler.receive(this.framer.push(Buffer.alloc(0)));
    } catch (error) {
      if (error instanceof BackendStartupError) {
        encodeNotice(this.out, BackendMessage.errorResponse, error.fields);
        this.socket.end(this.out.flush());
        this.close();
        return;
      }
      if (isHerdError(error)) {
        this.fail(error);
        return;
      }
      this.fail(
        new HerdError("the coordinator cannot reach its PostgreSQL", {
          sqlState: SqlState.cannotConnectNow,
          severity: "FATAL",
          detail: errorMessage(error),
        }),
      );
    }
  }

  private async cancelRunningStatement(): Promise<void> {
    await this.handler?.cancel();
  }

  /** Sends the error to the client as an ErrorResponse and closes the connection. */
  private fail(error: unknown): void {
    if (this.phase === "closed") return;
    const herdError = isHerdError(error)
      ? error
      : new HerdError("internal error", { sqlState: SqlState.internalError, severity: "FATAL" });
    if (!isHerdError(error)) this.context.logger.error("session failed", { error: errorMessage(error) });
    else if (herdError.sqlState === SqlState.protocolViolation) {
      this.context.logger.info("protocol violation; closing the connection", { error: herdError.message });
    }
    encodeHerdError(this.out, herdError);
    if (!this.socket.destroyed) this.socket.end(this.out.flush());
    this.close();
  }

  private close(): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    clearTimeout(this.authTimer);
    if (this.admitted) this.context.admission?.release();
    this.admitted = false;
    if (this.key) this.context.cancels.unregister(this.key.processId);
    // a statement still running (a lock wait, a merge, shards) ends now; the PostgreSQL connection
    // is ended (PostgreSQL rolls back an open transaction) or given back when it holds nothing
    this.handler?.close();
    if (!this.socket.destroyed) this.socket.end();
    setTimeout(() => this.socket.destroy(), 5_000).unref();
    for (const callback of this.onCloseCallbacks) callback();
  }
}
