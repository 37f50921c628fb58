export { type DataDirectoryState, inspectDataDirectory } from "./data-directory.js";
export { initdb } from "./initdb.js";
export { findPgBinaries, type PgBinaries, POSTGRES_MAJOR } from "./pg-binaries.js";
export { baseSettings, PostgresServer, type PostgresServerOptions } from "./postgres-server.js";
export { isAlive, livePostmasterPid, waitForExit } from "./postmaster-pid.js";
export { assertTraversable, chownTree, type RunAs, resolveRunAs } from "./run-as.js";
export { shellGuardLibrary, withShellGuard } from "./shell-guard.js";
