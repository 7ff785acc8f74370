/**
 * One load process of the on-sale scenario: simulates a slice of the users,
 * each doing what a buyer's app does — join the queue, watch it until
 * admitted, list dates and seats, try to hold a seat, charge and pay — over
 * classic gRPC (@grpc/grpc-js). Reports raw latencies and outcomes to the
 * parent (process.send) and exits. Targets 127.0.0.1 only; every loop is
 * bounded by attempts and by the deadline.
 */
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { asConnectError, grpc, serverStream, unary } from "../../test/e2e/grpc-js";

export interface WorkerInput {
  ports: number[];
  users: [number, number];
  concertId: string;
  deadline: number;
  maxHoldAttempts: number;
  /** The servers' QUEUE_ACTIVE_TTL: an ACTIVE ticket's expiry minus this is when it was admitted. */
  activeTtlMs: number;
}

export interface WorkerReport {
  latencies: Record<string, number[]>;
  refusals: Record<string, number>;
  errors: Record<string, number>;
  outcomes: Record<string, number>;
  /** IssueToken sent -> ACTIVE seen, ms. */
  queueWaits: number[];
  /** Admission (server side) -> ACTIVE seen on the stream, ms. Same machine, same clock. */
  activationLags: number[];
  /** CPU this load process used (it exits right after reporting, so nobody can read it later). */
  cpuSeconds: number;
}

const input = JSON.parse(process.env.ONSALE_INPUT!) as WorkerInput;
const report: WorkerReport = { latencies: {}, refusals: {}, errors: {}, outcomes: {}, queueWaits: [], activationLags: [], cpuSeconds: 0 };
let soldOut = false;
const openStreams = new Set<grpc.ClientReadableStream<unknown>>();
process.on("message", (m) => {
  if (m === "sold-out") {
    soldOut = true;
    for (const s of openStreams) s.cancel();
  }
});

// Several connections per instance, so thousands of streams are not all on one HTTP/2 session.
const clients = input.ports.map((port) =>
  Array.from(
    { length: 4 },
    (_, i) => new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "onsale.conn": i }),
  ),
);

const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

class Refused extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Times one call under its RPC name; expected refusals (FAILED_PRECONDITION with a reason) become Refused. */
async function call<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    const r = await fn();
    report.latencies[name] ??= [];
    report.latencies[name].push(performance.now() - t);
    return r;
  } catch (err) {
    report.latencies[name] ??= [];
    report.latencies[name].push(performance.now() - t);
    let reason: string | undefined;
    try {
      const ce = asConnectError(err);
      if (ce.code === 9 /* FAILED_PRECONDITION */) reason = ce.findDetails(ErrorInfoSchema)[0]?.reason;
    } catch {
      /* not a gRPC status */
    }
    if (reason) {
      count(report.refusals, `${name}:${reason}`);
      throw new Refused(reason);
    }
    count(report.errors, `${name}:${String((err as Error).message).slice(0, 120)}`);
    throw err;
  }
}

function waitUntilActive(client: grpc.Client, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const stream = serverStream(client, QueueService.method.watchQueueStatus, { token });
    openStreams.add(stream);
    const done = (ok: boolean) => {
      openStreams.delete(stream);
      stream.cancel();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), Math.max(0, input.deadline - Date.now()));
    stream.on("data", (m: { ticket?: { status: QueueStatus; expiresAt?: { seconds: bigint; nanos: number } } }) => {
      if (m.ticket?.status === QueueStatus.ACTIVE) {
        const exp = m.ticket.expiresAt;
        if (exp) report.activationLags.push(Date.now() - (Number(exp.seconds) * 1000 + exp.nanos / 1e6 - input.activeTtlMs));
        clearTimeout(timer);
        done(true);
      } else if (m.ticket?.status === QueueStatus.EXPIRED) {
        clearTimeout(timer);
        done(false);
      }
    });
    stream.on("error", () => {
      clearTimeout(timer);
      done(false);
    });
  });
}

async function buyer(i: number): Promise<void> {
  const userId = `fan-${i}`;
  const client = clients[i % clients.length][Math.floor(i / clients.length) % 4];
  const started = performance.now();
  const issued = await call("IssueToken", () => unary(client, QueueService.method.issueToken, { userId }));
  const ticket = issued.message.ticket!;
  if (ticket.status !== QueueStatus.ACTIVE && !(await waitUntilActive(client, ticket.token))) {
    count(report.outcomes, soldOut ? "still waiting at sell-out" : "not admitted before the deadline");
    return;
  }
  report.queueWaits.push(performance.now() - started);
  const md = new grpc.Metadata();
  md.set("x-queue-token", ticket.token);
  for (let attempt = 0; attempt < input.maxHoldAttempts && Date.now() < input.deadline; attempt++) {
    const { dates } = (await call("ListAvailableDates", () => unary(client, ConcertService.method.listAvailableDates, { concertId: input.concertId }, md)))
      .message;
    const open = dates.filter((d) => d.availableSeats > 0);
    if (open.length === 0) {
      count(report.outcomes, "admitted, found it sold out");
      return;
    }
    const date = open[Math.floor(Math.random() * open.length)].date;
    const { seats } = (
      await call("ListAvailableSeats", () => unary(client, ConcertService.method.listAvailableSeats, { concertId: input.concertId, date }, md))
    ).message;
    if (seats.length === 0) continue;
    const seat = seats[Math.floor(Math.random() * seats.length)];
    let reservationId: string;
    try {
      const held = await call("HoldSeat", () =>
        unary(client, ReservationService.method.holdSeat, { concertId: input.concertId, date, seatNumber: seat.seatNumber }, md),
      );
      reservationId = held.message.reservation!.reservationId;
    } catch (err) {
      if (err instanceof Refused) continue; // someone else was faster: try another seat
      throw err;
    }
    await call("ChargeBalance", () => unary(client, WalletService.method.chargeBalance, { userId, amount: seat.price, idempotencyKey: `topup-${userId}` }));
    await call("PayReservation", () => unary(client, ReservationService.method.payReservation, { reservationId, idempotencyKey: `pay-${reservationId}` }, md));
    count(report.outcomes, "bought a seat");
    return;
  }
  count(report.outcomes, "gave up after repeated refusals");
}

async function main() {
  const [from, to] = input.users;
  await Promise.all(
    Array.from({ length: to - from }, (_, k) =>
      buyer(from + k).catch((err) => {
        if (!(err instanceof Refused)) count(report.outcomes, "failed with an error");
        else count(report.outcomes, `refused: ${err.reason}`);
      }),
    ),
  );
  for (const c of clients.flat()) c.close();
  const cpu = process.cpuUsage();
  report.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  process.send!(report, () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
