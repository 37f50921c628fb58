import {
  HerdError,
  hashBool,
  hashBpchar,
  hashBytea,
  hashDate,
  hashInt4,
  hashInt8,
  hashInt8FromNumber,
  hashNumeric,
  hashText,
  hashTimestampMicros,
  hashUuid,
  SqlState,
  timestampToMicros,
} from "@herd/shared";

/** Type OIDs herd can hash-distribute by (PostgreSQL's pg_type.dat). */
export const HashableType = {
  bool: 16,
  bytea: 17,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
} as const;

const HASHABLE = new Set<number>(Object.values(HashableType));

export function isHashableType(typeOid: number): boolean {
  return HASHABLE.has(typeOid);
}

/**
 * Where a distribution column's value comes from in a statement: a literal (its text, or null
 * for NULL), or parameter `$n` of the extended protocol, known only at Bind.
 */
export type ValueSource =
  | { readonly kind: "literal"; readonly text: string | null }
  | { readonly kind: "param"; readonly number: number };

/** PostgreSQL's hash of a value given in text form, for a column of type `typeOid`. */
export function hashOfText(typeOid: number, text: string): number {
  switch (typeOid) {
    case HashableType.int2:
    case HashableType.int4: {
      const bits = typeOid === HashableType.int2 ? 16 : 32;
      return hashInt4(plainInteger(text, 2 ** (bits - 1)) ?? Number(parseInteger(text, bits)));
    }
    case HashableType.int8: {
      const plain = plainInteger(text, 2 ** 53);
      return plain === undefined ? hashInt8(BigInt(parseInteger(text, 64))) : hashInt8FromNumber(plain);
    }
    case HashableType.text:
    case HashableType.varchar:
    case HashableType.name:
      return hashText(text);
    case HashableType.bpchar:
      return hashBpchar(text);
    case HashableType.uuid:
      return hashUuid(text.trim());
    case HashableType.date:
      return hashDate(text.trim());
    case HashableType.timestamp:
      return hashTimestampMicros(timestampToMicros(text.trim(), false));
    case HashableType.timestamptz:
      return hashTimestampMicros(timestampToMicros(text.trim(), true));
    case HashableType.numeric:
      return hashNumeric(text.trim());
    case HashableType.bool:
      return hashBool(parseBool(text));
    case HashableType.bytea:
      return hashBytea(parseByteaHex(text));
  }
  throw notHashable(typeOid);
}

/** PostgreSQL's hash of a parameter sent in binary format for a column of type `typeOid`. */
export function hashOfBinary(typeOid: number, value: Buffer): number {
  switch (typeOid) {
    case HashableType.int2:
    case HashableType.int4:
    case HashableType.int8: {
      // a driver may send an int8 for an int4 column (or the reverse): the width says which
      if (value.length === 2) return hashInt4(value.readInt16BE(0));
      if (value.length === 4) return hashInt4(value.readInt32BE(0));
      if (value.length === 8) return hashInt8(value.readBigInt64BE(0));
      break;
    }
    case HashableType.text:
    case HashableType.varchar:
    case HashableType.name:
      return hashText(value.toString("utf8"));
    case HashableType.bpchar:
      return hashBpchar(value.toString("utf8"));
    case HashableType.uuid:
      if (value.length === 16) return hashUuid(value.toString("hex"));
      break;
    case HashableType.date:
      if (value.length === 4) return hashInt4(value.readInt32BE(0));
      break;
    case HashableType.timestamp:
    case HashableType.timestamptz:
      if (value.length === 8) return hashTimestampMicros(value.readBigInt64BE(0));
      break;
    case HashableType.bool:
      if (value.length === 1) return hashBool(value[0] !== 0);
      break;
    case HashableType.bytea:
      return hashBytea(value);
    case HashableType.numeric:
      return hashNumeric(decodeBinaryNumeric(value));
  }
  throw new HerdError(`invalid binary value for the distribution column (type ${typeOid})`, {
    sqlState: SqlState.invalidParameterValue,
  });
}

/**
 * `text` as a number when it is a plain decimal integer (`-?[0-9]{1,15}`) within ±limit; undefined
 * otherwise, for parseInteger to read or word the error. Every routed statement's key goes through
 * here: no regular expression and no BigInt for the usual value.
 */
function plainInteger(text: string, limit: number): number | undefined {
  const length = text.length;
  const negative = text.charCodeAt(0) === 0x2d;
  const first = negative ? 1 : 0;
  if (length === first || length - first > 15) return undefined;
  let value = 0;
  for (let i = first; i < length; i += 1) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
  }
  if (negative) value = -value;
  return value < -limit || value >= limit ? undefined : value;
}

function parseInteger(text: string, bits: 16 | 32 | 64): string {
  const trimmed = text.trim();
  if (!/^[+-]?\d+$/.test(trimmed))
    throw invalidInput(bits === 16 ? "smallint" : bits === 32 ? "integer" : "bigint", text);
  const value = BigInt(trimmed);
  const limit = 1n << BigInt(bits - 1);
  if (value < -limit || value >= limit) {
    throw new HerdError(
      `value "${text}" is out of range for type ${bits === 16 ? "smallint" : bits === 32 ? "integer" : "bigint"}`,
      {
        sqlState: SqlState.numericValueOutOfRange,
      },
    );
  }
  return trimmed;
}

function parseBool(text: string): boolean {
  const value = text.trim().toLowerCase();
  if (["t", "true", "y", "yes", "on", "1"].includes(value)) return true;
  if (["f", "false", "n", "no", "off", "0"].includes(value)) return false;
  throw invalidInput("boolean", text);
}

function parseByteaHex(text: string): Buffer {
  if (text.startsWith("\\x")) return Buffer.from(text.slice(2), "hex");
  return Buffer.from(text, "latin1");
}

/** The text form of a binary numeric: ndigits, weight, sign, dscale, then base-10000 digits. */
function decodeBinaryNumeric(value: Buffer): string {
  const ndigits = value.readInt16BE(0);
  const weight = value.readInt16BE(2);
  const sign = value.readUInt16BE(4);
  if (sign === 0xc000) return "NaN";
  if (sign === 0xd000) return "Infinity";
  if (sign === 0xf000) return "-Infinity";
  let integer = "";
  let fraction = "";
  for (let i = 0; i < ndigits; i += 1) {
    const digit = String(value.readInt16BE(8 + 2 * i)).padStart(4, "0");
    if (i <= weight) integer += digit;
    else fraction += digit;
  }
  for (let i = ndigits; i <= weight; i += 1) integer += "0000";
  if (weight < -1) fraction = "0000".repeat(-weight - 1) + fraction;
  const text = `${integer.replace(/^0+/, "") || "0"}${fraction ? `.${fraction}` : ""}`;
  return sign === 0x4000 ? `-${text}` : text;
}

function invalidInput(type: string, text: string): HerdError {
  return new HerdError(`invalid input syntax for type ${type}: "${text}"`, {
    sqlState: SqlState.invalidTextRepresentation,
  });
}

export function notHashable(typeOid: number): HerdError {
  return new HerdError(`could not identify a hash function for type ${typeOid}`, {
    sqlState: SqlState.undefinedFunction,
    detail: "Partition column types must have a hash function defined to use hash partitioning.",
  });
}
