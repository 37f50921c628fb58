export * from "./backend-connection.js";
export * from "./backend-messages.js";
export { BufferReader } from "./buffer-reader.js";
export { BufferWriter } from "./buffer-writer.js";
export { CancelRegistry } from "./cancel-registry.js";
export { ClientOutput } from "./client-output.js";
export {
  ClientSession,
  type OpenSession,
  type OpenSessionArgs,
  type SessionContext,
  type SessionHandler,
  type SessionLimits,
} from "./client-session.js";
export * from "./frontend-messages.js";
export { type Frame, joinFrames, MessageFramer } from "./message-framer.js";
export { ProtocolError } from "./protocol-error.js";
export { ProtocolServer, type ProtocolServerOptions } from "./protocol-server.js";
export * from "./scram.js";
