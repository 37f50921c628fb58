export * from "./admin-schemas.js";
export { Backoff, type BackoffOptions, sleep } from "./backoff.js";
export { Defaults, PodLabels, type PodState, PodStates, type Role, Roles } from "./defaults.js";
export * from "./hashing/index.js";
export { HerdError, type HerdErrorFields, isHerdError, type Severity } from "./herd-error.js";
export { listen } from "./listen.js";
export { createLogger, errorMessage, type LogFields, type Logger, type LogLevel } from "./logger.js";
export { type PodIdentity, parsePodName, roleForOrdinal } from "./ordinal.js";
export { SqlState, type SqlStateCode, type SqlStateName } from "./sql-state.js";
