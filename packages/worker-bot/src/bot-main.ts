import { createLogger, errorMessage, isHerdError } from "@herd/shared";
import { runBot } from "./bot.js";
import { loadBotConfig } from "./bot-config.js";

/**
 * The bot as a process (`herd bot`): the container's entrypoint, and what `herd up` starts once
 * per ordinal. It stops cleanly on SIGTERM/SIGINT, and when started by `herd up` (an IPC channel
 * to the parent) also when that parent goes away, so no bot outlives its cluster.
 */
export async function botMain(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let logger = createLogger("bot");
  try {
    const config = loadBotConfig(env);
    logger = createLogger(`bot ${config.pod.podName}`);
    logger.info("starting", { role: config.role, volume: config.volumeDir, pg_port: config.pgPort });
    const bot = await runBot(config, logger);
    const onSignal = (signal: NodeJS.Signals) => void bot.stop(`received ${signal}`);
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    if (process.send) process.on("disconnect", () => void bot.stop("herd up went away"));
    logger.info("ready", { role: config.role });
    return await bot.done;
  } catch (error) {
    logger.error(isHerdError(error) ? error.describe() : errorMessage(error));
    return 1;
  }
}
