import type pg from "pg";

/**
 * The schema and data the distributed-table tests share: a multi-tenant shop (customers and
 * orders distributed by tenant_id and colocated, countries as a reference table, events by uuid).
 * The same statements create it on herd and on a plain PostgreSQL; only the distribution calls
 * differ.
 */
export const SCHEMA = [
  "CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL)",
  `CREATE TABLE customers (tenant_id int NOT NULL, id int NOT NULL, name text, country text, since date,
     PRIMARY KEY (tenant_id, id))`,
  `CREATE TABLE orders (tenant_id int NOT NULL, id bigserial, customer_id int, amount numeric(12,2),
     status text DEFAULT 'new', placed_at timestamp, PRIMARY KEY (tenant_id, id))`,
  "CREATE TABLE events (id uuid PRIMARY KEY, kind varchar(20), at timestamptz, payload jsonb)",
];

export const DISTRIBUTE = [
  "SELECT create_reference_table('countries')",
  "SELECT create_distributed_table('customers', 'tenant_id')",
  "SELECT create_distributed_table('orders', 'tenant_id', colocate_with => 'customers')",
  "SELECT create_distributed_table('events', 'id', shard_count => 8)",
];

export const COUNTRIES = [
  ["se", "Sweden"],
  ["no", "Norway"],
  ["dk", "Denmark"],
  ["fi", "Finland"],
];

/** A small deterministic generator, so both databases get the same "random" data. */
export function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Multi-row INSERT statements (with literals) for the data set. */
export function dataStatements(): string[] {
  const random = generator(42);
  const statements = [`INSERT INTO countries VALUES ${COUNTRIES.map(([c, n]) => `('${c}', '${n}')`).join(", ")}`];
  const customers: string[] = [];
  for (let tenant = 1; tenant <= 20; tenant += 1) {
    for (let id = 1; id <= 12; id += 1) {
      const country = COUNTRIES[Math.floor(random() * COUNTRIES.length)]?.[0];
      const since = random() < 0.2 ? "NULL" : `'2024-0${1 + Math.floor(random() * 9)}-1${Math.floor(random() * 9)}'`;
      customers.push(`(${tenant}, ${id}, 'customer ${tenant}-${id}', '${country}', ${since})`);
    }
  }
  statements.push(`INSERT INTO customers VALUES ${customers.join(", ")}`);
  const statuses = ["new", "paid", "shipped", "cancelled"];
  for (let batch = 0; batch < 8; batch += 1) {
    const orders: string[] = [];
    for (let i = 0; i < 100; i += 1) {
      const tenant = 1 + Math.floor(random() * 20);
      const amount = random() < 0.05 ? "NULL" : (random() * 200).toFixed(2);
      const status = statuses[Math.floor(random() * statuses.length)];
      orders.push(
        `(${tenant}, ${1 + Math.floor(random() * 12)}, ${amount}, '${status}', '2024-05-0${1 + (i % 9)} 1${i % 10}:00:00')`,
      );
    }
    statements.push(
      `INSERT INTO orders (tenant_id, customer_id, amount, status, placed_at) VALUES ${orders.join(", ")}`,
    );
  }
  const events: string[] = [];
  for (let i = 0; i < 50; i += 1) {
    const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16)).join("");
    const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    events.push(`('${uuid}', 'kind${i % 3}', '2024-06-01 12:00:00+00', '{"n": ${i}}')`);
  }
  statements.push(`INSERT INTO events VALUES ${events.join(", ")}`);
  return statements;
}

export async function runAll(client: pg.Client, statements: readonly string[]): Promise<void> {
  for (const sql of statements) await client.query(sql);
}
