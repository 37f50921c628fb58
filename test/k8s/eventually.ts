import { sleep } from "@herd/shared";

/**
 * Retries `check` until it returns without throwing, and returns its value; after `timeoutMs` the
 * last error is thrown (so a failing test says what it last saw).
 */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 30_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(intervalMs);
    }
  }
}
