import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import type { Logger } from "../../platform/logger.js";
import { expireStaleHolds } from "./seat-hold.service.js";

/**
 * Marks lapsed holds EXPIRED in the background, for tidy rows and reports.
 * Correctness never waits for it: every read and write compares hold expiry
 * with the clock. Safe on every instance at once (rows in use are skipped).
 */
export function startHoldSweeper(
  em: () => EntityManager,
  clock: Clock,
  intervalMs: number,
  log: Logger,
  onSwept: (expired: number) => void = () => undefined,
): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const run = async () => {
    try {
      for (;;) {
        const { expired } = await expireStaleHolds(em(), clock);
        if (expired) onSwept(expired);
        if (expired < 500) break;
      }
    } catch (err) {
      log.warn({ err }, "hold sweep failed; will try again");
    }
  };
  const timer = setInterval(() => {
    running ??= run().finally(() => (running = undefined));
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
