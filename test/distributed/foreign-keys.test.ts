import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { divergentShards, herdClient, serverClient } from "../faults/fault-kit.js";
import { answer, expectSameAnswer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { type PlainTwin, startPlainTwin } from "../helpers/postgres.js";

// Foreign keys on distributed and reference tables, from the Citus multi-tenant tutorial: the
// tables are made with their keys inline (campaigns → companies, ads → campaigns on the tenant
// and the id, companies → a reference table), then distributed in the tutorial's order. Every
// placement enforces its keys against the rows on its own worker, which is exact for colocated
// keys that include the distribution column and for keys to reference tables: writes are
// compared with one plain PostgreSQL 18 (violations by SQLSTATE, the shard names differ).
const herdUp = useHerdCluster("foreign-keys", { workers: 2 });
let twin: PlainTwin;
let herd: pg.Client;
let plain: pg.Client;

const SCHEMA = [
  `CREATE TABLE plans (name text PRIMARY KEY, seats int NOT NULL)`,
  `CREATE TABLE companies (
     id bigint PRIMARY KEY, name text NOT NULL, plan text REFERENCES plans (name), created_at timestamp NOT NULL DEFAULT '2026-01-01')`,
  `CREATE TABLE campaigns (
     id bigint NOT NULL, company_id bigint NOT NULL REFERENCES companies (id), name text NOT NULL,
     monthly_budget bigint, PRIMARY KEY (company_id, id))`,
  `CREATE TABLE ads (
     id bigint NOT NULL, company_id bigint NOT NULL, campaign_id bigint NOT NULL, name text NOT NULL,
     impressions_count bigint DEFAULT 0, PRIMARY KEY (company_id, id),
     FOREIGN KEY (company_id, campaign_id) REFERENCES campaigns (company_id, id) ON DELETE CASCADE)`,
];
const DATA = [
  "INSERT INTO plans VALUES ('free', 1), ('pro', 10)",
  "INSERT INTO companies (id, name, plan) SELECT i, 'company ' || i, CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END FROM generate_series(1, 30) i",
  "INSERT INTO campaigns SELECT i, i % 30 + 1, 'campaign ' || i, i * 100 FROM generate_series(1, 120) i",
  "INSERT INTO ads SELECT c.id * 10 + i, c.company_id, c.id, 'ad ' || i, i FROM generate_series(1, 3) i, campaigns c",
];

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  twin = await startPlainTwin("foreign-keys-plain", herd, SCHEMA);
  plain = twin.client;
  // the tutorial's order: the referenced tables first, while the referencing ones are still ordinary
  for (const sql of [
    "SELECT create_reference_table('plans')",
    "SELECT create_distributed_table('companies', 'id')",
    "SELECT create_distributed_table('campaigns', 'company_id')",
    "SELECT create_distributed_table('ads', 'company_id')",
  ])
    await herd.query(sql);
  for (const sql of DATA) {
    await herd.query(sql);
    await plain.query(sql);
  }
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await twin?.stop();
});

/** The same answer on both; an error by SQLSTATE only (herd's names the shard's table and constraint). */
async function same(sql: string, params?: unknown[]) {
  const [fromHerd, fromPlain] = await Promise.all([answer(herd, sql, params), answer(plain, sql, params)]);
  if ("error" in fromPlain) {
    expect(fromHerd, sql).toMatchObject({ error: { code: fromPlain.error.code } });
    return;
  }
  expect(fromHerd, sql).not.toHaveProperty("error");
  expect((fromHerd as { command: string }).command, sql).toBe(fromPlain.command);
}

async function sameTables() {
  for (const table of ["plans", "companies", "campaigns", "ads"])
    await expectSameAnswer(herd, plain, `SELECT * FROM ${table} ORDER BY 1, 2`);
}

