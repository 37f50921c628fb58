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

/** Rows as a byte-by-byte reading of the whole input finds them (the splitter's first version). */
function referenceRows(input: Buffer, format: CopyFormat): string[] {
  const rows: string[] = [];
  let inQuotes = false;
  let start = 0;
  for (let i = 0; i < input.length; i += 1) {
    const byte = input[i];
    if (format.csv) {
      if (byte === format.quote) inQuotes = !inQuotes;
      if (inQuotes || byte !== 0x0a) continue;
    } else if (byte === 0x5c) {
      i += 1;
      continue;
    } else if (byte !== 0x0a) continue;
    const row = input.subarray(start, i + 1).toString("latin1");
    start = i + 1;
    if (/^\\\.\r?\n$/.test(row)) return rows;
    rows.push(row);
  }
  if (start < input.length) {
    const last = `${input.subarray(start).toString("latin1")}\n`;
    if (!/^\\\.\r?\n$/.test(last)) rows.push(last);
  }
  return rows;
}

describe("CopyRowSplitter, differential", () => {
  it("finds the rows a byte-by-byte reading finds, wherever the chunks break (push and each)", () => {
    let seed = 7;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const pieces = ["a", "1", ",", "\t", '"', '""', "\\", "\\\n", "\n", "\r\n", "é", "\\.", " "];
    for (let round = 0; round < 400; round += 1) {
      const format = round % 2 ? CSV : TEXT_FORMAT;
      let text = "";
      for (let i = 0; i < 60; i += 1) text += pieces[Math.floor(random() * pieces.length)];
      const input = Buffer.from(text, "latin1");
      const cuts: number[] = [0];
      while ((cuts.at(-1) as number) < input.length) cuts.push((cuts.at(-1) as number) + 1 + Math.floor(random() * 9));
      const chunks = cuts.slice(0, -1).map((at, i) => input.subarray(at, cuts[i + 1]));
      const expected = referenceRows(input, format);
      const pushed = new CopyRowSplitter(format);
      const viaPush: string[] = [];
      for (const chunk of chunks)
        if (!pushed.ended) viaPush.push(...pushed.push(chunk).map((r) => r.toString("latin1")));
      viaPush.push(...pushed.end().map((r) => r.toString("latin1")));
      const eached = new CopyRowSplitter(format);
      const viaEach: string[] = [];
      for (const chunk of chunks) {
        // the chunk is overwritten once handed over, as a reused read buffer would be
        const received = Buffer.from(chunk);
        eached.each(received, (bytes, start, end) => viaEach.push(bytes.toString("latin1", start, end)));
        received.fill(0x78);
      }
      viaEach.push(...eached.end().map((r) => r.toString("latin1")));
      expect(viaPush, JSON.stringify(text)).toEqual(expected);
      expect(viaEach, JSON.stringify(text)).toEqual(expected);
    }
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
