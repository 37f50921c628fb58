// pnpm bench analytics: multi-shard analytic queries. orders and lineitem distributed by order key
// (colocated) over 3 workers ("herd", SQL port) against one plain PostgreSQL holding the same rows
// ("postgres": the coordinator's own PostgreSQL, SQL port + 1, in a schema of its own), each query
// checked to give the same result on both, then timed alternately round by round; reported as
// herd / postgres ratios of median times.
import { performance } from "node:perf_hooks";
import pg from "pg";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { markdownTable, median } from "./lib/table.mjs";

export const description =
  "count/sum/avg, GROUP BY, ORDER BY … LIMIT, colocated join: orders and lineitem over 3 workers vs one PostgreSQL";

/** The analytics issue's goal: no query through herd slower than this many times one PostgreSQL. */
const TARGET_RATIO = 1.5;
/** The plain copy of the tables, in the coordinator's own PostgreSQL next to herd's shells in public. */
const PLAIN_SCHEMA = "bench_plain";
const LINES_PER_ORDER = 4;
/** Rows generated per INSERT … SELECT, so that long loads show progress. */
const CHUNK_ROWS = 1_000_000;
/** Settings that decide how PostgreSQL plans and runs a scan; reported, and expected at their defaults. */
const REPORTED_SETTINGS = [
  "max_parallel_workers_per_gather",
  "max_parallel_workers",
  "max_worker_processes",
  "min_parallel_table_scan_size",
  "parallel_setup_cost",
  "parallel_tuple_cost",
  "work_mem",
  "shared_buffers",
  "jit",
];

const OPTIONS = {
  rows: { default: [1_000_000, 10_000_000], min: LINES_PER_ORDER, list: true, help: "lineitem rows, per size" },
  rounds: { default: 5, min: 1, help: "rounds; each runs every query on postgres, then herd" },
  workers: { default: 3, min: 2, help: "herd workers (replication factor 2 needs 2)" },
};

/**
 * The tables, created the same way on both sides. numeric rather than float8 columns, so that
 * sums and averages are exact and do not depend on the order rows are added in: both sides must
 * return the very same text.
 */
const TABLES = [
  `CREATE TABLE orders (
     o_orderkey bigint PRIMARY KEY,
     o_custkey integer NOT NULL,
     o_orderstatus text NOT NULL,
     o_orderpriority text NOT NULL,
     o_orderdate date NOT NULL,
     o_totalprice numeric(12,2) NOT NULL)`,
  `CREATE TABLE lineitem (
     l_orderkey bigint NOT NULL,
     l_linenumber integer NOT NULL,
     l_partkey integer NOT NULL,
     l_quantity numeric(12,2) NOT NULL,
     l_extendedprice numeric(12,2) NOT NULL,
     l_discount numeric(4,2) NOT NULL,
     l_tax numeric(4,2) NOT NULL,
     l_returnflag text NOT NULL,
     l_shipmode text NOT NULL,
     l_shipdate date NOT NULL,
     PRIMARY KEY (l_orderkey, l_linenumber))`,
];

/**
 * Row generators for keys $1..$2: plain arithmetic on the key (no random()), so the data is the
 * same on every run. `LINES_PER_ORDER` lines per order: lineitem row g belongs to order
 * (g - 1) / 4 + 1.
 */
const GENERATE = {
  orders: `INSERT INTO orders
    SELECT o, 1 + (o * 7919) % 150000,
           (ARRAY['F', 'O', 'P'])[1 + o % 3],
           (ARRAY['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'])[1 + (o * 7) % 5],
           date '1992-01-01' + ((o * 16807) % 2400)::int,
           1000 + ((o * 104729) % 50000000) / 100.0
      FROM generate_series($1::bigint, $2::bigint) o`,
  lineitem: `INSERT INTO lineitem
    SELECT (g - 1) / ${LINES_PER_ORDER} + 1, (g - 1) % ${LINES_PER_ORDER} + 1, p, q,
           q * (900 + (p % 100000) / 100.0),
           ((g * 31) % 11) / 100.0, ((g * 17) % 9) / 100.0,
           (ARRAY['A', 'N', 'R'])[1 + g % 3],
           (ARRAY['AIR', 'FOB', 'MAIL', 'RAIL', 'REG AIR', 'SHIP', 'TRUCK'])[1 + (g * 13) % 7],
           date '1992-01-01' + ((g * 48271) % 2500)::int
      FROM generate_series($1::bigint, $2::bigint) g,
           LATERAL (SELECT 1 + (g * 2654435761) % 200000 AS p, 1 + (g * 7919) % 50 AS q) v`,
};

