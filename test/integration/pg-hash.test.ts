import { randomBytes, randomUUID } from "node:crypto";
import {
  hashBool,
  hashBpchar,
  hashBytea,
  hashDate,
  hashInt2,
  hashInt4,
  hashInt8,
  hashInt8FromNumber,
  hashNumeric,
  hashText,
  hashTimestampMicros,
  hashUuid,
  timestampToMicros,
} from "@herd/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

// Differential: herd's hash of each value must equal PostgreSQL 18's own, for thousands of
// random values per type, or rows would be routed to the wrong shard.
const N = 2000;
let postgres: TestPostgres;

beforeAll(async () => {
  postgres = await startTestPostgres("pg-hash");
});

afterAll(async () => {
  await postgres?.stop();
});

let seed = 20261121;
const random = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
const pick = <T>(items: readonly T[]) => items[int(0, items.length - 1)] as T;

/** PostgreSQL's hashes of `values`, via `fn(value::type)` over one array parameter. */
async function pgHashes(fn: string, type: string, values: readonly string[]): Promise<number[]> {
  const rows = await postgres.query<{ h: number }>(
    `SELECT ${fn}(v::${type}) AS h FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i`,
    [values],
  );
  return rows.map((row) => row.h);
}

async function expectSameHashes(fn: string, type: string, values: readonly string[], ours: (value: string) => number) {
  const theirs = await pgHashes(fn, type, values);
  const mismatches = values
    .map((value, i) => ({ value, ours: ours(value), theirs: theirs[i] }))
    .filter((r) => r.ours !== r.theirs);
  expect(mismatches.slice(0, 5)).toEqual([]);
  expect(theirs).toHaveLength(values.length);
}

const text = () => {
  const alphabet = ["a", "Z", "0", " ", "é", "ß", "日本", "🐘", "\t", "'", "\\"];
  return Array.from({ length: int(0, 40) }, () => pick(alphabet)).join("");
};

