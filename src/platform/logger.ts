import pino, { type Logger } from "pino";

export type { Logger };

/** JSON lines on stdout. Secrets never reach a log line: see `redact`. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "boxoffice" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ["token", "*.token", "headers['x-queue-token']", "*.headers['x-queue-token']"], censor: "[redacted]" },
    },
    destination,
  );
}
