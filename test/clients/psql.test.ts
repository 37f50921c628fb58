import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";

const herd = useHerdCluster("psql", { workers: 1 });

const run = promisify(execFile);

/** psql against the coordinator (or another port); resolves with stdout, rejects with psql's stderr. */
async function psql(...args: string[]): Promise<string> {
  return psqlAt(herd.cluster.sqlPort, ...args);
}

async function psqlAt(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(
    "psql",
    ["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", ...args],
    {
      // the coordinator's own PostgreSQL holds herd's internal password, not the SQL port's
      env: {
        ...process.env,
        PGPASSWORD: port === herd.cluster.sqlPort ? "postgres" : herd.cluster.internalPassword,
        PGCONNECT_TIMEOUT: "10",
      },
    },
  );
  return stdout;
}

/** Output (or error) of the same psql command through herd and straight from the coordinator's PostgreSQL. */
async function bothWays(...args: string[]): Promise<[string, string]> {
  const outcome = (port: number) => psqlAt(port, ...args).catch((e: { stderr: string }) => `ERROR OUTPUT\n${e.stderr}`);
  return [await outcome(herd.cluster.sqlPort), await outcome(herd.cluster.sqlPort + 1)];
}

// What psql 18's \l sends (describe.c, listAllDbs). Debian's psql is 15, whose \l still asks for
// daticulocale, renamed datlocale in PostgreSQL 17: that psql fails the same way against PostgreSQL.
const PSQL18_LIST_DATABASES = `SELECT d.datname as "Name", pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
  pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
  CASE d.datlocprovider WHEN 'b' THEN 'builtin' WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
  d.datcollate as "Collate", d.datctype as "Ctype", d.datlocale as "Locale", d.daticurules as "ICU Rules",
  pg_catalog.array_to_string(d.datacl, E'\\n') AS "Access privileges"
FROM pg_catalog.pg_database d ORDER BY 1;`;

describe("psql", () => {
  it("runs statements and scripts", async () => {
    expect(await psql("-tA", "-c", "SELECT 6 * 7")).toBe("42\n");
    const script = join(herd.dir, "script.sql");
    await writeFile(
      script,
      "CREATE TABLE cities (id int PRIMARY KEY, name text);\nINSERT INTO cities VALUES (1, 'Oslo'), (2, 'Lima');\n",
    );
    await psql("-f", script);
    expect(await psql("-tA", "-c", "SELECT string_agg(name, ',' ORDER BY id) FROM cities")).toBe("Oslo,Lima\n");
  });

  it("describes tables with \\d and \\dt, and lists databases with \\l", async () => {
    const described = await psql("-c", "\\d cities");
    expect(described).toMatch(/Table "public.cities"/);
    expect(described).toMatch(/id\s+\|\s+integer/);
    expect(described).toMatch(/"cities_pkey" PRIMARY KEY, btree \(id\)/);
    expect(await psql("-c", "\\dt")).toMatch(/public\s+\|\s+cities\s+\|\s+table\s+\|\s+postgres/);
    for (const command of ["\\d cities", "\\dt", "\\l", "\\dn", "\\df pg_catalog.now"]) {
      const [throughHerd, direct] = await bothWays("-c", command);
      expect(throughHerd, command).toBe(direct);
    }
    expect(await psql("-c", PSQL18_LIST_DATABASES)).toMatch(/postgres\s+\|\s+postgres\s+\|\s+UTF8\s+\|\s+libc/);
  });

  it("copies data in and out with \\copy (COPY FROM STDIN / TO STDOUT)", async () => {
    const input = join(herd.dir, "in.csv");
    const output = join(herd.dir, "out.csv");
    const rows = Array.from({ length: 5000 }, (_, i) => `${i + 10},"city ${i}, with comma"`).join("\n");
    await writeFile(input, `${rows}\n`);
    expect(await psql("-c", `\\copy cities FROM '${input}' WITH (FORMAT csv)`)).toBe("COPY 5000\n");
    expect(await psql("-tA", "-c", "SELECT count(*) FROM cities")).toBe("5002\n");
    await psql("-c", `\\copy (SELECT * FROM cities WHERE id >= 10 ORDER BY id) TO '${output}' WITH (FORMAT csv)`);
    expect(await readFile(output, "utf8")).toBe(`${rows}\n`);
  });

  it("reports a bad row of a COPY with its line and loads nothing", async () => {
    const input = join(herd.dir, "bad.csv");
    await writeFile(input, "90000,ok\nnot-a-number,bad\n");
    const failed = await psql("-c", `\\copy cities FROM '${input}' WITH (FORMAT csv)`).catch(
      (e: { stderr: string }) => e.stderr,
    );
    expect(failed).toMatch(/invalid input syntax for type integer: "not-a-number"/);
    expect(failed).toMatch(/COPY cities, line 2/);
    expect(await psql("-tA", "-c", "SELECT count(*) FROM cities WHERE id = 90000")).toBe("0\n");
  });

  it("shows errors with their position, and SET/SHOW session settings", async () => {
    const failed = await psql("-c", "SELECT nope FROM cities").catch((e: { stderr: string }) => e.stderr);
    expect(failed).toMatch(/ERROR: {2}column "nope" does not exist\nLINE 1: SELECT nope FROM cities\n {15}\^/);
    expect(await psql("-tA", "-c", "SET TimeZone = 'Asia/Tokyo'", "-c", "SHOW TimeZone")).toBe("SET\nAsia/Tokyo\n");
  });
});
