import { hashBytes, hashInt4, hashInt8FromNumber } from "@herd/shared";
import { HashableType } from "../executor/distribution-value.js";
import { BACKSLASH, CARRIAGE_RETURN, type CopyFormat, NEWLINE } from "./copy-rows.js";

const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
/** Digits whose value is always below 2^53 (an exact double). */
const MAX_DIGITS = 15;

/**
 * The hash of a row's distribution column read straight from the row's bytes, for the common
 * case: integer and text columns, no quote (CSV) or backslash (text) in the row up to the field's
 * end, a plain decimal integer. Anything else — an escape, a quoted field, the NULL marker, an
 * empty field, spaces, a `+`, more than 15 digits, a value out of range — is undefined, and the
 * caller reads the field the general way (copyField, hashOfText), which also words the errors.
 * The result is the same either way (copy-key.test.ts compares the two over many rows).
 */
export class CopyKeyReader {
  private readonly nullMarker: Buffer;
  private readonly special: number;

  constructor(
    private readonly format: CopyFormat,
    /** The distribution column's place among the row's fields. */
    private readonly index: number,
    private readonly typeOid: number,
  ) {
    this.nullMarker = Buffer.from(format.nullText, "utf8");
    this.special = format.csv ? format.quote : BACKSLASH;
  }

  /** The hash of the key of the row at `rowStart`…`rowEnd` of `row`, or undefined (see above). */
  hash(row: Buffer, rowStart = 0, rowEnd = row.length): number | undefined {
    const { delimiter } = this.format;
    let end = rowEnd;
    if (row[end - 1] === NEWLINE) end -= 1;
    if (row[end - 1] === CARRIAGE_RETURN) end -= 1;
    let start = rowStart;
    for (let field = 0; field < this.index; field += 1) {
      const at = row.indexOf(delimiter, start);
      if (at < 0 || at >= end) return undefined;
      start = at + 1;
    }
    const at = row.indexOf(delimiter, start);
    const fieldEnd = at < 0 || at > end ? end : at;
    // (a loop, not indexOf: the bytes after the row may be the rest of a 64 kB chunk)
    for (let i = rowStart; i < fieldEnd; i += 1) if (row[i] === this.special) return undefined;
    // an empty field (CSV's NULL, or an empty text) and the NULL marker go the general way
    if (fieldEnd === start || this.isNullMarker(row, start, fieldEnd)) return undefined;
    switch (this.typeOid) {
      case HashableType.int2:
      case HashableType.int4: {
        const value = integerIn(row, start, fieldEnd);
        const limit = this.typeOid === HashableType.int2 ? 0x8000 : 0x80000000;
        return value === undefined || value < -limit || value >= limit ? undefined : hashInt4(value);
      }
      case HashableType.int8: {
        const value = integerIn(row, start, fieldEnd);
        return value === undefined ? undefined : hashInt8FromNumber(value);
      }
      case HashableType.text:
      case HashableType.varchar:
        // the field's bytes are the value's UTF-8 (the session's encoding is UTF8)
        return hashBytes(row.subarray(start, fieldEnd));
      default:
        return undefined;
    }
  }

  private isNullMarker(row: Buffer, start: number, end: number): boolean {
    const marker = this.nullMarker;
    if (end - start !== marker.length) return false;
    for (let i = 0; i < marker.length; i += 1) if (row[start + i] !== marker[i]) return false;
    return true;
  }
}

/** `-?[0-9]{1,15}` between start and end, as a number; undefined for anything else. */
function integerIn(row: Buffer, start: number, end: number): number | undefined {
  const negative = row[start] === MINUS;
  const first = negative ? start + 1 : start;
  if (first === end || end - first > MAX_DIGITS) return undefined;
  let value = 0;
  for (let i = first; i < end; i += 1) {
    const byte = row[i] as number;
    if (byte < ZERO || byte > NINE) return undefined;
    value = value * 10 + (byte - ZERO);
  }
  return negative ? -value : value;
}
