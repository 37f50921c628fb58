import { describe, expect, it } from "vitest";
import { HashableType, hashOfText } from "../executor/distribution-value.js";
import { CopyKeyReader } from "./copy-key.js";
import { type CopyFormat, copyField, TEXT_FORMAT } from "./copy-rows.js";

const CSV: CopyFormat = { ...TEXT_FORMAT, csv: true, delimiter: 0x2c, nullText: "" };
/** Formats with NULL markers of their own (COPY … WITH (NULL 'NA')). */
const FORMATS: readonly CopyFormat[] = [
  TEXT_FORMAT,
  CSV,
  { ...CSV, nullText: "NA" },
  { ...TEXT_FORMAT, nullText: "0" },
  { ...TEXT_FORMAT, nullText: "" },
];
const fastKeyHash = (row: Buffer, index: number, format: CopyFormat, type: number) =>
  new CopyKeyReader(format, index, type).hash(row);
const TYPES = [HashableType.int2, HashableType.int4, HashableType.int8, HashableType.text, HashableType.varchar];

let seed = 20261203;
const random = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;

/** Field texts as a client might send them: plain numbers of every size, signs, spaces, quotes, escapes, UTF-8. */
function fieldText(csv: boolean): string {
  const number = String(Math.floor(random() * 2 ** Math.floor(random() * 60)) * (random() < 0.3 ? -1 : 1));
  return pick([
    number,
    number,
    number,
    ` ${number}`,
    `+${number}`,
    "-0",
    "0",
    "32767",
    "32768",
    "-32768",
    "2147483648",
    "-2147483649",
    "9007199254740993",
    "",
    "abc",
    "NA",
    "zoë 東京",
    csv ? `"${number}"` : `${number}\\n`,
    csv ? `"a,b"` : "\\N",
    csv ? `"say ""hi"""` : "tab\\there",
  ]);
}

/** What the general path makes of the row: the hash, or the error's message. */
function generalHash(row: Buffer, index: number, format: CopyFormat, type: number): number | string {
  const value = copyField(row, index, format);
  if (value === null || value === undefined) return "null";
  try {
    return hashOfText(type, value);
  } catch (error) {
    return (error as Error).message;
  }
}

describe("fastKeyHash", () => {
  it("hashes what the general path hashes, or leaves the row to it (differential, 20,000 rows)", () => {
    let fast = 0;
    for (let i = 0; i < 20_000; i += 1) {
      const format = FORMATS[i % FORMATS.length] as CopyFormat;
      const delimiter = String.fromCharCode(format.delimiter);
      const fields = Array.from({ length: 3 }, () => fieldText(format.csv));
      const row = Buffer.from(`${fields.join(delimiter)}${pick(["\n", "\r\n", ""])}`);
      const index = Math.floor(random() * 3);
      const type = pick(TYPES);
      const hash = fastKeyHash(row, index, format, type);
      if (hash === undefined) continue;
      fast += 1;
      expect(hash, `${JSON.stringify(row.toString())} field ${index} as type ${type}`).toBe(
        generalHash(row, index, format, type),
      );
    }
    // most rows are plain: the fast path is taken for them
    expect(fast).toBeGreaterThan(5_000);
  });

  it("leaves to the general path what it must word an error for or unescape", () => {
    const row = (text: string) => Buffer.from(`${text},x\n`);
    for (const text of ["", " 1", "+1", "1.0", "1e3", "99999999999999999", '"1"', "\\N"])
      expect(fastKeyHash(row(text), 0, CSV, HashableType.int8), text).toBeUndefined();
    expect(fastKeyHash(row("32768"), 0, CSV, HashableType.int2)).toBeUndefined();
    expect(fastKeyHash(row("2147483648"), 0, CSV, HashableType.int4)).toBeUndefined();
    expect(fastKeyHash(Buffer.from("a\\tb\t1\n"), 1, TEXT_FORMAT, HashableType.int4)).toBeUndefined();
    expect(fastKeyHash(row("1"), 0, CSV, HashableType.uuid)).toBeUndefined();
    expect(fastKeyHash(row("1"), 3, CSV, HashableType.int4)).toBeUndefined();
    expect(fastKeyHash(row("NA"), 0, { ...CSV, nullText: "NA" }, HashableType.text)).toBeUndefined();
    expect(fastKeyHash(row("NB"), 0, { ...CSV, nullText: "NA" }, HashableType.text)).toBeDefined();
  });
});
