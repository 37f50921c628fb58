import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where `pnpm build` leaves the guard (shell-guard/build.sh), next to this package's dist/. */
const BUILT_GUARD = fileURLToPath(new URL("../../shell-guard/build/herd_shell_guard.so", import.meta.url));

/**
 * The library the coordinator's PostgreSQL preloads so that a statement reaching a distributed
 * table's empty shell behind herd's back (a trigger, a default, dynamic SQL in a function) fails
 * instead of reading no rows (shell-guard/herd_shell_guard.c). `HERD_SHELL_GUARD` names it (a
 * path, or a library name in PostgreSQL's lib directory as in the container image; empty turns it
 * off); else the one `pnpm build` made, when there is one.
 */
export function shellGuardLibrary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HERD_SHELL_GUARD !== undefined) return env.HERD_SHELL_GUARD || undefined;
  return existsSync(BUILT_GUARD) ? BUILT_GUARD : undefined;
}

/** `settings` with the guard added to shared_preload_libraries (after any the user asked for). */
export function withShellGuard(
  settings: Readonly<Record<string, string>>,
  library: string | undefined,
): Readonly<Record<string, string>> {
  if (!library) return settings;
  const preload = settings.shared_preload_libraries?.trim();
  return { ...settings, shared_preload_libraries: preload ? `${preload},${library}` : library };
}
