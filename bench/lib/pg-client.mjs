import pg from "pg";

/** A connected node-postgres client to 127.0.0.1:`port`, database postgres, as user postgres. */
export async function connect(port, password) {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await client.connect();
  return client;
}