/** The queries, the same text on both sides (the plain side finds its tables through search_path). */
const QUERIES = [
  {
    name: "count/sum/avg",
    sql: "SELECT count(*), sum(l_quantity), avg(l_extendedprice) FROM lineitem",
  },
  {
    name: "GROUP BY l_shipmode",
    sql: `SELECT l_shipmode, count(*), sum(l_quantity), avg(l_discount)
            FROM lineitem GROUP BY l_shipmode ORDER BY l_shipmode`,
  },
  {
    name: "ORDER BY … LIMIT 10",
    sql: `SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode
            FROM lineitem ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 10`,
  },
  {
    name: "colocated join, GROUP BY o_orderpriority",
    sql: `SELECT o_orderpriority, count(*), sum(l_extendedprice * (1 - l_discount)) AS revenue
            FROM orders JOIN lineitem ON o_orderkey = l_orderkey
           GROUP BY o_orderpriority ORDER BY o_orderpriority`,
  },
];

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("analytics", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const machine = await describeMachine();

  progress(`starting herd up --workers ${options.workers}`);
  const started = Date.now();
  const cluster = await startHerdCluster({ workers: options.workers, signal });
  const connect = connector((port) => cluster.passwordFor(port, password), signal);
  const clients = [];
  const results = [];
  let settings;
  let shardCount;
  let replication;
  try {
    progress(
      `cluster ready in ${since(started)} (${cluster.dataDir}; herd ${cluster.sqlPort}, postgres ${cluster.postgresPort})`,
    );
    const herd = await connect(cluster.sqlPort);
    // (the shell guard off: the load checks, on purpose, that herd's shells hold no rows)
    const plain = await connect(cluster.postgresPort, `-c search_path=${PLAIN_SCHEMA} -c herd.shell_guard=off`);
    clients.push(herd, plain);
    const sides = { postgres: plain, herd };
    for (const rows of options.rows) {
      signal.throwIfAborted();
      const load = await loadBoth(rows, { herd, plain, connect, signal });
      ({ shardCount, replication } = load);
      settings ??= await serverSettings(plain, load.workerPorts, connect);
      await checkResults(sides, rows);
      const times = await timeAlternating(sides, rows, options.rounds, signal);
      results.push({ rows, load, times });
      await dropTables(herd, plain);
    }
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
    progress("stopping the cluster");
    await cluster.stop();
  }

  const table = resultTable(results);
  process.stdout.write(`\n${table}\n`);
  await writeBenchmarkSection(
    "analytics",
    describeRun({ argv, options, machine, settings, shardCount, replication, results, table }),
  );
  progress("wrote the analytics section of docs/benchmarks.md");
}

/**
 * Loads `rows` lineitem rows (and rows / 4 orders) on both sides. The plain tables are generated
 * in place; herd's are filled from them, then checked: every row on the workers, none left in
 * the coordinator's shells. Both sides are then VACUUM ANALYZEd (the workers directly, shard
 * tables being ordinary tables there), so neither pays for hint bits or lacks statistics.
 */
async function loadBoth(rows, { herd, plain, connect, signal }) {
  const orders = Math.ceil(rows / LINES_PER_ORDER);
  const counts = { orders, lineitem: rows };
  const seconds = {};

  let started = Date.now();
  await query(plain, `DROP SCHEMA IF EXISTS ${PLAIN_SCHEMA} CASCADE`);
  await query(plain, `CREATE SCHEMA ${PLAIN_SCHEMA}`);
  for (const sql of TABLES) await query(plain, sql);
  for (const [table, count] of Object.entries(counts)) await generate(plain, table, count, signal);
  seconds.postgres = (Date.now() - started) / 1000;
  progress(`${fmt(rows)} rows: postgres loaded in ${since(started)}`);

  started = Date.now();
  const shardCount = await loadHerd(herd, counts);
  seconds.herd = (Date.now() - started) / 1000;
  progress(`${fmt(rows)} rows: herd loaded in ${since(started)}`);

  started = Date.now();
  const { ports: workerPorts, replication } = await checkPlacements(herd, plain, connect, counts);
  await query(plain, "VACUUM ANALYZE orders, lineitem");
  await Promise.all(
    workerPorts.map(async (port) => {
      const worker = await connect(port);
      try {
        await query(worker, "VACUUM ANALYZE");
      } finally {
        await worker.end();
      }
    }),
  );
  progress(`${fmt(rows)} rows: counts checked, both sides VACUUM ANALYZEd in ${since(started)}`);
  return { seconds, shardCount, replication, workerPorts };
}

