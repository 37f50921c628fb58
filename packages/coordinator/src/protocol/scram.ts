import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: the user name inside the SCRAM
 * messages is ignored (the startup packet names the user), no channel binding (no "-PLUS"
 * mechanism is offered), and passwords are used as given (no SASLprep: ASCII passwords, which
 * is what PostgreSQL's own SASLprep leaves unchanged, behave identically).
 *
 * Worked example of one exchange (client C, server S):
 *   C: n,,n=,r=<client nonce>                              client-first-message
 *   S: r=<client nonce><server nonce>,s=<salt>,i=4096       server-first-message
 *   C: c=biws,r=<both nonces>,p=<ClientProof>               client-final-message ("biws" = "n,,")
 *   S: v=<ServerSignature>                                  server-final-message
 * with SaltedPassword = PBKDF2(password, salt, i), ClientKey = HMAC(SaltedPassword, "Client Key"),
 * StoredKey = H(ClientKey), AuthMessage = client-first-bare,server-first,client-final-without-proof,
 * ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage). The server checks
 * H(ClientProof XOR HMAC(StoredKey, AuthMessage)) = StoredKey and proves itself with
 * ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage).
 */

export const SCRAM_SHA_256 = "SCRAM-SHA-256";

/** What a server keeps instead of the password. */
export interface ScramVerifier {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function makeVerifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): ScramVerifier {
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  return {
    salt,
    iterations,
    storedKey: sha256(hmac(salted, "Client Key")),
    serverKey: hmac(salted, "Server Key"),
  };
}

/**
 * The verifier as PostgreSQL stores it in pg_authid.rolpassword and accepts in
 * `ALTER ROLE … PASSWORD '…'` (a value already hashed is stored as given):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, all base64.
 */
export function verifierText(verifier: ScramVerifier): string {
  const b64 = (buffer: Buffer) => buffer.toString("base64");
  return `${SCRAM_SHA_256}$${verifier.iterations}:${b64(verifier.salt)}$${b64(verifier.storedKey)}:${b64(verifier.serverKey)}`;
}

/** Reads a pg_authid.rolpassword value; undefined for anything but a SCRAM-SHA-256 verifier (MD5, none). */
export function parseVerifierText(text: string | null | undefined): ScramVerifier | undefined {
  const match = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text ?? "");
  if (!match) return undefined;
  return {
    iterations: Number(match[1]),
    salt: Buffer.from(match[2] as string, "base64"),
    storedKey: Buffer.from(match[3] as string, "base64"),
    serverKey: Buffer.from(match[4] as string, "base64"),
  };
}

/**
 * What a client proves it knows: the password itself, or the two keys a SCRAM exchange yields
 * (ClientKey, recovered from a client's proof by a server holding StoredKey; ServerKey from the
 * verifier). With the keys herd logs in to PostgreSQL as a client it has just authenticated,
 * for the same verifier, without ever learning the password (as PgBouncer's SCRAM pass-through).
 */
export type ScramSecret = string | { readonly clientKey: Buffer; readonly serverKey: Buffer };

export class ScramError extends Error {}

/** The server side of one exchange. */
export class ScramServerExchange {
  private clientFirstBare = "";
  private serverFirst = "";
  private nonce = "";

  constructor(
    private readonly verifier: ScramVerifier,
    private readonly serverNonce: string = randomBytes(18).toString("base64"),
  ) {}

  /** Takes client-first-message, returns server-first-message. */
  start(clientFirst: string): string {
    const match = /^([ny]|p=[^,]*),[^,]*,(.*)$/.exec(clientFirst);
    if (!match) throw new ScramError("malformed SCRAM client-first-message");
    if (match[1]?.startsWith("p=")) throw new ScramError("channel binding is not supported");
    this.clientFirstBare = match[2] as string;
    const clientNonce = attribute(this.clientFirstBare, "r");
    if (!clientNonce || !/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce)) throw new ScramError("invalid SCRAM nonce");
    this.nonce = clientNonce + this.serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString("base64")},i=${this.verifier.iterations}`;
    return this.serverFirst;
  }

  /** The ClientKey the last successful `finish` recovered from the client's proof. */
  clientKey: Buffer | undefined;

  /** Takes client-final-message; returns server-final-message, or undefined when the proof is wrong. */
  finish(clientFinal: string): string | undefined {
    const proofAt = clientFinal.lastIndexOf(",p=");
    if (proofAt < 0) throw new ScramError("malformed SCRAM client-final-message");
    const withoutProof = clientFinal.slice(0, proofAt);
    if (attribute(withoutProof, "r") !== this.nonce) throw new ScramError("SCRAM nonce mismatch");
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), "base64");
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const signature = hmac(this.verifier.storedKey, authMessage);
    if (proof.length !== signature.length) return undefined;
    const clientKey = xor(proof, signature);
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) return undefined;
    this.clientKey = clientKey;
    return `v=${hmac(this.verifier.serverKey, authMessage).toString("base64")}`;
  }
}

/** The client side of one exchange. */
export class ScramClientExchange {
  private readonly clientFirstBare: string;
  private expectedServerSignature: Buffer | undefined;

  constructor(
    private readonly secret: ScramSecret,
    private readonly clientNonce: string = randomBytes(18).toString("base64"),
  ) {
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
  }

  clientFirst(): string {
    return `n,,${this.clientFirstBare}`;
  }

  /** Takes server-first-message, returns client-final-message. */
  clientFinal(serverFirst: string): string {
    const nonce = attribute(serverFirst, "r");
    const salt = attribute(serverFirst, "s");
    const iterations = Number(attribute(serverFirst, "i"));
    if (!nonce?.startsWith(this.clientNonce) || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new ScramError("malformed SCRAM server-first-message");
    }
    const { clientKey, serverKey } = this.keys(Buffer.from(salt, "base64"), iterations);
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.expectedServerSignature = hmac(serverKey, authMessage);
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  private keys(salt: Buffer, iterations: number): { clientKey: Buffer; serverKey: Buffer } {
    // keys hold for the salt and iteration count they were made with: a server holding another
    // verifier fails the exchange, as a wrong password would
    if (typeof this.secret !== "string") return this.secret;
    const salted = pbkdf2Sync(this.secret, salt, iterations, 32, "sha256");
    return { clientKey: hmac(salted, "Client Key"), serverKey: hmac(salted, "Server Key") };
  }

  /** Checks server-final-message: the server must prove it knows the password too. */
  verifyServerFinal(serverFinal: string): void {
    const signature = Buffer.from(attribute(serverFinal, "v") ?? "", "base64");
    const expected = this.expectedServerSignature;
    if (!expected || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError("the server's SCRAM signature is wrong");
    }
  }
}

function attribute(message: string, name: string): string | undefined {
  for (const part of message.split(",")) if (part.startsWith(`${name}=`)) return part.slice(name.length + 1);
  return undefined;
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash("sha256").update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i += 1) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}
