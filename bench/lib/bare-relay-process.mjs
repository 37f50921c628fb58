// The least a PostgreSQL proxy written in Node can do, as a baseline for herd's protocol path:
// bytes from each client to a connection of its own to PostgreSQL, and back, nothing parsed,
// nothing buffered beyond what the sockets hold. Started by bare-relay.mjs:
//   node bare-relay-process.mjs <upstream port>
// listens on a free loopback port and sends it to the parent over IPC.
import net from "node:net";

const upstreamPort = Number(process.argv[2]);

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ port: upstreamPort, host: "127.0.0.1", noDelay: true });
  // 'data' handlers rather than pipe(): no backpressure bookkeeping (pgbench waits for each answer)
  client.on("data", (chunk) => upstream.write(chunk));
  upstream.on("data", (chunk) => client.write(chunk));
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
});

server.listen(0, "127.0.0.1", () => process.send?.({ port: server.address().port }));
process.on("disconnect", () => process.exit(0));
