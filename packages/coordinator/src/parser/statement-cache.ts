import { loadModule, type ParseResult, parseSync } from "libpg-query";

export type ParsedStatement =
  | { readonly ok: true; readonly tree: ParseResult }
  | { readonly ok: false; readonly message: string; readonly position: number | undefined };

let loaded: Promise<void> | undefined;

/** Loads the parser's WebAssembly module once per process; parsing is synchronous after it. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

/**
 * Parse trees by statement text, least recently used out first. Clients repeat the same
 * statements (prepared statements, ORMs, pgbench), and a parse costs ~25 µs while a hit costs a
 * map lookup. Texts longer than `maxTextLength` are parsed but not kept.
 */
export class StatementCache {
  private readonly entries = new Map<string, ParsedStatement>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly capacity = 4096,
    private readonly maxTextLength = 16 * 1024,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  parse(sql: string): ParsedStatement {
    const cached = this.entries.get(sql);
    if (cached) {
      this.hits += 1;
      // refresh its place in the LRU order
      this.entries.delete(sql);
      this.entries.set(sql, cached);
      return cached;
    }
    this.misses += 1;
    const parsed = parseNow(sql);
    if (sql.length <= this.maxTextLength) {
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(sql, parsed);
    }
    return parsed;
  }
}

function parseNow(sql: string): ParsedStatement {
  try {
    return { ok: true, tree: parseSync(sql) };
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    return {
      ok: false,
      message: details?.message ?? (error as Error).message,
      position: details?.cursorPosition === undefined ? undefined : details.cursorPosition + 1,
    };
  }
}
