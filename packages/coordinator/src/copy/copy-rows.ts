/**
 * COPY's text and CSV formats, as much as routing needs: cutting a byte stream into rows
 * (a CSV row may span lines inside quotes) and reading one field of a row.
 * https://www.postgresql.org/docs/18/sql-copy.html#id-1.9.3.55.9
 */
export interface CopyFormat {
  readonly csv: boolean;
  readonly delimiter: number;
  readonly quote: number;
  readonly escape: number;
  readonly nullText: string;
  readonly header: boolean;
}

export const TEXT_FORMAT: CopyFormat = {
  csv: false,
  delimiter: 0x09,
  quote: 0x22,
  escape: 0x22,
  nullText: "\\N",
  header: false,
};

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const BACKSLASH = 0x5c;

/** Cuts COPY data into rows (each with its line ending), whatever the chunk boundaries. */
export class CopyRowSplitter {
  private pending: Buffer[] = [];
  private inQuotes = false;
  /** Bytes of the current row already scanned (in `pending`). */
  private scanned = 0;
  /** The text format's end marker `\.` was seen: the rest is ignored. */
  ended = false;

  constructor(private readonly format: CopyFormat) {}

  push(received: Buffer): Buffer[] {
    // rows outlive the message they came in (they wait in batches), and a message may be a view
    // of a read buffer that is used again: one copy of the chunk, the rows views of it
    const chunk = Buffer.from(received);
    const rows: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i += 1) {
      const byte = chunk[i] as number;
      if (this.format.csv) {
        if (byte === this.format.quote) this.inQuotes = !this.inQuotes;
        if (this.inQuotes || byte !== NEWLINE) continue;
      } else if (byte === BACKSLASH) {
        i += 1; // an escaped character is never a line end
        continue;
      } else if (byte !== NEWLINE) continue;
      const row = this.take(chunk.subarray(start, i + 1));
      start = i + 1;
      if (this.isEndMarker(row)) {
        this.ended = true;
        return rows;
      }
      rows.push(row);
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.scanned += chunk.length - start;
    }
    return rows;
  }

  /** What is left at CopyDone: a last row without a line end gets one. */
  end(): Buffer[] {
    if (this.ended || this.scanned === 0) return [];
    const row = this.take(Buffer.from("\n"));
    return this.isEndMarker(row) ? [] : [row];
  }

  private take(tail: Buffer): Buffer {
    const row = this.pending.length === 0 ? tail : Buffer.concat([...this.pending, tail]);
    this.pending = [];
    this.scanned = 0;
    return row;
  }

  /** `\.` alone on its line (with its line end, LF or CR LF). */
  private isEndMarker(row: Buffer): boolean {
    if (row.length > 4 || row[0] !== BACKSLASH || row[1] !== 0x2e) return false;
    const rest = row.length - 2;
    return (
      rest === 0 ||
      (rest === 1 && row[2] === NEWLINE) ||
      (rest === 2 && row[2] === CARRIAGE_RETURN && row[3] === NEWLINE)
    );
  }
}

/** Field `index` of a row, unescaped; null for the NULL marker; undefined when the row is shorter. */
export function copyField(row: Buffer, index: number, format: CopyFormat): string | null | undefined {
  let end = row.length;
  if (row[end - 1] === NEWLINE) end -= 1;
  if (row[end - 1] === CARRIAGE_RETURN) end -= 1;
  return format.csv ? csvField(row.subarray(0, end), index, format) : textField(row.subarray(0, end), index, format);
}

function textField(line: Buffer, index: number, format: CopyFormat): string | null | undefined {
  let field = 0;
  let start = 0;
  for (let i = 0; i <= line.length; i += 1) {
    if (i < line.length && line[i] === BACKSLASH) {
      i += 1;
      continue;
    }
    if (i === line.length || line[i] === format.delimiter) {
      if (field === index) {
        const raw = line.toString("utf8", start, i);
        return raw === format.nullText ? null : unescapeText(raw);
      }
      field += 1;
      start = i + 1;
    }
  }
  return undefined;
}

const ESCAPES: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" };

function unescapeText(raw: string): string {
  if (!raw.includes("\\")) return raw;
  return raw.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, code: string) => {
    if (code[0] === "x") return String.fromCharCode(Number.parseInt(code.slice(1), 16));
    if (/^[0-7]/.test(code)) return String.fromCharCode(Number.parseInt(code, 8));
    return ESCAPES[code] ?? code;
  });
}

function csvField(line: Buffer, index: number, format: CopyFormat): string | null | undefined {
  let field = 0;
  let i = 0;
  while (i <= line.length) {
    let value = "";
    let quoted = false;
    const bytes: number[] = [];
    if (line[i] === format.quote) {
      quoted = true;
      i += 1;
      while (i < line.length) {
        const byte = line[i] as number;
        if (
          byte === format.escape &&
          line[i + 1] === format.quote &&
          (format.escape !== format.quote || i + 1 < line.length)
        ) {
          bytes.push(format.quote);
          i += 2;
          continue;
        }
        if (byte === format.quote) {
          i += 1;
          break;
        }
        bytes.push(byte);
        i += 1;
      }
    }
    while (i < line.length && line[i] !== format.delimiter) bytes.push(line[i++] as number);
    value = Buffer.from(bytes).toString("utf8");
    if (field === index) return !quoted && value === format.nullText ? null : value;
    field += 1;
    i += 1;
    if (i > line.length) break;
  }
  return undefined;
}
