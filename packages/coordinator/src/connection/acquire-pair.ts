import type { ConnectionPool, ServerAddress, WorkerConnection } from "./worker-connection.js";

/**
 * Connections to two servers at once (a copy's or a move's two ends). When one cannot be had, the
 * other is given back before the error is thrown: with a plain Promise.all the one that came was
 * never released, and a repair retrying a worker that was away leaked a connection to its source
 * every pass (enough of them filled the source's max_connections).
 */
export async function acquirePair(
  pool: ConnectionPool,
  first: ServerAddress,
  second: ServerAddress,
): Promise<[WorkerConnection, WorkerConnection]> {
  const [a, b] = await Promise.allSettled([pool.acquire(first), pool.acquire(second)]);
  if (a.status === "fulfilled" && b.status === "fulfilled") return [a.value, b.value];
  if (a.status === "fulfilled") pool.release(a.value);
  if (b.status === "fulfilled") pool.release(b.value);
  throw (a.status === "rejected" ? a : (b as PromiseRejectedResult)).reason;
}
