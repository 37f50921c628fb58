import { describe, expect, it } from "vitest";
import { HerdError, isHerdError } from "./herd-error.js";
import { SqlState } from "./sql-state.js";

describe("HerdError", () => {
  it("defaults to XX000, severity ERROR, and no detail, hint or cause", () => {
    const error = new HerdError("something broke");
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("HerdError");
    expect(error.message).toBe("something broke");
    expect(error.sqlState).toBe("XX000");
    expect(error.severity).toBe("ERROR");
    expect(error.detail).toBeUndefined();
    expect(error.hint).toBeUndefined();
    expect("cause" in error).toBe(false);
  });

  it("keeps the fields it is given", () => {
    const cause = new Error("root");
    const error = new HerdError("no such table", {
      sqlState: SqlState.undefinedTable,
      severity: "FATAL",
      detail: "the detail",
      hint: "the hint",
      cause,
    });
    expect(error.sqlState).toBe("42P01");
    expect(error.severity).toBe("FATAL");
    expect(error.detail).toBe("the detail");
    expect(error.hint).toBe("the hint");
    expect(error.cause).toBe(cause);
  });

  describe("describe()", () => {
    it("is only the message without detail or hint", () => {
      expect(new HerdError("plain").describe()).toBe("plain");
    });

    it("adds DETAIL and HINT lines in that order", () => {
      const error = new HerdError("port taken", { detail: "6432 is used", hint: "choose another" });
      expect(error.describe()).toBe("port taken\nDETAIL: 6432 is used\nHINT: choose another");
    });

    it("adds only what is there", () => {
      expect(new HerdError("m", { hint: "h" }).describe()).toBe("m\nHINT: h");
      expect(new HerdError("m", { detail: "d" }).describe()).toBe("m\nDETAIL: d");
    });
  });
});

describe("isHerdError", () => {
  it("is true only for HerdError instances", () => {
    expect(isHerdError(new HerdError("x"))).toBe(true);
    expect(isHerdError(new Error("x"))).toBe(false);
    expect(isHerdError(Object.assign(new Error("x"), { sqlState: "XX000" }))).toBe(false);
    expect(isHerdError("x")).toBe(false);
    expect(isHerdError(undefined)).toBe(false);
  });
});