/** INSERT … SELECT generate_series into `table` through `client`, `CHUNK_ROWS` at a time. */
async function generate(client, table, count, signal) {
  for (let first = 1; first <= count; first += CHUNK_ROWS) {
    signal.throwIfAborted();
    const last = Math.min(count, first + CHUNK_ROWS - 1);
    await query(client, GENERATE[table], [first, last]);
    if (count > CHUNK_ROWS) progress(`  ${table}: ${fmt(last)} / ${fmt(count)} rows`);
  }
}

/**
 * herd's tables filled while still local, then distributed: through herd's SQL port the
 * INSERT … SELECT from the plain tables runs on the coordinator's own PostgreSQL, and
 * create_distributed_table then moves the rows into the shards on the workers (both placements)
 * and empties the shell. Faster here than COPY … FROM STDIN through herd (see bench/README.md).
 * Returns the shard count.
 */
async function loadHerd(herd, counts) {
  let started = Date.now();
  for (const sql of TABLES) await query(herd, sql);
  for (const table of Object.keys(counts)) {
    await query(herd, `INSERT INTO ${table} SELECT * FROM ${PLAIN_SCHEMA}.${table}`);
  }
  progress(`  herd: rows in the coordinator's shells in ${since(started)}`);
  started = Date.now();
  await query(herd, "SELECT create_distributed_table('orders', 'o_orderkey')");
  progress(`  herd: orders distributed in ${since(started)}`);
  started = Date.now();
  await query(herd, "SELECT create_distributed_table('lineitem', 'l_orderkey', colocate_with => 'orders')");
  progress(`  herd: lineitem distributed in ${since(started)}`);
  const { rows } = await query(
    herd,
    `SELECT count(DISTINCT colocation_id), min(shard_count) FROM citus_tables
      WHERE table_name::text IN ('orders', 'lineitem')`,
  );
  if (Number(rows[0][0]) !== 1) throw new Error("orders and lineitem are not colocated");
  return Number(rows[0][1]);
}

/**
 * The rows really are on the workers: counted shard by shard on every placement (straight to the
 * workers' PostgreSQL), every placement of a shard holding the same rows, the shards adding up to
 * the plain side's count, and the coordinator's shells empty. Returns the workers' ports and the
 * number of placements per shard.
 */
async function checkPlacements(herd, plain, connect, counts) {
  const { rows: placements } = await query(
    herd,
    `SELECT table_name::text, shard_name, nodeport FROM citus_shards
      WHERE table_name::text IN ('orders', 'lineitem') ORDER BY shardid, nodeport`,
  );
  const ports = [...new Set(placements.map(([, , port]) => Number(port)))].sort((a, b) => a - b);
  const shardRows = new Map();
  await Promise.all(
    ports.map(async (port) => {
      const worker = await connect(port);
      try {
        for (const [table, shard, placementPort] of placements) {
          if (Number(placementPort) !== port) continue;
          const { rows } = await query(worker, `SELECT count(*) FROM ${pg.escapeIdentifier(shard)}`);
          const count = Number(rows[0][0]);
          const seen = shardRows.get(shard);
          if (seen !== undefined && seen.count !== count) {
            throw new Error(`shard ${shard} holds ${seen.count} rows on one placement and ${count} on another`);
          }
          shardRows.set(shard, { table, count });
        }
      } finally {
        await worker.end();
      }
    }),
  );
  for (const [table, expected] of Object.entries(counts)) {
    const onWorkers = [...shardRows.values()].filter((s) => s.table === table).reduce((sum, s) => sum + s.count, 0);
    const { rows: planned } = await query(plain, `SELECT count(*) FROM ${table}`);
    const { rows: shell } = await query(plain, `SELECT count(*) FROM ONLY public.${table}`);
    if (onWorkers !== expected || Number(planned[0][0]) !== expected || Number(shell[0][0]) !== 0) {
      throw new Error(
        `${table}: expected ${expected} rows; the workers' shards hold ${onWorkers}, postgres ${planned[0][0]}, herd's shell ${shell[0][0]}`,
      );
    }
  }
  const placementsPerShard = new Map();
  for (const [, shard] of placements) placementsPerShard.set(shard, (placementsPerShard.get(shard) ?? 0) + 1);
  return { ports, replication: [...new Set(placementsPerShard.values())].join(" or ") };
}

/**
 * Runs every query once on each side, unrecorded (it also warms both up), and compares the
 * results as PostgreSQL's text: column names and every value. A failed query or any difference is
 * an error; all queries are tried first, so one error lists every query herd refuses.
 */
