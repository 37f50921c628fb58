import { describe, expect, it } from "vitest";
import { HerdError } from "./herd-error.js";
import { parsePodName, roleForOrdinal } from "./ordinal.js";

describe("parsePodName", () => {
  it.each([
    ["herd-0", "herd", 0],
    ["my-db-12", "my-db", 12],
    ["a-b-c-3", "a-b-c", 3],
    ["x-999999", "x", 999_999],
    ["0db-1", "0db", 1],
    ["herd-0-1", "herd-0", 1],
  ])("reads %s as set %s, ordinal %i", (podName, statefulSet, ordinal) => {
    expect(parsePodName(podName)).toEqual({ statefulSet, ordinal, podName });
  });

  it("accepts a name of exactly 63 characters", () => {
    const podName = `${"a".repeat(61)}-7`;
    expect(podName).toHaveLength(63);
    expect(parsePodName(podName)).toEqual({ statefulSet: "a".repeat(61), ordinal: 7, podName });
  });

  it.each([
    ["no ordinal", "herd"],
    ["a trailing dash", "herd-"],
    ["only an ordinal", "-0"],
    ["uppercase letters", "Herd-0"],
    ["a leading zero", "herd-01"],
    ["an empty name", ""],
    ["a name over 63 characters", `${"a".repeat(62)}-7`],
    ["a set name ending in a dash", "herd--0"],
    ["an underscore", "my_db-0"],
    ["a dot", "my.db-0"],
    ["a trailing newline", "herd-0\n"],
    ["an ordinal over six digits", "herd-1234567"],
    ["a negative-looking ordinal", "herd--1"],
  ])("rejects %s (%j) with sqlState 22023", (_, podName) => {
    let caught: unknown;
    try {
      parsePodName(podName);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(HerdError);
    const error = caught as HerdError;
    expect(error.sqlState).toBe("22023");
    expect(error.message).toBe(`cannot read an ordinal from pod name "${podName}"`);
    expect(error.hint).toContain("<statefulset>-<ordinal>");
  });
});

describe("roleForOrdinal", () => {
  it("makes ordinal 0 the coordinator and every other ordinal a worker", () => {
    expect(roleForOrdinal(0)).toBe("coordinator");
    expect(roleForOrdinal(1)).toBe("worker");
    expect(roleForOrdinal(2)).toBe("worker");
    expect(roleForOrdinal(31)).toBe("worker");
  });

  it("agrees with parsePodName", () => {
    expect(roleForOrdinal(parsePodName("herd-0").ordinal)).toBe("coordinator");
    expect(roleForOrdinal(parsePodName("herd-10").ordinal)).toBe("worker");
  });
});
