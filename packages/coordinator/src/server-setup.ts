/**
 * What a bot needs of the coordinator package to set up a PostgreSQL server (its superuser's
 * SCRAM verifier, the catalog extension's directory), without loading the rest of it: a worker's
 * bot imports only this (`@herd/coordinator/server-setup`), and the coordinator's parser,
 * planner and admin API (some 20 MB of heap) stay out of the worker pods.
 */
export { CATALOG_EXTENSION_DIR } from "./metadata/catalog-extension.js";
export { quoteLiteral } from "./parser/identifiers.js";
export { makeVerifier, verifierText } from "./protocol/scram.js";
