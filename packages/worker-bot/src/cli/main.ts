#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { errorMessage, isHerdError } from "@herd/shared";
import { botMain } from "../bot-main.js";
import { parseCli } from "./parse-cli.js";
import { drainCommand, rebalanceCommand, shardsCommand } from "./placement-commands.js";
import { statusCommand } from "./status-command.js";
import { upCommand } from "./up-command.js";

/** The `herd` command. */
async function main(argv: readonly string[]): Promise<number> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const command = parseCli(argv);
    switch (command.kind) {
      case "help":
        say(command.text.trimEnd());
        return 0;
      case "version": {
        const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
          version: string;
        };
        say(`herd ${pkg.version}`);
        return 0;
      }
      case "bot":
        return await botMain();
      case "up":
        return await upCommand(command.options, say);
      case "status":
        return await statusCommand(command.options, say);
      case "shards":
        return await shardsCommand(command.options, say);
      case "rebalance":
        return await rebalanceCommand(command.options, say);
      case "drain":
        return await drainCommand(command.options, say);
    }
  } catch (error) {
    process.stderr.write(`herd: error: ${isHerdError(error) ? error.describe() : errorMessage(error)}\n`);
    return isHerdError(error) && error.sqlState === "22023" ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// Nothing we started may keep the process alive past this point.
process.exit();
