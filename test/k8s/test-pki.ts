import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestPki {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** The key pair that signs and verifies ServiceAccount tokens. */
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
  /** A static bearer token of the user `admin` in `system:masters` (the test's own credentials). */
  readonly adminToken: string;
  readonly tokenFile: string;
}

/**
 * Everything the API server needs to serve TLS and issue tokens, made with openssl in `dir`: a CA,
 * a serving certificate for 127.0.0.1 signed by it (the CA is what pods get as ca.crt), a key
 * pair for ServiceAccount tokens and a static token file with one admin.
 */
export function createTestPki(dir: string): TestPki {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=herd-test-ca");
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver");
  writeFileSync(
    path("server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "server.ext",
    "-out",
    "server.crt",
  );
  openssl("genrsa", "-out", "sa.key", "2048");
  openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub");
  const adminToken = randomBytes(24).toString("hex");
  writeFileSync(path("tokens.csv"), `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  return {
    caCert: path("ca.crt"),
    serverCert: path("server.crt"),
    serverKey: path("server.key"),
    serviceAccountKey: path("sa.key"),
    serviceAccountPub: path("sa.pub"),
    adminToken,
    tokenFile: path("tokens.csv"),
  };
}
