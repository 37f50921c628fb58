export { type RunningBot, runBot } from "./bot.js";
export { type BotConfig, loadBotConfig } from "./bot-config.js";
export { botMain } from "./bot-main.js";
export * from "./postgres/index.js";
export { claimVolume, type VolumeIdentity } from "./volume-identity.js";
export { ProbeServer } from "./worker/probe-server.js";
export { Registrar, type RegistrarOptions } from "./worker/registrar.js";