describe("PostgreSQL-compatible hashing (against PostgreSQL 18 itself)", () => {
  it("matches the contract example: hashint4(123) = -205084363", () => {
    expect(hashInt4(123)).toBe(-205084363);
  });

  it("hashint2 and hashint4", async () => {
    const int2 = ["0", "-1", "32767", "-32768", ...Array.from({ length: N }, () => String(int(-32768, 32767)))];
    await expectSameHashes("hashint2", "int2", int2, (v) => hashInt2(Number(v)));
    const int4 = [
      "0",
      "-1",
      "2147483647",
      "-2147483648",
      ...Array.from({ length: N }, () => String(int(-(2 ** 31), 2 ** 31 - 1))),
    ];
    await expectSameHashes("hashint4", "int4", int4, (v) => hashInt4(Number(v)));
  });

  it("hashint8, including values beyond 2^53 and the int4 range inside it", async () => {
    const big = () => BigInt.asIntN(64, BigInt(`0x${randomBytes(8).toString("hex")}`)).toString();
    const values = ["0", "-1", "123", "4294967296", "-4294967297", "9223372036854775807", "-9223372036854775808"];
    for (let i = 0; i < N; i += 1) values.push(i % 2 ? big() : String(int(-(2 ** 31), 2 ** 31 - 1)));
    await expectSameHashes("hashint8", "int8", values, (v) => hashInt8(BigInt(v)));
    // int8 values in int4 range hash as int4 (so colocation across int4/int8 keys is possible)
    expect(hashInt8(123n)).toBe(hashInt4(123));
    // COPY's BigInt-free path, over safe integers (|v| < 2^53) of every size
    const safe = ["0", "-1", "4294967295", "4294967296", "-4294967296", "-4294967297", String(2 ** 53 - 1)];
    safe.push(String(-(2 ** 53) + 1));
    for (let i = 0; i < N; i += 1) {
      const magnitude = 2 ** int(0, 53);
      safe.push(String(Math.floor(random() * magnitude) * (i % 2 ? -1 : 1)));
    }
    await expectSameHashes("hashint8", "int8", safe, (v) => hashInt8FromNumber(Number(v)));
  });

  it("hashtext over UTF-8 strings of every length around the 12-byte blocks", async () => {
    const values = ["", "a", "hello", "x".repeat(12), "x".repeat(13), ...Array.from({ length: N }, text)];
    await expectSameHashes("hashtext", "text", values, hashText);
    await expectSameHashes("hashtext", "varchar", values.slice(0, 200), hashText);
  });

  it("hashbpchar ignores trailing spaces", async () => {
    const values = [
      "",
      "ab",
      "ab  ",
      "  ab",
      ...Array.from({ length: 500 }, () => `${text()}${" ".repeat(int(0, 3))}`),
    ];
    await expectSameHashes("hashbpchar", "bpchar", values, hashBpchar);
  });

  it("hashbytea and uuid_hash", async () => {
    const bytes = Array.from({ length: 500 }, () => randomBytes(int(0, 40)));
    await expectSameHashes(
      "hashbytea",
      "bytea",
      bytes.map((b) => `\\x${b.toString("hex")}`),
      (v) => hashBytea(Buffer.from(v.slice(2), "hex")),
    );
    const uuids = Array.from({ length: N }, () => randomUUID());
    uuids.push(
      "00000000-0000-0000-0000-000000000000",
      "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
      "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
    );
    await expectSameHashes("uuid_hash", "uuid", uuids, hashUuid);
  });

  it("hashbool", async () => {
    await expectSameHashes("hashbool", "bool", ["true", "false"], (v) => hashBool(v === "true"));
  });

  it("hashdate", async () => {
    const pad = (n: number, w: number) => String(n).padStart(w, "0");
    const values = ["2000-01-01", "1999-12-31", "2024-02-29", "0001-01-01", "9999-12-31", "infinity", "-infinity"];
    for (let i = 0; i < N; i += 1) {
      const day = new Date(0);
      day.setUTCFullYear(i % 10 === 0 ? int(1, 99) : int(1, 9999), 0, 1 + int(0, 364));
      values.push(`${pad(day.getUTCFullYear(), 4)}-${pad(day.getUTCMonth() + 1, 2)}-${pad(day.getUTCDate(), 2)}`);
    }
    await expectSameHashes("hashdate", "date", values, hashDate);
  });

  it("timestamp_hash and timestamptz_hash (with explicit offsets)", async () => {
    const pad = (n: number, w: number) => String(n).padStart(w, "0");
    const stamp = () => {
      const t = new Date(Date.UTC(int(1900, 2200), int(0, 11), int(1, 28), int(0, 23), int(0, 59), int(0, 59)));
      const base = `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1, 2)}-${pad(t.getUTCDate(), 2)} ${pad(t.getUTCHours(), 2)}:${pad(t.getUTCMinutes(), 2)}:${pad(t.getUTCSeconds(), 2)}`;
      return random() < 0.7 ? `${base}.${pad(int(0, 999999), 6)}` : base;
    };
    const plain = ["2000-01-01 00:00:00", "1999-12-31 23:59:59.999999", ...Array.from({ length: N }, stamp)];
    await expectSameHashes("timestamp_hash", "timestamp", plain, (v) =>
      hashTimestampMicros(timestampToMicros(v, false)),
    );
    const zones = ["Z", "+00", "+05:30", "-08", "-03:30", "+14:00"];
    const zoned = Array.from({ length: N }, () => `${stamp()}${pick(zones)}`);
    await expectSameHashes("timestamptz_hash", "timestamptz", zoned, (v) =>
      hashTimestampMicros(timestampToMicros(v, true)),
    );
  });

  it("hash_numeric: scale, sign, zeros, exponents and specials", async () => {
    const digits = (n: number) => Array.from({ length: n }, () => int(0, 9)).join("");
    const values = [
      "0",
      "0.000",
      "-0",
      "1",
      "1.0",
      "-1",
      "5",
      "-5",
      "10000",
      "0.0001",
      "0.00001",
      "12345.678",
      "1e5",
      "1.5E-7",
      "NaN",
      "Infinity",
      "-Infinity",
    ];
    for (let i = 0; i < N; i += 1) {
      const sign = pick(["", "-", "+"]);
      const whole = digits(int(0, 30)).replace(/^0+(?=\d)/, "") || "0";
      const fraction = random() < 0.6 ? `.${digits(int(1, 20))}` : "";
      const exponent = random() < 0.15 ? `e${int(-20, 20)}` : "";
      values.push(`${sign}${whole}${fraction}${exponent}`);
    }
    await expectSameHashes("hash_numeric", "numeric", values, hashNumeric);
  });

  it("refuses malformed input with 22P02 instead of guessing", () => {
    expect(() => hashUuid("not-a-uuid")).toThrow(expect.objectContaining({ sqlState: "22P02" }));
    expect(() => hashDate("2023-02-30")).toThrow(expect.objectContaining({ sqlState: "22P02" }));
    expect(() => hashNumeric("12abc")).toThrow(expect.objectContaining({ sqlState: "22P02" }));
    expect(() => timestampToMicros("2024-01-01 10:00:00", true)).toThrow(
      expect.objectContaining({ sqlState: "0A000" }),
    );
  });
});
