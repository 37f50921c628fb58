import { hashInt4, hashInt8, hashNumeric, hashText, hashUuid } from "@herd/shared";
import { describe, expect, it } from "vitest";
import { valueSource } from "../planner/value-source.js";
import { HashableType, hashOfBinary, hashOfText } from "./distribution-value.js";

describe("hashing a distribution value as PostgreSQL would", () => {
  it("reads text forms per column type", () => {
    expect(hashOfText(HashableType.int4, " 123 ")).toBe(hashInt4(123));
    expect(hashOfText(HashableType.int8, "9007199254740993")).toBe(hashInt8(9007199254740993n));
    expect(hashOfText(HashableType.varchar, "abc")).toBe(hashText("abc"));
    expect(hashOfText(HashableType.numeric, "5.000")).toBe(hashNumeric("5"));
    expect(() => hashOfText(HashableType.int4, "12x")).toThrow(/invalid input syntax for type integer/);
    expect(() => hashOfText(HashableType.int2, "40000")).toThrow(/out of range for type smallint/);
  });

  it("hashes a plain integer (no regular expression, no BigInt) as the general reading does", () => {
    // a leading space sends the same value the general way (trim, BigInt)
    const values = ["0", "-0", "1", "-1", "32767", "-32768", "2147483647", "-2147483648"];
    values.push("4294967296", "-4294967297", "999999999999999", "-999999999999999", "1000000000000000");
    for (let i = 0; i < 500; i += 1) values.push(String(Math.floor((Math.sin(i) * 10 ** (i % 16)) / 1)));
    for (const type of [HashableType.int2, HashableType.int4, HashableType.int8]) {
      for (const text of values) {
        const general = (() => {
          try {
            return hashOfText(type, ` ${text}`);
          } catch (error) {
            return (error as Error).message;
          }
        })();
        const plain = (() => {
          try {
            return hashOfText(type, text);
          } catch (error) {
            return (error as Error).message.replace(`"${text}"`, `" ${text}"`);
          }
        })();
        expect(plain, `${text} as type ${type}`).toEqual(general);
      }
    }
    expect(() => hashOfText(HashableType.int4, "2147483648")).toThrow(/out of range for type integer/);
  });

  it("reads binary parameters, whatever integer width the driver chose", () => {
    const int8 = Buffer.alloc(8);
    int8.writeBigInt64BE(123n);
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(123);
    expect(hashOfBinary(HashableType.int4, int8)).toBe(hashInt4(123));
    expect(hashOfBinary(HashableType.int8, int4)).toBe(hashInt8(123n));
    const uuid = "6ecd8c99-4036-403d-bf84-cf8400f67836";
    expect(hashOfBinary(HashableType.uuid, Buffer.from(uuid.replaceAll("-", ""), "hex"))).toBe(hashUuid(uuid));
    // numeric 12345.678: ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6780
    const numeric = Buffer.from([0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]);
    expect(hashOfBinary(HashableType.numeric, numeric)).toBe(hashNumeric("12345.678"));
  });
});

describe("valueSource", () => {
  it("knows constants and parameters, through casts, and refuses floats and expressions", () => {
    expect(valueSource({ A_Const: { ival: { ival: 5 } } })).toEqual({ kind: "literal", text: "5" });
    expect(valueSource({ A_Const: { ival: {} } })).toEqual({ kind: "literal", text: "0" });
    expect(valueSource({ TypeCast: { arg: { ParamRef: { number: 2 } } } })).toEqual({ kind: "param", number: 2 });
    expect(valueSource({ A_Const: { isnull: true } })).toEqual({ kind: "literal", text: null });
    expect(valueSource({ A_Const: { fval: { fval: "5.5" } } })).toBeUndefined();
    expect(valueSource({ A_Const: { fval: { fval: "99999999999" } } })).toEqual({
      kind: "literal",
      text: "99999999999",
    });
    expect(valueSource({ FuncCall: {} })).toBeUndefined();
  });
});
