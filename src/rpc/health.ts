import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { EventEmitter, on } from "node:events";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

export { Status as ServingStatus };

/**
 * Serving status per service name ("" is the whole server), as
 * grpc.health.v1 reports it. Shutdown flips everything to NOT_SERVING so load
 * balancers stop routing here before the listener closes.
 */
export class HealthState {
  private readonly statuses = new Map<string, Status>();
  private readonly changes = new EventEmitter();

  constructor(services: string[]) {
    this.changes.setMaxListeners(0);
    for (const s of ["", ...services]) this.statuses.set(s, Status.SERVING);
  }

  get(service: string): Status | undefined {
    return this.statuses.get(service);
  }

  all(): ReadonlyMap<string, Status> {
    return this.statuses;
  }

  setAll(status: Status): void {
    for (const s of this.statuses.keys()) this.statuses.set(s, status);
    this.changes.emit("change");
  }

  /** Yields the status of `service` now and after every change, until `signal` aborts. */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<Status> {
    const changes = on(this.changes, "change", { signal });
    let last: Status | undefined;
    try {
      for (;;) {
        const now = this.get(service) ?? Status.SERVICE_UNKNOWN;
        if (now !== last) {
          last = now;
          yield now;
        }
        await changes.next();
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
}

/** Ends a server stream the way a draining server should: UNAVAILABLE, so clients reconnect elsewhere. */
export function drainedError(): ConnectError {
  return new ConnectError("server is shutting down", Code.Unavailable);
}

export function registerHealth(router: ConnectRouter, state: HealthState, draining: AbortSignal): void {
  router.service(Health, {
    check(req) {
      const status = state.get(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status };
    },
    list() {
      return { statuses: Object.fromEntries([...state.all()].map(([name, status]) => [name, { status }])) };
    },
    async *watch(req, ctx) {
      for await (const status of state.watch(req.service, AbortSignal.any([ctx.signal, draining]))) yield { status };
      if (draining.aborted) throw drainedError();
    },
  });
}
