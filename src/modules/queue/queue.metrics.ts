import { Counter, Gauge, type Registry } from "prom-client";
import type { QueueObserver } from "./queue.service.js";

/** Waiting room gauges and counters, updated once per admission round. */
export function createQueueMetrics(registry: Registry, openStreams: () => number): QueueObserver {
  // The line is shared (Redis): every worker reports the same figure, so under WORKERS the primary takes one, not their sum.
  const waiting = new Gauge({ name: "queue_waiting", help: "Tickets waiting in line", registers: [registry], aggregator: "max" });
  const active = new Gauge({ name: "queue_active", help: "Tickets admitted and not expired", registers: [registry], aggregator: "max" });
  new Gauge({
    name: "queue_open_streams",
    help: "WatchQueueStatus streams open on this instance",
    registers: [registry],
    collect() {
      this.set(openStreams());
    },
  });
  const admissions = new Counter({ name: "queue_admissions_total", help: "Tickets admitted by this instance", registers: [registry] });
  const expiries = new Counter({
    name: "queue_expiries_total",
    help: "Tickets ended by this instance, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  const restored = new Counter({
    name: "queue_restored_total",
    help: "Tickets put back from their tokens by this instance after the queue's store lost its data",
    registers: [registry],
  });
  return {
    onRound(r) {
      waiting.set(r.waiting);
      active.set(r.active);
      admissions.inc(r.admitted);
      if (r.expiredActive) expiries.inc({ reason: "active_ttl" }, r.expiredActive);
      if (r.expiredIdleActive) expiries.inc({ reason: "active_idle" }, r.expiredIdleActive);
      if (r.droppedIdle) expiries.inc({ reason: "idle" }, r.droppedIdle);
    },
    onExpiredByPayment() {
      expiries.inc({ reason: "payment" });
    },
    onRestored(count) {
      restored.inc(count);
    },
  };
}
