/**
 * The type byte of every PostgreSQL protocol message herd reads or writes, in one table
 * (https://www.postgresql.org/docs/18/protocol-message-formats.html). Several letters mean
 * different messages in the two directions ('D' is DataRow from a server and Describe from a
 * client), so each direction has its own table. Values are byte values, as frames carry them.
 */
const code = (letter: string) => letter.charCodeAt(0);

/** Messages a server sends (to herd's clients, or to herd as a client of its servers). */
export const BackendMessage = {
  authentication: code("R"),
  backendKeyData: code("K"),
  bindComplete: code("2"),
  closeComplete: code("3"),
  commandComplete: code("C"),
  copyData: code("d"),
  copyDone: code("c"),
  copyInResponse: code("G"),
  copyOutResponse: code("H"),
  dataRow: code("D"),
  emptyQueryResponse: code("I"),
  errorResponse: code("E"),
  negotiateProtocolVersion: code("v"),
  noData: code("n"),
  noticeResponse: code("N"),
  notificationResponse: code("A"),
  parameterDescription: code("t"),
  parameterStatus: code("S"),
  parseComplete: code("1"),
  portalSuspended: code("s"),
  readyForQuery: code("Z"),
  rowDescription: code("T"),
} as const;

/** Messages a client sends (to herd, or herd to its servers). */
export const FrontendMessage = {
  bind: code("B"),
  close: code("C"),
  copyData: code("d"),
  copyDone: code("c"),
  copyFail: code("f"),
  describe: code("D"),
  execute: code("E"),
  flush: code("H"),
  functionCall: code("F"),
  parse: code("P"),
  /** PasswordMessage, SASLInitialResponse and SASLResponse share it. */
  password: code("p"),
  query: code("Q"),
  sync: code("S"),
  terminate: code("X"),
} as const;

/** Messages with no body (encodeEmpty). */
export type EmptyMessage =
  | typeof BackendMessage.parseComplete
  | typeof BackendMessage.bindComplete
  | typeof BackendMessage.closeComplete
  | typeof BackendMessage.noData
  | typeof BackendMessage.emptyQueryResponse
  | typeof BackendMessage.portalSuspended
  | typeof BackendMessage.copyDone;