async function checkResults(sides, rows) {
  const problems = [];
  for (const { name, sql } of QUERIES) {
    const answers = {};
    for (const [target, client] of Object.entries(sides)) {
      try {
        answers[target] = await query(client, sql);
      } catch (error) {
        problems.push(`${name} (${target}): ${[error.code, error.message].filter(Boolean).join(" ")}`);
      }
    }
    if (!answers.postgres || !answers.herd) continue;
    const difference = firstDifference(answers.postgres, answers.herd);
    if (difference) problems.push(`${name}: herd's result differs from postgres's: ${difference}`);
  }
  if (problems.length > 0) throw new Error(`${fmt(rows)} rows:\n  ${problems.join("\n  ")}`);
  progress(`${fmt(rows)} rows: all ${QUERIES.length} queries give the same result on both sides`);
}

function firstDifference(expected, actual) {
  const names = (result) => result.fields.map((field) => field.name).join(", ");
  if (names(expected) !== names(actual)) return `columns (${names(actual)}) instead of (${names(expected)})`;
  if (expected.rows.length !== actual.rows.length)
    return `${actual.rows.length} rows instead of ${expected.rows.length}`;
  for (const [index, row] of expected.rows.entries()) {
    const got = JSON.stringify(actual.rows[index]);
    if (got !== JSON.stringify(row)) return `row ${index + 1} is ${got} instead of ${JSON.stringify(row)}`;
  }
  return undefined;
}

/** `rounds` rounds of every query on postgres, then herd; resolves with times[query][target] = [ms, …]. */
async function timeAlternating(sides, rows, rounds, signal) {
  const times = Object.fromEntries(QUERIES.map(({ name }) => [name, { postgres: [], herd: [] }]));
  const width = Math.max(...QUERIES.map(({ name }) => name.length));
  for (let round = 1; round <= rounds; round += 1) {
    for (const { name, sql } of QUERIES) {
      for (const [target, client] of Object.entries(sides)) {
        signal.throwIfAborted();
        const start = performance.now();
        await query(client, sql);
        const ms = performance.now() - start;
        times[name][target].push(ms);
        progress(
          `${fmt(rows)} rows, round ${round}/${rounds}  ${name.padEnd(width)}  ${target.padEnd(8)} ${millis(ms).padStart(9)} ms`,
        );
      }
    }
  }
  return times;
}

/**
 * The server version and the scan-related settings of the plain side and of every worker, each
 * marked when it is not PostgreSQL's default, as one line when all servers agree.
 */
async function serverSettings(plain, workerPorts, connect) {
  const read = async (client) => {
    const { rows } = await query(
      client,
      `SELECT name, current_setting(name), setting = boot_val FROM pg_settings WHERE name = ANY($1)
       UNION ALL SELECT 'JIT available', pg_jit_available()::text, true
       UNION ALL SELECT 'version', current_setting('server_version'), true`,
      [REPORTED_SETTINGS],
    );
    return rows
      .map(([name, value, isDefault]) => `${name} ${value}${isDefault === "t" ? "" : " (not the default)"}`)
      .join(", ");
  };
  const servers = { postgres: await read(plain) };
  for (const [index, port] of workerPorts.entries()) {
    const worker = await connect(port);
    try {
      servers[`worker ${index + 1}`] = await read(worker);
    } finally {
      await worker.end();
    }
  }
  const lines = Object.values(servers);
  if (lines.every((line) => line === lines[0])) return `postgres and every worker: ${lines[0]}`;
  return Object.entries(servers)
    .map(([server, line]) => `${server}: ${line}`)
    .join("; ");
}

async function dropTables(herd, plain) {
  await query(herd, "DROP TABLE lineitem");
  await query(herd, "DROP TABLE orders");
  await query(plain, `DROP SCHEMA ${PLAIN_SCHEMA} CASCADE`);
}

function resultTable(results) {
  return markdownTable(
    [
      "rows (lineitem)",
      "query",
      "postgres ms (median)",
      "herd ms (median)",
      "herd / postgres",
      `≤ ${TARGET_RATIO}?`,
      "postgres runs (ms)",
      "herd runs (ms)",
    ],
    results.flatMap(({ rows, times }) =>
      Object.entries(times).map(([name, { postgres, herd }]) => {
        const ratio = median(herd) / median(postgres);
        return [
          fmt(rows),
          name,
          millis(median(postgres)),
          millis(median(herd)),
          ratio.toFixed(2),
          ratio <= TARGET_RATIO ? "yes" : "no",
          postgres.map(millis).join(" / "),
          herd.map(millis).join(" / "),
        ];
      }),
    ),
    ["r", "l", "r", "r", "r", "l", "r", "r"],
  );
}

