// pnpm bench copy: COPY FROM of a CSV file through psql's \copy into a distributed table (replication
// factor 1 and 2), side by side with the same \copy into an ordinary table of one PostgreSQL, in
// alternating rounds; the ratio is one PostgreSQL's time over herd's (1.0: as fast).
import { execFile } from "node:child_process";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { coordinatorProcesses, cpuSeconds } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { connect } from "./lib/pg-client.mjs";
import { markdownTable, median } from "./lib/table.mjs";

export const description = "COPY FROM STDIN (psql \\copy) of N rows: rf 1 and rf 2 vs one PostgreSQL";

const WORKERS = 2;
const OPTIONS = {
  rows: { default: 1_000_000, min: 1000, help: "rows in the file (about 60 bytes each)" },
  rounds: { default: 3, min: 1, help: "alternating rounds (the median counts)" },
};
const COLUMNS = "(id bigint, account int, amount numeric(12,2), note text)";

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("copy", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const machine = await describeMachine();
  const file = join(tmpdir(), `herd-bench-copy-${process.pid}.csv`);
  progress(`writing ${options.rows.toLocaleString("en-US")} rows to ${file}`);
  await writeRows(file, options.rows);
  progress(`starting herd up --workers ${WORKERS}`);
  const cluster = await startHerdCluster({ workers: WORKERS, signal });
  const runs = { "rf 1": { herd: [], postgres: [], cpu: [] }, "rf 2": { herd: [], postgres: [], cpu: [] } };
  try {
    const herd = await connect(cluster.sqlPort, password);
    const plain = await connect(cluster.postgresPort, cluster.internalPassword);
    const processes = await coordinatorProcesses(cluster);
    try {
      await plain.query(`CREATE TABLE bench_copy_plain ${COLUMNS}`);
      for (const factor of [1, 2]) {
        await herd.query(`CREATE TABLE bench_copy_rf${factor} ${COLUMNS}`);
        await herd.query(`SET citus.shard_replication_factor = ${factor}`);
        await herd.query(`SELECT create_distributed_table('bench_copy_rf${factor}', 'id')`);
      }
      for (let round = 1; round <= options.rounds; round++) {
        for (const factor of [1, 2]) {
          const name = `rf ${factor}`;
          await plain.query("TRUNCATE bench_copy_plain");
          const plainMs = await psqlCopy(cluster.postgresPort, cluster.internalPassword, "bench_copy_plain", file);
          runs[name].postgres.push(plainMs);
          await herd.query(`TRUNCATE bench_copy_rf${factor}`);
          const before = cpuSeconds(processes);
          const herdMs = await psqlCopy(cluster.sqlPort, password, `bench_copy_rf${factor}`, file);
          const cpuPerRow = (cpuSeconds(processes) - before) / options.rows;
          runs[name].herd.push(herdMs);
          runs[name].cpu.push(cpuPerRow);
          const count = Number((await herd.query(`SELECT count(*) FROM bench_copy_rf${factor}`)).rows[0].count);
          if (count !== options.rows)
            throw new Error(`bench_copy_rf${factor} holds ${count} rows, not ${options.rows}`);
          progress(
            `round ${round}/${options.rounds}  ${name}  postgres ${(plainMs / 1000).toFixed(2)} s  herd ${(herdMs / 1000).toFixed(2)} s (coordinator ${(cpuPerRow * 1e6).toFixed(1)} µs CPU a row)`,
          );
        }
      }
    } finally {
      await herd.end();
      await plain.end();
    }
  } finally {
    progress("stopping the cluster");
    await cluster.stop();
    await rm(file, { force: true });
  }
  const table = markdownTable(
    ["COPY FROM", "one PostgreSQL", "herd", "ratio (postgres time / herd time)", "coordinator CPU a row"],
    Object.entries(runs).map(([name, r]) => [
      `${options.rows.toLocaleString("en-US")} rows, ${name}`,
      `${(median(r.postgres) / 1000).toFixed(2)} s`,
      `${(median(r.herd) / 1000).toFixed(2)} s`,
      `${(median(r.postgres) / median(r.herd)).toFixed(2)}`,
      `${(median(r.cpu) * 1e6).toFixed(1)} µs`,
    ]),
    ["l", "r", "r", "r", "r"],
  );
  process.stdout.write(`\n${table}\n`);
  await writeBenchmarkSection(
    "copy",
    `Targets (the coordinator issue): COPY FROM 1M rows at ≥ 0.7× one PostgreSQL with replication factor 1, ≥ 0.45× with 2.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}
- commit: ${machine.commit}
- command: \`${["pnpm bench copy", ...argv].join(" ")}\`

A \`herd up --workers ${WORKERS}\` cluster on tmpfs; psql's \`\\copy … FROM file (FORMAT csv)\` of a file of
${options.rows.toLocaleString("en-US")} rows \`${COLUMNS}\` into a table distributed by \`id\` (32 shards) with
replication factor 1 and 2, and the same \`\\copy\` into an ordinary table of the coordinator's own
PostgreSQL (one PostgreSQL holding every row), emptied before each run; ${options.rounds} alternating rounds,
medians. The coordinator's CPU is its processes' user + system time over the herd run.

${table}

Where the time goes: psql sends each row as a CopyData message of its own; the coordinator
finds the row's end and its key in the bytes (\`Buffer.indexOf\`, the key's digits read in place,
hashed without BigInt), copies the row into its shard's batch and sends a batch of 1 MB to each
of the shard's placements at once, while it goes on reading (packages/coordinator/src/copy/README.md).
Before that (commit 4ee92f3, same machine, same day) the ratios were 0.31 and 0.20 with 2.5–4 µs of
coordinator CPU a row: a Buffer, a string, an array of bytes and an await per row, and each batch
sent to one placement after the other while the client waited. What is left a row is the message's
framing and the socket reads; with replication factor 2 the workers also load every row twice on
the same two cores.
`,
  );
  progress("wrote the copy section of docs/benchmarks.md");
}

async function writeRows(file, rows) {
  const out = createWriteStream(file);
  let chunk = "";
  for (let i = 1; i <= rows; i++) {
    chunk += `${i},${i % 1000},${((i * 7919) % 1_000_000) / 100},note for row ${i} of the copy benchmark\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise((resolve) => out.once("drain", resolve));
      chunk = "";
    }
  }
  out.write(chunk);
  await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())));
}

/** Milliseconds psql's \copy of `file` into `table` takes, through 127.0.0.1:`port`. */
async function psqlCopy(port, password, table, file) {
  const started = performance.now();
  await promisify(execFile)(
    "psql",
    [
      "-X",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "postgres",
      "-d",
      "postgres",
      "-c",
      `\\copy ${table} FROM '${file}' (FORMAT csv)`,
    ],
    { env: { ...process.env, PGPASSWORD: password } },
  );
  return performance.now() - started;
}

function progress(message) {
  process.stderr.write(`copy: ${message}\n`);
}
