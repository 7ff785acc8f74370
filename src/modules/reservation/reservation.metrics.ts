import { Counter, Gauge, type Registry } from "prom-client";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import type { LockOutcome } from "./seat-hold.service.js";

export interface ReservationMetrics {
  granted(lock: LockOutcome): void;
  /** A HoldSeat answered with a hold made earlier (a keyed retry, or a seat the caller holds already). */
  answeredExisting(): void;
  refused(reason: string): void;
  swept(expired: number): void;
}

/** Holds granted and refused, lock outcomes, and the seats under a live hold (read at scrape time). */
export function createReservationMetrics(registry: Registry, em: () => EntityManager, clock: Clock): ReservationMetrics {
  const granted = new Counter({ name: "holds_granted_total", help: "Seat holds granted", registers: [registry] });
  const refused = new Counter({
    name: "holds_refused_total",
    help: "Seat holds refused, by reason (SEAT_UNAVAILABLE, HOLD_LIMIT_REACHED, ...)",
    labelNames: ["reason"],
    registers: [registry],
  });
  const locks = new Counter({
    name: "hold_locks_total",
    help: "Seat-lock outcomes of granted holds: acquired, unavailable (Redis down: the database guard alone decided), contended (a keyed retry met a lease and the database guard decided), skipped",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const existing = new Counter({
    name: "holds_answered_existing_total",
    help: "HoldSeat calls answered with a hold made earlier: a retry with the same idempotency key, or a seat the caller already holds",
    registers: [registry],
  });
  const expired = new Counter({ name: "holds_expired_swept_total", help: "Lapsed holds marked EXPIRED by the sweeper", registers: [registry] });
  new Gauge({
    name: "seats_held",
    help: "Seats under an unexpired hold (all instances; read from the database at scrape time)",
    registers: [registry],
    // Every worker reads the same shared figure: under WORKERS, one of them is the answer, not their sum.
    aggregator: "max",
    async collect() {
      const [row] = await em().execute<{ n: number }[]>(
        `select count(*)::int as n from seat where held_by_reservation_id is not null and hold_expires_at > ?`,
        [clock.now()],
      );
      this.set(row.n);
    },
  });
  return {
    granted(lock) {
      granted.inc();
      locks.inc({ outcome: lock });
    },
    answeredExisting() {
      existing.inc();
    },
    refused(reason) {
      refused.inc({ reason });
    },
    swept(n) {
      expired.inc(n);
    },
  };
}