describe("the multi-tenant tutorial's foreign keys", () => {
  it("distributes tables that reference each other and a reference table, and keeps their rows", async () => {
    expect(
      (await herd.query("SELECT logicalrelid::text AS t, partmethod FROM pg_dist_partition ORDER BY 1")).rows,
    ).toEqual([
      { t: "ads", partmethod: "h" },
      { t: "campaigns", partmethod: "h" },
      { t: "companies", partmethod: "h" },
      { t: "plans", partmethod: "n" },
    ]);
    await sameTables();
  });

  it("refuses what the keys forbid and takes what they allow, as PostgreSQL does", async () => {
    for (const sql of [
      "INSERT INTO campaigns VALUES (500, 999, 'no such company', 1)",
      "INSERT INTO campaigns VALUES (500, 4, 'fine', 1)",
      "INSERT INTO ads VALUES (900, 4, 501, 'no such campaign')",
      "INSERT INTO ads VALUES (900, 4, 500, 'fine')",
      "INSERT INTO ads VALUES (901, 5, 500, 'campaign 500 is company 4''s')",
      "INSERT INTO companies (id, name, plan) VALUES (31, 'x', 'enterprise')",
      "INSERT INTO companies (id, name, plan) VALUES (31, 'x', 'pro')",
      "UPDATE companies SET plan = 'gold' WHERE id = 2",
      "DELETE FROM companies WHERE id = 7",
      "DELETE FROM plans WHERE name = 'pro'",
      "UPDATE plans SET seats = 20 WHERE name = 'pro'",
      // ON DELETE CASCADE: the campaign's ads go with it, on its shard
      "DELETE FROM campaigns WHERE company_id = 5 AND id = 4",
      "DELETE FROM campaigns WHERE company_id = 6",
    ])
      await same(sql);
    await sameTables();
  });

  it("runs the tutorial's transaction and queries", async () => {
    await same("BEGIN");
    await same("DELETE FROM ads WHERE campaign_id = 46 AND company_id = 17");
    await same("DELETE FROM campaigns WHERE id = 46 AND company_id = 17");
    await same("COMMIT");
    await expectSameAnswer(
      herd,
      plain,
      "SELECT name, monthly_budget FROM campaigns WHERE company_id = 5 ORDER BY monthly_budget DESC LIMIT 10",
    );
    await expectSameAnswer(
      herd,
      plain,
      `SELECT a.campaign_id, count(*) AS ads, sum(a.impressions_count) AS impressions
         FROM ads a JOIN campaigns c ON c.company_id = a.company_id AND c.id = a.campaign_id
        WHERE a.company_id = 9 GROUP BY a.campaign_id ORDER BY a.campaign_id`,
    );
    // a tenant's rows with a correlated check on the key (pushed down to the tenant's shard group)
    await expectSameAnswer(
      herd,
      plain,
      `SELECT c.id FROM campaigns c WHERE c.company_id = $1
          AND NOT EXISTS (SELECT 1 FROM ads a WHERE a.company_id = c.company_id AND a.campaign_id = c.id) ORDER BY 1`,
      [5],
    );
    await sameTables();
  });

  it("keeps materialized views over tables with keys (their shells' keys are met while they refresh)", async () => {
    for (const sql of [
      "CREATE MATERIALIZED VIEW ad_totals AS SELECT company_id, count(*) AS ads, sum(impressions_count) AS impressions FROM ads GROUP BY 1",
      "INSERT INTO ads VALUES (7000, 8, (SELECT min(id) FROM campaigns WHERE company_id = 8), 'late ad', 9)",
      "REFRESH MATERIALIZED VIEW ad_totals",
    ])
      await same(sql);
    await expectSameAnswer(herd, plain, "SELECT * FROM ad_totals ORDER BY 1");
    // nothing stays in the shells
    const coordinator = await serverClient(herdUp.cluster, 0);
    try {
      await coordinator.query("SET herd.shell_guard = off");
      const shells = await coordinator.query(
        "SELECT (SELECT count(*) FROM ONLY ads) + (SELECT count(*) FROM ONLY campaigns) + (SELECT count(*) FROM ONLY companies) AS n",
      );
      expect(shells.rows).toEqual([{ n: "0" }]);
    } finally {
      await coordinator.end();
    }
    await same("DROP MATERIALIZED VIEW ad_totals");
  });

  it("adds a key later with ALTER TABLE, checked against the rows already there", async () => {
    await herd.query("CREATE TABLE clicks (company_id bigint, ad_id bigint, at int)");
    await plain.query("CREATE TABLE clicks (company_id bigint, ad_id bigint, at int)");
    await herd.query("SELECT create_distributed_table('clicks', 'company_id', colocate_with => 'ads')");
    await same("INSERT INTO clicks VALUES (4, 900, 1), (9, 82, 2)");
    await same(
      "ALTER TABLE clicks ADD CONSTRAINT clicks_ad FOREIGN KEY (company_id, ad_id) REFERENCES ads (company_id, id)",
    );
    await same("INSERT INTO clicks VALUES (9, 77777, 3)");
    await same("INSERT INTO clicks VALUES (3, 21, 4)");
    await same("INSERT INTO clicks VALUES (3, 31, 5)");
  });
});

