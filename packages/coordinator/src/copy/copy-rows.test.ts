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

  it("knows the end marker with a CR LF line end or none, and not a row that only starts with it", () => {
    const crlf = new CopyRowSplitter(TEXT_FORMAT);
    expect([...crlf.push(Buffer.from("1\r\n\\.\r\n2\n"))].map(String)).toEqual(["1\r\n"]);
    expect(crlf.ended).toBe(true);
    const last = new CopyRowSplitter(TEXT_FORMAT);
    expect([...last.push(Buffer.from("1\n\\.")), ...last.end()].map(String)).toEqual(["1\n"]);
    const not = new CopyRowSplitter(TEXT_FORMAT);
    expect([...not.push(Buffer.from("\\.x\n\\.\t\n"))].map(String)).toEqual(["\\.x\n", "\\.\t\n"]);
    expect(not.ended).toBe(false);
  });

  it("gives rows that stay as they were when the buffer they came in is used again", () => {
    const splitter = new CopyRowSplitter(TEXT_FORMAT);
    const received = Buffer.from("1\ta\n2\tb\n");
    const rows = splitter.push(received);
    received.fill(0x78);
    expect(rows.map(String)).toEqual(["1\ta\n", "2\tb\n"]);
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