function describeRun({ argv, options, machine, settings, shardCount, replication, results, table }) {
  const command = ["pnpm bench analytics", ...argv].join(" ");
  const loads = results
    .map(
      ({ rows, load }) =>
        `${fmt(rows)} rows: postgres ${load.seconds.postgres.toFixed(1)} s, herd ${load.seconds.herd.toFixed(1)} s`,
    )
    .join("; ");
  return `Target (the analytics issue): no query through herd slower than ${TARGET_RATIO} × one plain PostgreSQL holding the same data.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}
- commit: ${machine.commit}
- command: \`${command}\`
- herd's environment: ${herdEnvironment()}
- PostgreSQL settings (from \`pg_settings\`): ${settings}
- load times (generating the baseline; copying and distributing herd's): ${loads}

A \`herd up --workers ${options.workers}\` cluster on tmpfs. \`orders\` (\`o_orderkey\` bigint primary key, customer,
status, priority, date, numeric total) and \`lineitem\` (${LINES_PER_ORDER} lines per order: \`l_orderkey\`, line
number, part, numeric quantity, price, discount and tax, return flag, ship mode, date; primary key
\`(l_orderkey, l_linenumber)\`); "rows" counts lineitem's rows, orders holds a quarter as many.
The rows are generated with \`generate_series\` (deterministic arithmetic, no \`random()\`) into
plain tables in the coordinator's own PostgreSQL ("postgres", SQL port + 1, schema \`${PLAIN_SCHEMA}\`),
the single-server baseline. Through herd's SQL port they are copied into herd's still local
tables (\`INSERT … SELECT\`), which \`create_distributed_table\` then distributes by order key,
moving the rows onto the workers (${shardCount} shards each, colocated, ${replication} placements per shard over the
${options.workers} workers). Before the queries, every placement is counted on its worker (all rows there,
none left on the coordinator), and both sides are \`VACUUM ANALYZE\`d. The baseline and every
worker run with the settings listed above (marked where not PostgreSQL's default), parallel
query included.

Each query runs once on both sides unrecorded and must return the same columns and values (as
text: numeric columns, so sums and averages are exact); then ${options.rounds} round${options.rounds === 1 ? "" : "s"} of every query,
each on "postgres", then through herd ("herd", SQL port), one connection per side; wall time
from sending the query to its last row, in the client. The coordinator, its PostgreSQL (the
baseline's server, which also holds herd's metadata and runs herd's merge step: the shards'
partial results in a temporary table, then the combine query) and the ${options.workers} workers' bots and PostgreSQL servers share
the machine's ${machine.nproc} cores, as does the baseline with its parallel workers.

${QUERIES.map(({ name, sql }) => `- ${name}: \`${sql.replace(/\s+/g, " ")}\``).join("\n")}

${table}
`;
}

/**
 * The HERD_* variables this run passed on to herd up (e.g. HERD_SHARD_CONNECTIONS, how many
 * connections a multi-shard read opens per worker), which change what is measured.
 */
function herdEnvironment() {
  const set = Object.entries(process.env).filter(([name]) => name.startsWith("HERD_") && name !== "HERD_PASSWORD");
  return set.length === 0 ? "no HERD_* variables set (herd's defaults)" : set.map(([n, v]) => `${n}=${v}`).join(", ");
}

/**
 * `connect(port, settings)` opens a pg client to 127.0.0.1:`port` whose values stay PostgreSQL's
 * text (no type parsing). An abort of `signal` ends every client still open, so that a long
 * statement (a load, a scan) fails at once and the cluster is stopped without waiting for it.
 */
function connector(passwordFor, signal) {
  const open = new Set();
  signal.addEventListener("abort", () => {
    for (const client of open) client.end().catch(() => {});
  });
  return async (port, settings) => {
    signal.throwIfAborted();
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "postgres",
      password: passwordFor(port),
      database: "postgres",
      options: settings,
      types: { getTypeParser: () => (text) => text },
    });
    open.add(client);
    client.once("end", () => open.delete(client));
    // an idle client whose server goes away emits "error"; a query's own failure rejects that query
    client.on("error", () => {});
    await client.connect();
    return client;
  };
}

function progress(message) {
  process.stderr.write(`analytics: ${message}\n`);
}

function since(start) {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}

function fmt(count) {
  return count.toLocaleString("en-US");
}

function millis(ms) {
  return ms < 100 ? ms.toFixed(1) : Math.round(ms).toLocaleString("en-US");
}

/** `client.query` with rows as arrays. */
function query(client, text, values) {
  return client.query({ text, values, rowMode: "array" });
}
