export { type AdminDeps, buildAdminApp } from "./admin/build-admin-app.js";
export { type Coordinator, type CoordinatorOptions, startCoordinator } from "./coordinator.js";
export { ClusterSettings, type DistributionDefaults } from "./metadata/cluster-settings.js";
export { migrate } from "./metadata/migrate.js";
export { MIGRATIONS, type Migration } from "./metadata/migrations.js";
export { type NodeRecord, NodeRegistry, type RemoveResult } from "./metadata/node-registry.js";
export { loadParser, type ParsedStatement, StatementCache } from "./parser/statement-cache.js";
export * from "./protocol/index.js";
