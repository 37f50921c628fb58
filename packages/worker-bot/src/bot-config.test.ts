import { hostname } from "node:os";
import { HerdError } from "@herd/shared";
import { describe, expect, it } from "vitest";
import { loadBotConfig } from "./bot-config.js";
import { usableCores } from "./usable-cores.js";

const SECRETS = { HERD_PASSWORD: "pw", HERD_ADMIN_TOKEN: "tok", HERD_INTERNAL_PASSWORD: "internal" };

/** The HerdError `load` throws (fails the test when it throws nothing or something else). */
function configError(env: NodeJS.ProcessEnv): HerdError {
  try {
    loadBotConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(HerdError);
    return error as HerdError;
  }
  throw new Error("expected loadBotConfig to throw");
}

describe("loadBotConfig", () => {
  it("reads how many coordinator processes serve the SQL port: a number, or auto for one per core", () => {
    expect(loadBotConfig({ POD_NAME: "herd-0", ...SECRETS, HERD_SQL_PROCESSES: "4" }).sqlProcesses).toBe(4);
    expect(loadBotConfig({ POD_NAME: "herd-0", ...SECRETS, HERD_SQL_PROCESSES: "auto" }).sqlProcesses).toBe(
      usableCores(),
    );
    // auto by default
    expect(loadBotConfig({ POD_NAME: "herd-0", ...SECRETS }).sqlProcesses).toBe(usableCores());
    expect(configError({ POD_NAME: "herd-0", ...SECRETS, HERD_SQL_PROCESSES: "0" }).message).toMatch(
      /HERD_SQL_PROCESSES/,
    );
    expect(configError({ POD_NAME: "herd-0", ...SECRETS, HERD_SQL_PROCESSES: "many" }).message).toMatch(
      /HERD_SQL_PROCESSES/,
    );
  });

  it("gives a coordinator its defaults", () => {
    const config = loadBotConfig({ POD_NAME: "herd-0", ...SECRETS });
    expect(config).toEqual({
      pod: { statefulSet: "herd", ordinal: 0, podName: "herd-0" },
      role: "coordinator",
      clusterId: "default/herd",
      volumeDir: "/var/lib/herd",
      pgPort: 5433,
      pgListen: "127.0.0.1",
      advertiseHost: hostname(),
      sqlHost: "0.0.0.0",
      sqlPort: 5432,
      adminHost: "0.0.0.0",
      adminPort: 6480,
      coordinatorUrl: "http://127.0.0.1:6480",
      adminToken: "tok",
      password: "pw",
      internalPassword: "internal",
      autoRebalance: true,
      replaceLostAfterMs: 900_000,
      shardCount: 32,
      shardConnectionsPerWorker: 2,
      workerConnections: 16,
      sqlProcesses: usableCores(),
      repairIntervalMs: 5_000,
      connectionLimits: {
        maxConnections: 250,
        reservedForSuperusers: 3,
        maxUnauthenticated: 32,
        authTimeoutMs: 10_000,
      },
      replicationFactor: 2,
      heartbeatIntervalMs: 5_000,
      heartbeatTimeoutMs: 15_000,
      pgSettings: {},
    });
  });

  it("gives a worker port 5432 listening everywhere", () => {
    const config = loadBotConfig({ POD_NAME: "herd-3", HERD_COORDINATOR_URL: "http://coord:6480", ...SECRETS });
    expect(config.role).toBe("worker");
    expect(config.pod.ordinal).toBe(3);
    expect(config.pgPort).toBe(5432);
    expect(config.pgListen).toBe("*");
    expect(config.coordinatorUrl).toBe("http://coord:6480");
  });

  it("derives the stable DNS names in a StatefulSet", () => {
    const config = loadBotConfig({
      POD_NAME: "herd-2",
      POD_NAMESPACE: "db",
      HERD_HEADLESS_SERVICE: "herd-hl",
      ...SECRETS,
    });
    expect(config.role).toBe("worker");
    expect(config.advertiseHost).toBe("herd-2.herd-hl.db.svc.cluster.local");
    expect(config.coordinatorUrl).toBe("http://herd-0.herd-hl.db.svc.cluster.local:6480");
    expect(config.clusterId).toBe("db/herd");
  });

  it("builds the coordinator URL from the set name and admin port, and lets explicit values win", () => {
    const derived = loadBotConfig({
      POD_NAME: "my-db-1",
      HERD_HEADLESS_SERVICE: "my-db-hl",
      HERD_ADMIN_PORT: "7000",
      ...SECRETS,
    });
    expect(derived.coordinatorUrl).toBe("http://my-db-0.my-db-hl.default.svc.cluster.local:7000");
    expect(derived.advertiseHost).toBe("my-db-1.my-db-hl.default.svc.cluster.local");

    const explicit = loadBotConfig({
      POD_NAME: "my-db-1",
      HERD_HEADLESS_SERVICE: "my-db-hl",
      HERD_COORDINATOR_URL: "http://elsewhere:1",
      HERD_ADVERTISE_HOST: "10.0.0.5",
      ...SECRETS,
    });
    expect(explicit.coordinatorUrl).toBe("http://elsewhere:1");
    expect(explicit.advertiseHost).toBe("10.0.0.5");
  });

  it("knows it is in Kubernetes from KUBERNETES_SERVICE_HOST, and only then", () => {
    const pod = { POD_NAME: "herd-2", POD_NAMESPACE: "db", HERD_HEADLESS_SERVICE: "herd-hl", ...SECRETS };
    expect(loadBotConfig(pod).kubernetes).toBeUndefined();
    const inPod = loadBotConfig({ ...pod, KUBERNETES_SERVICE_HOST: "10.96.0.1", HERD_POD_SELECTOR: "app=x" });
    expect(inPod.kubernetes?.namespace).toBe("db");
    expect(inPod.kubernetes?.podSelector).toBe("app=x");
    expect(inPod.kubernetes?.dnsName("herd-3")).toBe("herd-3.herd-hl.db.svc.cluster.local");
  });

  it("needs the headless Service in Kubernetes, which names the pods", () => {
    const error = configError({ POD_NAME: "herd-0", KUBERNETES_SERVICE_HOST: "10.96.0.1", ...SECRETS });
    expect(error.message).toBe("HERD_HEADLESS_SERVICE is required in Kubernetes");
  });

  it("takes every explicit setting from the environment", () => {
    const config = loadBotConfig({
      POD_NAME: "herd-0",
      HERD_CLUSTER_ID: "cluster-x",
      HERD_DATA_DIR: "/data",
      HERD_PG_PORT: "6433",
      HERD_PG_LISTEN: "localhost",
      HERD_SQL_HOST: "127.0.0.1",
      HERD_SQL_PORT: "6432",
      HERD_ADMIN_HOST: "127.0.0.1",
      HERD_ADMIN_PORT: "6490",
      HERD_SHARD_COUNT: "8",
      HERD_REPLICATION_FACTOR: "3",
      HERD_HEARTBEAT_INTERVAL_MS: "1000",
      HERD_HEARTBEAT_TIMEOUT_MS: "4000",
      HERD_REPLACE_LOST_AFTER_S: "0",
      HERD_AUTO_REBALANCE: "off",
      ...SECRETS,
    });
    expect(config).toMatchObject({
      clusterId: "cluster-x",
      volumeDir: "/data",
      pgPort: 6433,
      pgListen: "localhost",
      sqlHost: "127.0.0.1",
      sqlPort: 6432,
      adminHost: "127.0.0.1",
      adminPort: 6490,
      coordinatorUrl: "http://127.0.0.1:6490",
      shardCount: 8,
      replicationFactor: 3,
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 4_000,
      replaceLostAfterMs: 0,
      autoRebalance: false,
    });
  });

  // A manifest that renders `value: ""` must not make a worker throw although HERD_HEADLESS_SERVICE names the
  // coordinator, nor give the coordinator the URL "" or a worker the host "".
  it("treats an empty HERD_COORDINATOR_URL or HERD_ADVERTISE_HOST as unset, as it does empty numbers", () => {
    const empty = { HERD_COORDINATOR_URL: "", HERD_ADVERTISE_HOST: "", ...SECRETS };
    const worker = loadBotConfig({
      POD_NAME: "herd-2",
      POD_NAMESPACE: "db",
      HERD_HEADLESS_SERVICE: "herd-hl",
      ...empty,
    });
    expect(worker.coordinatorUrl).toBe("http://herd-0.herd-hl.db.svc.cluster.local:6480");
    expect(worker.advertiseHost).toBe("herd-2.herd-hl.db.svc.cluster.local");
    const coordinator = loadBotConfig({ POD_NAME: "herd-0", ...empty });
    expect(coordinator.coordinatorUrl).toBe("http://127.0.0.1:6480");
    expect(coordinator.advertiseHost).toBe(hostname());
  });

  it("treats an empty number as unset", () => {
    expect(loadBotConfig({ POD_NAME: "herd-0", HERD_SHARD_COUNT: "", ...SECRETS }).shardCount).toBe(32);
  });

  it.each(["HERD_PASSWORD", "HERD_ADMIN_TOKEN"])("requires %s", (name) => {
    const missing = { POD_NAME: "herd-0", ...SECRETS, [name]: undefined };
    const empty = { POD_NAME: "herd-0", ...SECRETS, [name]: "" };
    for (const env of [missing, empty]) {
      const error = configError(env);
      expect(error.message).toBe(`${name} is required and empty`);
      expect(error.sqlState).toBe("F0000");
    }
  });

  it("runs a cluster made before the internal password with the SQL password in its place", () => {
    const config = loadBotConfig({ POD_NAME: "herd-0", ...SECRETS, HERD_INTERNAL_PASSWORD: "" });
    expect(config.internalPassword).toBe("pw");
  });

  it("refuses a worker that cannot know where the coordinator is", () => {
    const error = configError({ POD_NAME: "herd-1", ...SECRETS });
    expect(error.message).toContain("HERD_COORDINATOR_URL");
    expect(error.sqlState).toBe("F0000");
    expect(error.hint).toContain("HERD_HEADLESS_SERVICE");
  });

  it("refuses a pod name without an ordinal", () => {
    const error = configError({ POD_NAME: "herd", ...SECRETS });
    expect(error.sqlState).toBe("22023");
  });

  it.each([
    ["HERD_PG_PORT", "abc"],
    ["HERD_PG_PORT", "1.5"],
    ["HERD_PG_PORT", "0"],
    ["HERD_PG_PORT", "-1"],
    ["HERD_SQL_PORT", "70000"],
    ["HERD_ADMIN_PORT", "65536"],
    ["HERD_SHARD_COUNT", "0"],
    ["HERD_SHARD_COUNT", "10001"],
    ["HERD_REPLICATION_FACTOR", "17"],
    ["HERD_HEARTBEAT_INTERVAL_MS", "99"],
    ["HERD_HEARTBEAT_TIMEOUT_MS", "299"],
    ["HERD_PG_PORT", "0x1F90"],
    ["HERD_PG_PORT", "1e3"],
    ["HERD_PG_PORT", " 5432 "],
  ])("rejects %s=%s", (name, value) => {
    const error = configError({ POD_NAME: "herd-0", ...SECRETS, [name]: value });
    expect(error.sqlState).toBe("F0000");
    expect(error.message).toMatch(new RegExp(`^${name} must be a whole number from \\d+ to \\d+, not "${value}"$`));
  });

  it("accepts the bounds of each range", () => {
    const config = loadBotConfig({
      POD_NAME: "herd-0",
      HERD_PG_PORT: "65535",
      HERD_SQL_PORT: "1",
      HERD_SHARD_COUNT: "10000",
      HERD_REPLICATION_FACTOR: "16",
      HERD_HEARTBEAT_INTERVAL_MS: "100",
      ...SECRETS,
    });
    expect(config).toMatchObject({ pgPort: 65535, sqlPort: 1, shardCount: 10_000, replicationFactor: 16 });
    expect(config.heartbeatIntervalMs).toBe(100);
  });

  describe("HERD_PG_SETTINGS", () => {
    const load = (settings: string) => loadBotConfig({ POD_NAME: "herd-0", HERD_PG_SETTINGS: settings, ...SECRETS });

    it("reads a JSON object and turns its values into strings", () => {
      expect(
        load('{"work_mem": "64MB", "max_connections": 200, "citus.shard_count": 4, "_x": true}').pgSettings,
      ).toEqual({ work_mem: "64MB", max_connections: "200", "citus.shard_count": "4", _x: "true" });
    });

    it("is empty when unset or empty", () => {
      expect(load("").pgSettings).toEqual({});
      expect(load("{}").pgSettings).toEqual({});
    });

    it.each(["not json", "[1, 2]", '"work_mem"', "42", "null"])("rejects %s, which is not a JSON object", (text) => {
      const error = configError({ POD_NAME: "herd-0", HERD_PG_SETTINGS: text, ...SECRETS });
      expect(error.message).toBe("HERD_PG_SETTINGS must be a JSON object of PostgreSQL settings");
      expect(error.sqlState).toBe("F0000");
    });

    it.each(["Work_Mem", "1abc", "work-mem", "work mem", "a;b", "", "x=y"])("rejects the setting name %j", (name) => {
      const error = configError({
        POD_NAME: "herd-0",
        HERD_PG_SETTINGS: JSON.stringify({ [name]: "1" }),
        ...SECRETS,
      });
      expect(error.message).toBe(`HERD_PG_SETTINGS has an invalid setting name "${name}"`);
      expect(error.sqlState).toBe("F0000");
    });
  });
});
