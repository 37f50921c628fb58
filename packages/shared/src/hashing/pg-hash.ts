import { HerdError } from "../herd-error.js";
import { SqlState } from "../sql-state.js";
import { hashBytes, hashUint32 } from "./hash-bytes.js";

/**
 * The default hash function of each type PostgreSQL can distribute by, computed here exactly as
 * PostgreSQL 18 computes it (`SELECT hashint4(123)` = hashInt4(123) = -205084363), so the
 * coordinator routes a row to the shard whose range holds the value's hash, as Citus does.
 */

/** hashint2, hashint4, hashoid, hashdate (int32 days since 2000-01-01): hash_uint32 of the value. */
export function hashInt4(value: number): number {
  return hashUint32(value | 0);
}

export const hashInt2 = hashInt4;

/** hashint8: folds the high half into the low half (inverted for negatives), so int8 values in int4 range hash as int4. */
export function hashInt8(value: bigint): number {
  const v = BigInt.asIntN(64, value);
  const low = Number(BigInt.asUintN(32, v));
  const high = Number(BigInt.asUintN(32, v >> 32n));
  return hashUint32(v >= 0n ? low ^ high : low ^ ~high);
}

/**
 * hashint8 of a safe integer (|value| < 2^53) without BigInt: the same halves, by division. COPY
 * hashes a row's bigint key with it (BigInt arithmetic per row cost more than the rest).
 */
export function hashInt8FromNumber(value: number): number {
  const high = Math.floor(value / 4294967296);
  const low = value - high * 4294967296;
  // (`^` and `~` take both as int32: the same bits as the unsigned halves hashInt8 uses)
  return hashUint32(value >= 0 ? low ^ high : low ^ ~high);
}

/** hashbool: hash_uint32 of 0 or 1. */
export function hashBool(value: boolean): number {
  return hashUint32(value ? 1 : 0);
}

/** hashtext (text, varchar, name under a deterministic collation): the UTF-8 bytes. */
export function hashText(value: string): number {
  return hashBytes(Buffer.from(value, "utf8"));
}

/** hashbpchar (char(n)): trailing spaces do not count. */
export function hashBpchar(value: string): number {
  return hashText(value.replace(/ +$/, ""));
}

/** hashbytea. */
export function hashBytea(value: Uint8Array): number {
  return hashBytes(value);
}

/** uuid_hash: the 16 bytes. */
export function hashUuid(value: string): number {
  const hex = value.replace(/^\{|\}$/g, "").replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw invalid("uuid", value);
  return hashBytes(Buffer.from(hex, "hex"));
}

const POSTGRES_EPOCH_DAYS = Date.UTC(2000, 0, 1) / 86_400_000;
const DATE_NOBEGIN = -2147483648;
const DATE_NOEND = 2147483647;

/** hashdate, from 'YYYY-MM-DD' (or ±infinity). */
export function hashDate(value: string): number {
  return hashInt4(dateToDays(value));
}

/** Days since 2000-01-01, PostgreSQL's internal date. */
export function dateToDays(value: string): number {
  const text = value.trim().toLowerCase();
  if (text === "infinity") return DATE_NOEND;
  if (text === "-infinity") return DATE_NOBEGIN;
  const match = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) throw invalid("date", value);
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) throw invalid("date", value);
  return Math.round(date.getTime() / 86_400_000 - POSTGRES_EPOCH_DAYS);
}

/** timestamp_hash and timestamptz_hash: hashint8 of microseconds since 2000-01-01 00:00 UTC. */
export function hashTimestampMicros(micros: bigint): number {
  return hashInt8(micros);
}

/**
 * Microseconds since 2000-01-01 00:00 UTC of 'YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][±HH[:MM]|Z]'.
 * A timestamp without time zone is read as UTC wall-clock time (that is how PostgreSQL stores it);
 * a timestamptz literal needs its offset, since the session's TimeZone is not known here.
 */
export function timestampToMicros(value: string, withTimeZone: boolean): bigint {
  const match =
    /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(
      value.trim(),
    );
  if (!match) throw invalid(withTimeZone ? "timestamp with time zone" : "timestamp", value);
  const [, y, mo, d, h, mi, sec, frac, zone] = match;
  if (withTimeZone && zone === undefined) {
    throw new HerdError(`cannot hash timestamptz "${value}" without an explicit time zone offset`, {
      sqlState: SqlState.featureNotSupported,
    });
  }
  const days = dateToDays(`${y}-${mo}-${d}`);
  let seconds = Number(h) * 3600 + Number(mi) * 60 + Number(sec ?? 0);
  if (zone && zone.toUpperCase() !== "Z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    seconds -= sign * (Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2) || 0) * 60);
  }
  const micros = BigInt((frac ?? "").padEnd(6, "0"));
  return (BigInt(days) * 86_400n + BigInt(seconds)) * 1_000_000n + micros;
}

/**
 * hash_numeric: lookup3 over the base-10000 digits (little-endian int16), leading and trailing
 * zero digits dropped, xor the weight (power of 10000 of the first digit). The sign and the
 * scale do not count: 5, -5 and 5.000 hash alike; zero hashes to -1, NaN and ±Infinity to 0.
 * Worked example: 12345.678 → digits 0001 2345 6780, weight 1.
 */
export function hashNumeric(value: string): number {
  const text = value.trim();
  if (/^[+-]?(nan|inf|infinity)$/i.test(text)) return 0;
  const match = /^[+-]?(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text);
  if (!match || (match[1] === "" && (match[2] ?? "") === "")) throw invalid("numeric", value);
  // Move the decimal point for an exponent: all digits, and where the point sits among them.
  let digits = (match[1] ?? "") + (match[2] ?? "");
  let point = (match[1] ?? "").length + Number(match[3] ?? 0);
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits = digits.padEnd(point, "0");
  const integer = digits.slice(0, point);
  const fraction = digits.slice(point);
  // groups of four decimal digits, aligned on the decimal point
  const intGroups = integer.padStart(Math.ceil(integer.length / 4) * 4, "0");
  const fracGroups = fraction.padEnd(Math.ceil(fraction.length / 4) * 4, "0");
  const groups: number[] = [];
  for (let i = 0; i < intGroups.length; i += 4) groups.push(Number(intGroups.slice(i, i + 4)));
  for (let i = 0; i < fracGroups.length; i += 4) groups.push(Number(fracGroups.slice(i, i + 4)));
  let weight = intGroups.length / 4 - 1;
  let start = 0;
  while (start < groups.length && groups[start] === 0) {
    start += 1;
    weight -= 1;
  }
  if (start === groups.length) return -1;
  let end = groups.length;
  while (groups[end - 1] === 0) end -= 1;
  const bytes = Buffer.alloc((end - start) * 2);
  for (let i = start; i < end; i += 1) bytes.writeInt16LE(groups[i] as number, (i - start) * 2);
  return (hashBytes(bytes) ^ weight) | 0;
}

function invalid(type: string, value: string): HerdError {
  return new HerdError(`invalid input syntax for type ${type}: "${value}"`, {
    sqlState: SqlState.invalidTextRepresentation,
  });
}
