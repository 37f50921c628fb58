import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger, errorMessage, type LogLevel } from "./logger.js";

const NOW = "2026-11-21T20:10:00.000Z";

function capture(component: string, level?: LogLevel) {
  const lines: string[] = [];
  const logger = createLogger(component, { ...(level ? { level } : {}), write: (line) => lines.push(line) });
  return { logger, lines };
}

describe("createLogger", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date(NOW));
  });

  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });

  it("writes one line: timestamp, level padded to five, [component], message", () => {
    const { logger, lines } = capture("coordinator", "debug");
    logger.debug("d");
    logger.info("registered");
    logger.warn("w");
    logger.error("e");
    expect(lines).toEqual([
      `${NOW} DEBUG [coordinator] d`,
      `${NOW} INFO  [coordinator] registered`,
      `${NOW} WARN  [coordinator] w`,
      `${NOW} ERROR [coordinator] e`,
    ]);
  });

  it("folds a multi-line message onto one line", () => {
    const { logger, lines } = capture("bot", "info");
    logger.error("initdb failed\nDETAIL: disk full\r\nHINT: free some space");
    expect(lines).toEqual([`${NOW} ERROR [bot] initdb failed | DETAIL: disk full | HINT: free some space`]);
  });

  it("appends fields as key=value, skipping undefined ones", () => {
    const { logger, lines } = capture("bot");
    logger.info("registered", { node_id: 3, ok: true, host: "herd-1", gone: undefined, none: null });
    expect(lines).toEqual([`${NOW} INFO  [bot] registered node_id=3 ok=true host=herd-1 none=null`]);
  });

  it("quotes values holding spaces, quotes, equals signs or newlines", () => {
    const { logger, lines } = capture("bot");
    logger.info("m", { a: "two words", b: 'say "hi"', c: "x=y", d: "line1\nline2", e: "tab\there" });
    expect(lines).toEqual([
      `${NOW} INFO  [bot] m a="two words" b="say \\"hi\\"" c="x=y" d="line1\\nline2" e="tab\\there"`,
    ]);
    expect(lines[0]).not.toContain("\n");
  });

  it("writes nothing extra for an empty fields object", () => {
    const { logger, lines } = capture("bot");
    logger.info("m", {});
    expect(lines).toEqual([`${NOW} INFO  [bot] m`]);
  });

  it.each([
    ["debug", ["debug", "info", "warn", "error"]],
    ["info", ["info", "warn", "error"]],
    ["warn", ["warn", "error"]],
    ["error", ["error"]],
  ] as const)("at level %s writes only %j", (level, expected) => {
    const { logger, lines } = capture("c", level);
    logger.debug("debug");
    logger.info("info");
    logger.warn("warn");
    logger.error("error");
    expect(lines.map((line) => line.split(" ").at(-1))).toEqual(expected);
  });

  it("takes its level from HERD_LOG_LEVEL when none is given", () => {
    vi.stubEnv("HERD_LOG_LEVEL", "warn");
    const { logger, lines } = capture("c");
    logger.info("hidden");
    logger.warn("shown");
    expect(lines).toEqual([`${NOW} WARN  [c] shown`]);
  });

  it("falls back to info for an unknown HERD_LOG_LEVEL", () => {
    vi.stubEnv("HERD_LOG_LEVEL", "verbose");
    const { logger, lines } = capture("c");
    logger.debug("hidden");
    logger.info("shown");
    expect(lines).toEqual([`${NOW} INFO  [c] shown`]);
  });

  it("names a child after its parent and keeps the parent's level and writer", () => {
    const { logger, lines } = capture("bot", "warn");
    const child = logger.child("herd-1");
    const grandchild = child.child("registrar");
    child.info("hidden");
    child.warn("from child");
    grandchild.error("from grandchild", { attempt: 2 });
    logger.warn("from parent");
    expect(lines).toEqual([
      `${NOW} WARN  [bot herd-1] from child`,
      `${NOW} ERROR [bot herd-1 registrar] from grandchild attempt=2`,
      `${NOW} WARN  [bot] from parent`,
    ]);
  });
});

describe("errorMessage", () => {
  it("is the message of an Error and the string form of anything else", () => {
    expect(errorMessage(new TypeError("bad type"))).toBe("bad type");
    expect(errorMessage("plain")).toBe("plain");
    expect(errorMessage(42)).toBe("42");
    expect(errorMessage(undefined)).toBe("undefined");
  });
});
