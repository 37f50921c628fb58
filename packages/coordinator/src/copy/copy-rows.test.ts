import { describe, expect, it } from "vitest";
import { type CopyFormat, CopyRowSplitter, copyField, TEXT_FORMAT } from "./copy-rows.js";

const CSV: CopyFormat = { ...TEXT_FORMAT, csv: true, delimiter: 0x2c, nullText: "" };

describe("CopyRowSplitter", () => {
  it("cuts text rows wherever the chunks break, and stops at the end marker", () => {
    const splitter = new CopyRowSplitter(TEXT_FORMAT);
    const rows = [
      ...splitter.push(Buffer.from("1\ta\n2\tb")),
      ...splitter.push(Buffer.from("\\tc\n3")),
      ...splitter.push(Buffer.from("\tx\n\\.\n4\tignored\n")),
    ];
    expect(rows.map(String)).toEqual(["1\ta\n", "2\tb\\tc\n", "3\tx\n"]);
    expect(splitter.ended).toBe(true);
  });

  it("keeps a CSV row whole across a quoted newline, and ends a last row without newline", () => {
    const splitter = new CopyRowSplitter(CSV);
    const rows = [...splitter.push(Buffer.from('1,"multi\nline",x\n2,"say ""hi"""')), ...splitter.end()];
    expect(rows.map(String)).toEqual(['1,"multi\nline",x\n', '2,"say ""hi"""\n']);
  });
});

describe("copyField", () => {
  it("reads text fields with escapes and the NULL marker", () => {
    const row = Buffer.from("7\tline\\nbreak\t\\N\t\\x41\\101\n");
    expect([0, 1, 2, 3, 4].map((i) => copyField(row, i, TEXT_FORMAT))).toEqual([
      "7",
      "line\nbreak",
      null,
      "AA",
      undefined,
    ]);
  });

  it("reads CSV fields: quotes, doubled quotes, delimiters inside quotes, unquoted empty is NULL", () => {
    const row = Buffer.from('42,"a, b","say ""hi""",,""\r\n');
    expect([0, 1, 2, 3, 4].map((i) => copyField(row, i, CSV))).toEqual(["42", "a, b", 'say "hi"', null, ""]);
  });
});