describe("keys in migrations and under concurrent writers", () => {
  it("a new table with a key to a distributed one, distributed in the same block, enforces it", async () => {
    const create =
      "CREATE TABLE impressions (company_id bigint, ad_id bigint, seen int, FOREIGN KEY (company_id, ad_id) REFERENCES ads (company_id, id))";
    await plain.query(create);
    await herd.query("BEGIN");
    await herd.query(create);
    await herd.query("SELECT create_distributed_table('impressions', 'company_id', colocate_with => 'ads')");
    await herd.query("INSERT INTO impressions VALUES (9, 81, 1)");
    await herd.query("COMMIT");
    await plain.query("INSERT INTO impressions VALUES (9, 81, 1)");
    await same("INSERT INTO impressions VALUES (9, 424242, 2)");
    await same("INSERT INTO impressions VALUES (8, 71, 3)");
    await same("INSERT INTO impressions VALUES (8, 81, 4)");
    await expectSameAnswer(herd, plain, "SELECT * FROM impressions ORDER BY 1, 2, 3");
  });

  it("a key added by ALTER TABLE to an ordinary table, as Knex writes it: taken while the table is empty, enforced once it is distributed", async () => {
    await herd.query(
      "CREATE TABLE invoices (company_id bigint NOT NULL, id bigint NOT NULL, PRIMARY KEY (company_id, id))",
    );
    await herd.query("CREATE TABLE notes (company_id bigint NOT NULL, body text)");
    await herd.query("INSERT INTO notes VALUES (1, 'kept')");
    // the check of a new key would read the distributed table's rows, which are on the workers
    expect(
      await answer(
        herd,
        "ALTER TABLE notes ADD CONSTRAINT notes_company FOREIGN KEY (company_id) REFERENCES companies (id)",
      ),
    ).toMatchObject({ error: { code: "0A000", message: expect.stringContaining("holds rows") } });
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'notes_company'")).rows,
    ).toEqual([{ n: 0 }]);
    await herd.query(
      "ALTER TABLE invoices ADD CONSTRAINT invoices_company FOREIGN KEY (company_id) REFERENCES companies (id)",
    );
    // its use before it is distributed is refused (the key's checks would read the shell)
    expect(await answer(herd, "INSERT INTO invoices VALUES (1, 1)")).toMatchObject({ error: { code: "0A000" } });
    await herd.query("SELECT create_distributed_table('invoices', 'company_id', colocate_with => 'companies')");
    await herd.query("INSERT INTO invoices VALUES (1, 1)");
    expect(await answer(herd, "INSERT INTO invoices VALUES (999, 1)")).toMatchObject({ error: { code: "23503" } });
    // the shell guard is on again after the ALTER, in the same block too
    await herd.query("BEGIN");
    await herd.query("CREATE TABLE receipts (company_id bigint NOT NULL)");
    await herd.query("ALTER TABLE receipts ADD FOREIGN KEY (company_id) REFERENCES companies (id)");
    expect((await herd.query("SHOW herd.shell_guard")).rows).toEqual([{ "herd.shell_guard": "on" }]);
    await herd.query("ROLLBACK");
    await herd.query("DROP TABLE notes");
  });

  it("writers adding campaigns while another deletes their company leave both copies alike and the key whole", async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => herdClient(herdUp.cluster)));
    try {
      const company = 29;
      const adding = clients.slice(0, 3).map(async (client, writer) => {
        for (let i = 0; i < 15; i++)
          await client
            .query("INSERT INTO campaigns VALUES ($1, $2, 'race', 1)", [10_000 + writer * 100 + i, company])
            .catch((error) => expect(error.code).toBe("23503"));
      });
      const deleting = (async () => {
        for (let i = 0; i < 15; i++)
          await clients[3]
            ?.query("DELETE FROM ads WHERE company_id = $1", [company])
            .then(() => clients[3]?.query("DELETE FROM campaigns WHERE company_id = $1", [company]))
            .then(() => clients[3]?.query("DELETE FROM companies WHERE id = $1", [company]))
            .catch((error) => expect(error.code).toBe("23503"));
      })();
      await Promise.all([...adding, deleting]);
      const count = async (sql: string) => (await herd.query(sql, [company])).rows[0].n as number;
      const companies = await count("SELECT count(*)::int AS n FROM companies WHERE id = $1");
      const campaigns = await count("SELECT count(*)::int AS n FROM campaigns WHERE company_id = $1");
      // the key holds: campaigns of the company only while the company is there
      if (companies === 0) expect(campaigns).toBe(0);
      else expect(companies).toBe(1);
      expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });
});

