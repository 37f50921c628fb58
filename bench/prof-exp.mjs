// exploratory (not committed)

import { writeFileSync } from "node:fs";
import { takeCpuProfile } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { connect } from "./lib/pg-client.mjs";
import { pgbench } from "./lib/pgbench.mjs";

const cluster = await startHerdCluster({ workers: 3, env: { HERD_SQL_PROCESSES: "1" } });
try {
  await pgbench(["-i", "-s", "2", "-q"], { port: cluster.sqlPort, password: "postgres" });
  const c = await connect(cluster.sqlPort, "postgres");
  await c.query("SELECT create_distributed_table('pgbench_accounts', 'aid')");
  await c.end();
  await pgbench(["-n", "-S", "-M", "prepared", "-c", "8", "-j", "2", "-T", "3"], {
    port: cluster.sqlPort,
    password: "postgres",
  });
  const [profile] = await Promise.all([
    takeCpuProfile(cluster, 8),
    pgbench(["-n", "-S", "-M", "prepared", "-c", "8", "-j", "2", "-T", "9"], {
      port: cluster.sqlPort,
      password: "postgres",
    }),
  ]);
  writeFileSync("/tmp/exp/router.cpuprofile", JSON.stringify(profile));
} finally {
  await cluster.stop();
}
