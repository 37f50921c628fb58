export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(component: string): Logger;
}

/**
 * One line per event: `2026-11-21T20:10:00.000Z INFO  [bot herd-1] registered node_id=3`.
 * Plain text because people read these (herd up's log files, `kubectl logs`). Callers never pass
 * secrets; fields are values, never whole config objects.
 */
export function createLogger(
  component: string,
  options: { level?: LogLevel; write?: (line: string) => void } = {},
): Logger {
  const threshold = LEVEL_ORDER[options.level ?? levelFromEnv()];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LEVEL_ORDER[level] < threshold) return;
    const suffix = fields ? formatFields(fields) : "";
    // one event, one line: a multi-line message (an error's DETAIL and HINT) is folded
    const text = message.replace(/\r?\n/g, " | ");
    write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${component}] ${text}${suffix}`);
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    child: (sub) => createLogger(`${component} ${sub}`, options),
  };
}

function levelFromEnv(): LogLevel {
  const level = process.env.HERD_LOG_LEVEL;
  return level === "debug" || level === "warn" || level === "error" ? level : "info";
}

function formatFields(fields: LogFields): string {
  let out = "";
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = String(value);
    out += ` ${key}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
  }
  return out;
}

/** A short description of any thrown value, for logs. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
