import { describe, expect, it } from "vitest";
import { makeVerifier, ScramClientExchange, ScramError, ScramServerExchange } from "./scram.js";

// RFC 7677, section 3: user "user", password "pencil"
const RFC = {
  salt: Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"),
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

describe("SCRAM-SHA-256", () => {
  it("answers the RFC 7677 exchange exactly", () => {
    const server = new ScramServerExchange(makeVerifier("pencil", 4096, RFC.salt), RFC.serverNonce);
    expect(server.start(RFC.clientFirst)).toBe(RFC.serverFirst);
    expect(server.finish(RFC.clientFinal)).toBe(RFC.serverFinal);
  });

  it("rejects the RFC's proof for another password", () => {
    const server = new ScramServerExchange(makeVerifier("pen", 4096, RFC.salt), RFC.serverNonce);
    server.start(RFC.clientFirst);
    expect(server.finish(RFC.clientFinal)).toBeUndefined();
  });

  it("lets our client and server agree, and the client check the server's signature", () => {
    const server = new ScramServerExchange(makeVerifier("s3cret"));
    const client = new ScramClientExchange("s3cret");
    const serverFinal = server.finish(client.clientFinal(server.start(client.clientFirst())));
    expect(serverFinal).toMatch(/^v=/);
    expect(() => client.verifyServerFinal(serverFinal as string)).not.toThrow();
    expect(() => client.verifyServerFinal("v=AAAA")).toThrow(ScramError);
  });

  it("refuses a wrong password, a replayed nonce, channel binding and garbage", () => {
    const verifier = makeVerifier("right");
    const wrong = new ScramClientExchange("wrong");
    const server = new ScramServerExchange(verifier);
    expect(server.finish(wrong.clientFinal(server.start(wrong.clientFirst())))).toBeUndefined();

    const other = new ScramServerExchange(verifier);
    other.start("n,,n=,r=abc");
    expect(() => other.finish("c=biws,r=abcdifferent,p=AAAA")).toThrow(/nonce mismatch/);
    expect(() => new ScramServerExchange(verifier).start("p=tls-server-end-point,,n=,r=abc")).toThrow(
      /channel binding/,
    );
    expect(() => new ScramServerExchange(verifier).start("garbage")).toThrow(ScramError);
    expect(() => new ScramServerExchange(verifier).start("n,,n=,r=a,b")).not.toThrow();
  });
});
