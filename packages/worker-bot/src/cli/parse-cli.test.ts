import { HerdError } from "@herd/shared";
import { describe, expect, it } from "vitest";
import { MAIN_HELP, parseCli, STATUS_HELP, UP_HELP } from "./parse-cli.js";

/** The usage error `parseCli(argv)` throws. */
function usageError(argv: string[]): HerdError {
  try {
    parseCli(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(HerdError);
    expect((error as HerdError).sqlState).toBe("22023");
    return error as HerdError;
  }
  throw new Error(`expected parseCli(${JSON.stringify(argv)}) to throw`);
}

const UP_DEFAULTS = {
  workers: 3,
  port: 6432,
  adminPort: 6480,
  dataDir: ".herd",
  shardCount: 32,
  // left to herd up, which takes the default (2) capped at the number of workers
  replicationFactor: undefined,
  autoRebalance: true,
  replaceLostAfterS: undefined,
};

describe("parseCli", () => {
  describe("help and version", () => {
    it.each([[[]], [["help"]], [["-h"]], [["--help"]], [["help", "nothing"]]])("%j shows the main help", (argv) => {
      expect(parseCli(argv)).toEqual({ kind: "help", text: MAIN_HELP });
    });

    it.each([[["help", "up"]], [["--help", "up"]], [["-h", "up"]], [["up", "--help"]], [["up", "-h"]]])(
      "%j shows the help of up",
      (argv) => {
        expect(parseCli(argv)).toEqual({ kind: "help", text: UP_HELP });
      },
    );

    it.each([[["help", "status"]], [["status", "--help"]], [["status", "-h"]]])(
      "%j shows the help of status",
      (argv) => {
        expect(parseCli(argv)).toEqual({ kind: "help", text: STATUS_HELP });
      },
    );

    it("shows help even with other flags around --help", () => {
      expect(parseCli(["up", "--workers", "5", "--help"])).toEqual({ kind: "help", text: UP_HELP });
    });

    it.each([[["--version"]], [["-V"]]])("%j asks for the version", (argv) => {
      expect(parseCli(argv)).toEqual({ kind: "version" });
    });

    it("documents the defaults in the help of up", () => {
      expect(UP_HELP).toContain("default 3");
      expect(UP_HELP).toContain("default 6432");
      expect(UP_HELP).toContain("default 6480");
      expect(UP_HELP).toContain("default ./.herd");
    });
  });

  it("parses bot", () => {
    expect(parseCli(["bot"])).toEqual({ kind: "bot" });
  });

  it("refuses an unknown command with a hint", () => {
    const error = usageError(["down"]);
    expect(error.message).toBe('unknown command "down"');
    expect(error.hint).toBe("Run `herd --help` for the commands.");
  });

  describe("up", () => {
    it("has the documented defaults and leaves the replication factor to herd up", () => {
      const command = parseCli(["up"]);
      expect(command).toEqual({ kind: "up", options: UP_DEFAULTS });
      expect(UP_HELP).toMatch(/--replication-factor N .*\(default 2, or 1\s+with a single worker\)/);
    });

    it("reads every flag", () => {
      expect(
        parseCli([
          "up",
          "--workers",
          "5",
          "--port",
          "7000",
          "--admin-port",
          "7100",
          "--data-dir",
          "/tmp/cluster",
          "--shard-count",
          "64",
          "--replication-factor",
          "3",
          "--no-auto-rebalance",
          "--replace-lost-after",
          "60",
        ]),
      ).toEqual({
        kind: "up",
        options: {
          workers: 5,
          port: 7000,
          adminPort: 7100,
          dataDir: "/tmp/cluster",
          shardCount: 64,
          replicationFactor: 3,
          autoRebalance: false,
          replaceLostAfterS: 60,
        },
      });
    });

    it("accepts --flag=value and keeps the defaults of the flags not given", () => {
      expect(parseCli(["up", "--workers=1", "--replication-factor=1"])).toEqual({
        kind: "up",
        options: { ...UP_DEFAULTS, workers: 1, replicationFactor: 1 },
      });
    });

    it("accepts the bounds of each range", () => {
      const command = parseCli([
        "up",
        "--workers",
        "64",
        "--port",
        "65535",
        "--admin-port",
        "1",
        "--shard-count",
        "10000",
      ]);
      expect(command).toEqual({
        kind: "up",
        options: { ...UP_DEFAULTS, workers: 64, port: 65535, adminPort: 1, shardCount: 10_000 },
      });
    });

    it.each([
      ["--workers", "0", 1, 64],
      ["--workers", "65", 1, 64],
      ["--port", "abc", 1, 65535],
      ["--port", "70000", 1, 65535],
      ["--port", "1.5", 1, 65535],
      ["--port", "0x10", 1, 65535],
      ["--port", "", 1, 65535],
      ["--admin-port", "0", 1, 65535],
      ["--shard-count", "10001", 1, 10000],
      ["--replication-factor", "17", 1, 16],
    ])("rejects %s %j", (flag, value, min, max) => {
      const error = usageError(["up", `${flag}=${value}`]);
      expect(error.message).toBe(`${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
    });

    it("rejects a negative number", () => {
      usageError(["up", "--workers=-1"]);
      usageError(["up", "--port", "-1"]);
    });

    it("rejects an empty data directory", () => {
      expect(usageError(["up", "--data-dir", ""]).message).toBe("--data-dir needs a value");
      expect(usageError(["up", "--data-dir", "  "]).message).toBe("--data-dir needs a value");
    });

    it("rejects a flag without its value", () => {
      const error = usageError(["up", "--port"]);
      expect(error.message).toContain("--port");
      expect(error.hint).toBe("Run `herd up --help` for its options.");
    });

    it("rejects an unknown flag, pointing at the help of up", () => {
      const error = usageError(["up", "--bogus"]);
      expect(error.message).toContain("--bogus");
      expect(error.hint).toBe("Run `herd up --help` for its options.");
    });

    it("rejects a positional argument", () => {
      usageError(["up", "extra"]);
    });

    it("rejects a flag of status", () => {
      expect(usageError(["up", "--token", "t"]).message).toContain("--token");
    });
  });

  describe("status", () => {
    it("defaults to the local data directory", () => {
      expect(parseCli(["status"])).toEqual({
        kind: "status",
        options: { dataDir: ".herd", adminUrl: undefined, token: undefined },
      });
    });

    it("reads --data-dir, --admin-url and --token", () => {
      expect(parseCli(["status", "--data-dir", "/srv/herd"])).toEqual({
        kind: "status",
        options: { dataDir: "/srv/herd", adminUrl: undefined, token: undefined },
      });
      expect(parseCli(["status", "--admin-url", "http://127.0.0.1:6480", "--token=secret"])).toEqual({
        kind: "status",
        options: { dataDir: ".herd", adminUrl: "http://127.0.0.1:6480", token: "secret" },
      });
    });

    it("rejects empty values", () => {
      expect(usageError(["status", "--token", ""]).message).toBe("--token needs a value");
      expect(usageError(["status", "--admin-url="]).message).toBe("--admin-url needs a value");
    });

    it("rejects an unknown flag, pointing at the help of status", () => {
      const error = usageError(["status", "--workers", "3"]);
      expect(error.message).toContain("--workers");
      expect(error.hint).toBe("Run `herd status --help` for its options.");
    });
  });
});

describe("the placement commands", () => {
  it("parse herd shards, rebalance and drain with their options", () => {
    expect(parseCli(["shards", "--table", "orders"])).toMatchObject({ kind: "shards", options: { table: "orders" } });
    expect(parseCli(["rebalance", "--dry-run", "--strategy", "by_disk_size"])).toMatchObject({
      kind: "rebalance",
      options: { dryRun: true, strategy: "by_disk_size" },
    });
    expect(parseCli(["drain", "herd-3", "--admin-url", "http://x:6480", "--token", "t"])).toMatchObject({
      kind: "drain",
      options: { node: "herd-3", adminUrl: "http://x:6480", token: "t" },
    });
    expect(parseCli(["help", "rebalance"])).toMatchObject({ kind: "help", text: expect.stringContaining("--dry-run") });
  });

  it.each([
    [["drain"], "herd drain takes one node"],
    [["drain", "a", "b"], "herd drain takes one node"],
    [["rebalance", "--strategy", "by_luck"], "--strategy must be by_shard_count or by_disk_size"],
    [["shards", "--dry-run"], "--dry-run is not an option of herd shards"],
    [["rebalance", "extra"], "Unexpected argument"],
  ])("refuses %j", (argv, message) => {
    expect(() => parseCli(argv)).toThrow(message);
  });
});
