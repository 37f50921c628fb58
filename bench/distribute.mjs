// pnpm bench distribute: create_distributed_table of a table that already holds rows. The
// coordinator's memory (peak RSS growth of its processes while it runs) and the time it takes,
// next to the time one PostgreSQL takes to copy the same rows into a new table (CREATE TABLE AS).
import { setTimeout as sleep } from "node:timers/promises";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { coordinatorProcesses, rssKb } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { connect } from "./lib/pg-client.mjs";
import { markdownTable } from "./lib/table.mjs";

export const description =
  "create_distributed_table of a loaded table: coordinator RSS growth and time vs one PostgreSQL's copy";

const WORKERS = 2;
const OPTIONS = {
  rows: { default: [2_000_000], min: 1000, list: true, help: "rows in the table (about 100 bytes each)" },
};

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("distribute", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const machine = await describeMachine();
  progress(`starting herd up --workers ${WORKERS}`);
  const cluster = await startHerdCluster({ workers: WORKERS, signal });
  const results = [];
  try {
    const herd = await connect(cluster.sqlPort, password);
    const plain = await connect(cluster.postgresPort, cluster.internalPassword);
    try {
      const processes = await coordinatorProcesses(cluster);
      for (const rows of options.rows) {
        const table = `big_${rows}`;
        await herd.query(`CREATE TABLE ${table} (id bigint, note text)`);
        await herd.query(`INSERT INTO ${table} SELECT g, repeat('x', 90) FROM generate_series(1, $1::bigint) g`, [
          rows,
        ]);
        // the baseline: one PostgreSQL copies the same rows into a new table
        await plain.query(`CREATE TABLE bench_copy_source (id bigint, note text)`);
        await plain.query(
          `INSERT INTO bench_copy_source SELECT g, repeat('x', 90) FROM generate_series(1, $1::bigint) g`,
          [rows],
        );
        let started = performance.now();
        await plain.query("CREATE TABLE bench_copy AS SELECT * FROM bench_copy_source");
        const plainMs = performance.now() - started;
        await plain.query("DROP TABLE bench_copy, bench_copy_source");
        const before = rssKb(processes);
        let peak = before;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            peak = Math.max(peak, rssKb(processes));
            await sleep(50);
          }
        })();
        started = performance.now();
        await herd.query("SELECT create_distributed_table($1, 'id')", [table]);
        const herdMs = performance.now() - started;
        sampling = false;
        await sampler;
        const count = Number((await herd.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
        if (count !== rows) throw new Error(`${table} holds ${count} rows after distribution, not ${rows}`);
        results.push({ rows, growthMb: (peak - before) / 1024, herdMs, plainMs });
        progress(
          `${rows.toLocaleString("en-US")} rows: coordinator RSS +${((peak - before) / 1024).toFixed(0)} MB, ${(herdMs / 1000).toFixed(1)} s (one PostgreSQL's copy ${(plainMs / 1000).toFixed(1)} s)`,
        );
        await herd.query(`DROP TABLE ${table}`);
      }
    } finally {
      await herd.end();
      await plain.end();
    }
  } finally {
    progress("stopping the cluster");
    await cluster.stop();
  }
  const table = markdownTable(
    [
      "rows",
      "coordinator peak RSS growth",
      "create_distributed_table",
      "one PostgreSQL's CREATE TABLE AS",
      "herd / postgres time",
    ],
    results.map((r) => [
      r.rows.toLocaleString("en-US"),
      `${r.growthMb.toFixed(0)} MB`,
      `${(r.herdMs / 1000).toFixed(1)} s`,
      `${(r.plainMs / 1000).toFixed(1)} s`,
      (r.herdMs / r.plainMs).toFixed(1),
    ]),
    ["r", "r", "r", "r", "r"],
  );
  process.stdout.write(`\n${table}\n`);
  await writeBenchmarkSection(
    "distribute",
    `Target (the coordinator issue): distributing a loaded table grows the coordinator's memory by at most 200 MB, whatever its size.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}
- commit: ${machine.commit}
- command: \`${["pnpm bench distribute", ...argv].join(" ")}\`

A \`herd up --workers ${WORKERS}\` cluster on tmpfs; a table \`(id bigint, note text)\` of ~100-byte rows
loaded through herd while still ordinary, then \`create_distributed_table(…, 'id')\` (32 shards,
replication factor 2): the rows leave the shell sorted by shard into temporary files on the
coordinator's disk, then stream into each shard's placements. The coordinator's peak RSS (all its
processes, sampled every 50 ms) minus its RSS before. The baseline is one PostgreSQL copying the same
rows into a new table (\`CREATE TABLE … AS\`, the coordinator's own PostgreSQL).

${table}
`,
  );
  progress("wrote the distribute section of docs/benchmarks.md");
}

function progress(message) {
  process.stderr.write(`distribute: ${message}\n`);
}
