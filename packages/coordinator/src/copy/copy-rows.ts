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

export const NEWLINE = 0x0a;
export const CARRIAGE_RETURN = 0x0d;
export const BACKSLASH = 0x5c;

/**
 * Cuts COPY data into rows (each with its line ending), whatever the chunk boundaries. The line
 * ends and the bytes that can hide one (CSV's quote, text's backslash) are found with
 * Buffer.indexOf (memchr), not byte by byte in JavaScript: a million rows of COPY spent a third of
 * the coordinator's CPU here.
 */
export class CopyRowSplitter {
  private pending: Buffer[] = [];
  private inQuotes = false;
  /** Text format: the chunk ended with a backslash, so the next chunk's first byte is escaped. */
  private escapeNext = false;
  /** Bytes of the current row already scanned (in `pending`). */
  private scanned = 0;
  /** The text format's end marker `\.` was seen: the rest is ignored. */
  ended = false;

  constructor(private readonly format: CopyFormat) {}

  /** The rows complete in `received`, as Buffers of their own (views of one copy of it). */
  push(received: Buffer): Buffer[] {
    // rows outlive the message they came in (they wait in batches), and a message may be a view
    // of a read buffer that is used again: one copy of the chunk, the rows views of it
    const chunk = Buffer.from(received);
    const rows: Buffer[] = [];
    this.scan(chunk, true, (bytes, start, end) => {
      rows.push(bytes.subarray(start, end));
    });
    return rows;
  }

  /**
   * The rows complete in `received`, each as offsets into bytes that are valid only during the
   * call: no object per row (COPY copies each row into its shard's batch at once).
   */
  each(received: Buffer, onRow: (bytes: Buffer, start: number, end: number) => void): void {
    this.scan(received, false, onRow);
  }

  /** What is left at CopyDone: a last row without a line end gets one. */
  end(): Buffer[] {
    if (this.ended || this.scanned === 0) return [];
    const row = Buffer.concat([...this.pending, Buffer.from("\n")]);
    this.pending = [];
    this.scanned = 0;
    return this.isEndMarker(row, 0, row.length) ? [] : [row];
  }

  /** @param owned whether `chunk` stays as it is (the rest of a row is then kept as a view of it) */
  private scan(chunk: Buffer, owned: boolean, onRow: (bytes: Buffer, start: number, end: number) => void): void {
    if (this.ended) return;
    const { csv, quote } = this.format;
    const special = csv ? quote : BACKSLASH;
    let start = 0;
    let i = 0;
    if (this.escapeNext && chunk.length > 0) {
      this.escapeNext = false;
      i = 1;
    }
    // the next quote or backslash at or after i (Infinity: none in the chunk), found once per hit
    let nextSpecial = -1;
    while (i < chunk.length) {
      if (this.inQuotes) {
        const close = chunk.indexOf(quote, i);
        if (close < 0) break;
        this.inQuotes = false;
        i = close + 1;
        continue;
      }
      const newline = chunk.indexOf(NEWLINE, i);
      if (nextSpecial < i) {
        const found = chunk.indexOf(special, i);
        nextSpecial = found < 0 ? Number.POSITIVE_INFINITY : found;
      }
      if (nextSpecial < (newline < 0 ? chunk.length : newline)) {
        if (csv) {
          this.inQuotes = true;
          i = nextSpecial + 1;
        } else if (nextSpecial + 1 < chunk.length) {
          i = nextSpecial + 2; // an escaped character is never a line end
        } else {
          this.escapeNext = true;
          i = chunk.length;
        }
        continue;
      }
      if (newline < 0) break;
      let bytes = chunk;
      let rowStart = start;
      let rowEnd = newline + 1;
      if (this.pending.length > 0) {
        // a row that began in an earlier chunk: its pieces joined
        bytes = Buffer.concat([...this.pending, chunk.subarray(start, rowEnd)]);
        this.pending = [];
        this.scanned = 0;
        rowStart = 0;
        rowEnd = bytes.length;
      }
      start = i = newline + 1;
      if (this.isEndMarker(bytes, rowStart, rowEnd)) {
        this.ended = true;
        return;
      }
      onRow(bytes, rowStart, rowEnd);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pending.push(owned ? rest : Buffer.from(rest));
      this.scanned += chunk.length - start;
    }
  }

  /** `\.` alone on its line (with its line end, LF or CR LF). */
  private isEndMarker(bytes: Buffer, start: number, end: number): boolean {
    const length = end - start;
    if (length > 4 || bytes[start] !== BACKSLASH || bytes[start + 1] !== 0x2e) return false;
    const rest = length - 2;
    return (
      rest === 0 ||
      (rest === 1 && bytes[start + 2] === NEWLINE) ||
      (rest === 2 && bytes[start + 2] === CARRIAGE_RETURN && bytes[start + 3] === NEWLINE)
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
