import { HerdError, SqlState } from "@herd/shared";

/** A client broke the protocol: the connection gets a FATAL 08P01 and is closed. */
export class ProtocolError extends HerdError {
  constructor(message: string) {
    super(message, { sqlState: SqlState.protocolViolation, severity: "FATAL" });
    this.name = "ProtocolError";
  }
}
