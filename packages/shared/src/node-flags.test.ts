import { describe, expect, it } from "vitest";
import { NODE_FLAGS, nodeExecArgv } from "./node-flags.js";

describe("nodeExecArgv", () => {
  it("keeps this process's flags and adds herd's", () => {
    expect(nodeExecArgv(["--inspect=0"], undefined)).toEqual(["--inspect=0", ...NODE_FLAGS]);
  });

  it("leaves out a flag the user set on the command line or in NODE_OPTIONS", () => {
    expect(nodeExecArgv(["--max-semi-space-size=16"], undefined)).toEqual(["--max-semi-space-size=16"]);
    expect(nodeExecArgv([], "--enable-source-maps --max-semi-space-size=8")).toEqual([]);
  });
});