describe("keys herd cannot enforce exactly are refused, as Citus refuses them", () => {
  it("a key to an ordinary table, a key not on the distribution column, a key between tables not colocated", async () => {
    await herd.query("CREATE TABLE regions (id int PRIMARY KEY)");
    await herd.query("CREATE TABLE offices (company_id bigint, region int REFERENCES regions (id))");
    expect(await answer(herd, "SELECT create_distributed_table('offices', 'company_id')")).toMatchObject({
      error: { code: "42P16", message: 'referenced table "regions" must be a distributed table or a reference table' },
    });
    await herd.query(
      "CREATE TABLE notes (company_id bigint, campaign bigint, FOREIGN KEY (campaign, company_id) REFERENCES campaigns (company_id, id))",
    );
    expect(await answer(herd, "SELECT create_distributed_table('notes', 'company_id')")).toMatchObject({
      error: { code: "0A000", message: /not colocated/ },
    });
    await herd.query("CREATE TABLE audits (company_id bigint REFERENCES companies (id))");
    expect(
      await answer(herd, "SELECT create_distributed_table('audits', 'company_id', colocate_with => 'none')"),
    ).toMatchObject({ error: { code: "0A000", message: /not colocated/ } });
    // refused before anything was made: the tables are still ordinary
    expect(
      (
        await herd.query(
          "SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid::text IN ('offices', 'notes', 'audits')",
        )
      ).rows,
    ).toEqual([{ n: 0 }]);
  });

  it("a table whose rows an ordinary table's rows reference keeps them in its shell until that table is distributed", async () => {
    await herd.query("CREATE TABLE owners (id int PRIMARY KEY)");
    await herd.query("CREATE TABLE pets (id int, owner int REFERENCES owners (id))");
    await herd.query("INSERT INTO owners VALUES (1), (2)");
    await herd.query("INSERT INTO pets VALUES (1, 1)");
    await herd.query("SELECT create_distributed_table('owners', 'id')");
    expect((await herd.query("SELECT count(*)::int AS n FROM owners")).rows).toEqual([{ n: 2 }]);
    // the ordinary table's key would be checked against the shell: refused until it is distributed
    expect(await answer(herd, "INSERT INTO pets VALUES (2, 1)")).toMatchObject({ error: { code: "0A000" } });
    await herd.query("SELECT create_distributed_table('pets', 'owner', colocate_with => 'owners')");
    await herd.query("INSERT INTO pets VALUES (2, 2)");
    expect(await answer(herd, "INSERT INTO pets VALUES (3, 3)")).toMatchObject({ error: { code: "23503" } });
    expect((await herd.query("SELECT count(*)::int AS n FROM pets")).rows).toEqual([{ n: 2 }]);
    // both shells are empty now: the owners' rows left with the pets' distribution
    const coordinator = await serverClient(herdUp.cluster, 0);
    try {
      await coordinator.query("SET herd.shell_guard = off");
      const shells = await coordinator.query(
        "SELECT (SELECT count(*) FROM ONLY owners) + (SELECT count(*) FROM ONLY pets) AS n",
      );
      expect(shells.rows).toEqual([{ n: "0" }]);
    } finally {
      await coordinator.end();
    }
  });
});
