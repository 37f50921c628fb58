import { createServer, type Server, type Socket } from "node:net";
import { createSecureContext } from "node:tls";
import { HerdError, type Logger, listen, SqlState } from "@herd/shared";
import { encodeHerdError } from "./backend-messages.js";
import { BackendPool } from "./backend-pool.js";
import { BufferWriter } from "./buffer-writer.js";
import { CancelRegistry } from "./cancel-registry.js";
import { ClientSession, type OpenSession, type SessionContext, type SessionLimits } from "./client-session.js";
import { type SessionAdmission, SessionSlots } from "./session-slots.js";

export interface ProtocolServerOptions {
  readonly host: string;
  readonly port: number;
  /** Each role's login credential (client-session.ts). */
  readonly credentials: SessionContext["credentials"];
  /** The coordinator's own PostgreSQL. */
  readonly backend: { readonly host: string; readonly port: number };
  /**
   * Connections to it this server may hold open at once, shared by its sessions between
   * transactions (protocol/backend-pool.ts; default 100).
   */
  readonly maxBackends?: number;
  /** Runs each authenticated client's statements. */
  readonly openSession: OpenSession;
  /** PEM certificate and key: when given, SSLRequest is answered with TLS. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Authenticated sessions at most (default 250). */
  readonly maxConnections?: number;
  /** Of those, slots only superusers may take (default 3, as PostgreSQL's superuser_reserved_connections). */
  readonly reservedForSuperusers?: number;
  /**
   * Connections still authenticating at most (default 32), counted apart: sockets that never
   * authenticate cannot take the slots of clients that do.
   */
  readonly maxUnauthenticated?: number;
  readonly limits?: Partial<SessionLimits>;
  /**
   * The SQL port's listening socket, opened by the first coordinator process and handed to this
   * one: every process accepts from it (the kernel gives each new connection to one of them).
   * Without it, `listen` opens the port.
   */
  readonly shared?: Server;
  /**
   * Where sessions take their slots: the coordinator's SessionSlots when several processes share
   * the port. Without it, this server counts its own (maxConnections, reservedForSuperusers).
   */
  readonly admission?: SessionAdmission;
  readonly logger: Logger;
}

export const DEFAULT_MAX_CONNECTIONS = 250;
const DEFAULT_MAX_BACKENDS = 100;
/** As PostgreSQL's superuser_reserved_connections. */
export const DEFAULT_RESERVED_CONNECTIONS = 3;

const DEFAULT_LIMITS: SessionLimits = {
  maxMessageBytes: 256 * 1024 * 1024,
  maxStartupBytes: 10_000,
  authTimeoutMs: 10_000,
};

/** How long a shutdown lets statements under way finish before cancelling them. */
const SHUTDOWN_GRACE_MS = 10_000;

/** The coordinator's SQL port: a PostgreSQL protocol 3.0 server, one ClientSession per connection. */
export class ProtocolServer {
  private server: Server | undefined;
  private readonly sessions = new Set<ClientSession>();
  readonly cancels = new CancelRegistry();
  /** The connections to the coordinator's PostgreSQL its sessions share. */
  readonly backends: BackendPool;

  constructor(private readonly options: ProtocolServerOptions) {
    this.backends = new BackendPool({ max: options.maxBackends ?? DEFAULT_MAX_BACKENDS });
  }

  async listen(): Promise<void> {
    const { options } = this;
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const reserved = options.reservedForSuperusers ?? DEFAULT_RESERVED_CONNECTIONS;
    const context: SessionContext = {
      credentials: options.credentials,
      backend: options.backend,
      backends: this.backends,
      tls: options.tls ? createSecureContext({ cert: options.tls.cert, key: options.tls.key }) : undefined,
      cancels: this.cancels,
      openSession: options.openSession,
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      logger: options.logger,
      admission: options.admission ?? new SessionSlots(maxConnections, reserved).admission(0),
    };
    const maxUnauthenticated = options.maxUnauthenticated ?? 32;
    const accept = (socket: Socket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      if (this.authenticating() >= maxUnauthenticated) {
        options.logger.warn("refused a connection: too many connections are still authenticating", {
          limit: maxUnauthenticated,
        });
        return refuse(
          socket,
          new HerdError("sorry, too many clients are authenticating already", {
            sqlState: SqlState.tooManyConnections,
            severity: "FATAL",
          }),
        );
      }
      const session = new ClientSession(socket, context);
      this.sessions.add(session);
      session.onClose(() => this.sessions.delete(session));
    };
    if (options.shared) {
      options.shared.on("connection", accept);
      this.server = options.shared;
      return;
    }
    const server = createServer(accept);
    server.on("error", (error) => options.logger.error("SQL port error", { error: error.message }));
    await listen(server, options.port, options.host);
    this.server = server;
  }

  /** The listening socket, to hand to other coordinator processes (after `listen`). */
  get listening(): Server | undefined {
    return this.server;
  }

  /** Connections still authenticating (counted apart from sessions, which take slots). */
  private authenticating(): number {
    let n = 0;
    for (const session of this.sessions) if (!session.authenticated) n += 1;
    return n;
  }

  /**
   * Stops accepting, lets every session finish the statement under way (up to `graceMs`: a client
   * waiting for its COMMIT gets the answer), then tells every client the server is shutting down.
   */
  async close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const shutdown = new HerdError("terminating connection due to administrator command", {
      sqlState: SqlState.adminShutdown,
      severity: "FATAL",
    });
    await Promise.all([...this.sessions].map((session) => session.shutdown(shutdown, graceMs)));
    this.backends.close();
    await closed;
  }
}

function refuse(socket: Socket, error: HerdError): void {
  const writer = new BufferWriter(128);
  encodeHerdError(writer, error);
  socket.end(writer.flush());
  socket.on("error", () => {});
}
