/**
 * One load process of the fault suite: a slice of simulated buyers, each
 * buying one seat after another until told to stop. A purchase round is what
 * a buyer's app does: IssueToken, wait until ACTIVE (GetQueueStatus polls),
 * HoldSeat, ChargeBalance, PayReservation, each write with an idempotency key
 * (HoldSeat only when the generated schema has the field). A call that fails
 * with a retryable code is retried on the OTHER instance with the same key,
 * a bounded number of times. Every attempt is recorded (RPC, instance, code,
 * reason, time, and what an OK answer said) and written to a JSON file for
 * the runner, which does all the judging.
 *
 * Even buyers speak gRPC (grpc-js, HTTP/2), odd ones Connect JSON over
 * HTTP/1.1. Loopback only; every loop is bounded in count and time.
 */
import { writeFileSync } from "node:fs";
import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { HoldSeatRequestSchema, ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { isAmbiguous, isRetryable, TOKEN_LOST_REASONS, type Attempt, type OkResult, type RpcName } from "../lib/attempts";
import { createConnectCaller, createGrpcCaller, describeFailure, type Caller, type Failure } from "./callers";

export interface LoadInput {
  ports: number[];
  /** Global indices of the buyers this process simulates: [from, to). */
  buyers: [number, number];
  /** Buyers over all load processes: seat i of round r is r * totalBuyers + i. */
  totalBuyers: number;
  runId: string;
  concertId: string;
  /** Show dates, ascending; seatsPerDate seats each. */
  dates: string[];
  seatsPerDate: number;
  /** Pause between a buyer's rounds. */
  thinkMs: number;
  /** Deadline of each attempt. */
  callTimeoutMs: number;
  /** Attempts per logical call (the first included). */
  maxAttempts: number;
  /** Wall time one logical call may take over all its attempts. */
  callBudgetMs: number;
  /** GetQueueStatus poll interval while WAITING. */
  pollMs: number;
  /** Longest wait for ACTIVE before the round is given up. */
  activationTimeoutMs: number;
  /** After "stop", rounds in flight may go on this long. */
  stopGraceMs: number;
  /** Epoch ms: nothing runs after this, whatever the runner says. */
  hardStopAt: number;
  /** Where the report goes (JSON). */
  output: string;
}

export interface LoadReport {
  attempts: Attempt[];
  /** How rounds ended, e.g. "bought", "failed at HoldSeat: UNAVAILABLE". */
  outcomes: Record<string, number>;
  holdKeySent: boolean;
  cpuSeconds: number;
}

const input = JSON.parse(process.env.FAULTS_LOAD_INPUT!) as LoadInput;
/** HoldSeatRequest is getting an optional idempotency_key: send it only if this build's schema has it. */
const HOLD_KEY = HoldSeatRequestSchema.fields.some((f) => f.name === "idempotency_key");
const attempts: Attempt[] = [];
const outcomes: Record<string, number> = {};
let stopAt = input.hardStopAt;
let stopping = false;

const stop = () => {
  if (stopping) return;
  stopping = true;
  stopAt = Math.min(stopAt, Date.now() + input.stopGraceMs);
};
process.on("message", (m) => m === "stop" && stop());
process.on("disconnect", stop);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const count = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);

class RoundFailed extends Error {
  constructor(readonly label: string) {
    super(label);
  }
}

interface Buyer {
  index: number;
  userId: string;
  caller: Caller;
  /** Instance tried first; retries alternate. */
  home: number;
  token?: string;
}

type Outcome<O extends DescMessage> =
  | { ok: true; value: MessageShape<O> }
  | { ok: false; failure: Failure /** Some attempt may have been applied. */; ambiguous: boolean; gaveUp: boolean };

/**
 * One logical call: attempts alternate instances (home first), retrying
 * retryable failures with a short backoff, within maxAttempts, the call's
 * budget and the stop time.
 */
async function logical<I extends DescMessage, O extends DescMessage>(
  b: Buyer,
  round: number,
  rpc: RpcName,
  method: DescMethodUnary<I, O>,
  req: MessageInitShape<I>,
  o: { key?: string; token?: string; gated?: boolean; summarize: (v: MessageShape<O>) => OkResult },
): Promise<Outcome<O>> {
  const budgetEnd = Math.min(Date.now() + input.callBudgetMs, stopAt);
  let instance = b.home;
  let ambiguous = false;
  let last: Failure = { code: NOT_ATTEMPTED, message: "the load was stopping" };
  for (let retry = 0; retry < input.maxAttempts && Date.now() < budgetEnd; retry++) {
    const start = Date.now();
    // Every attempt gets the full deadline, also near the budget's or the run's end: a deadline
    // cut short by the harness would read as the server's DEADLINE_EXCEEDED.
    const timeoutMs = input.callTimeoutMs;
    const base = { buyer: b.userId, protocol: b.caller.protocol, rpc, instance, round, retry, key: o.key, token: o.token };
    try {
      const value = await b.caller.call(instance, method, req, { token: o.gated ? o.token : undefined, timeoutMs });
      attempts.push({ ...base, start, end: Date.now(), code: "OK", ok: o.summarize(value) });
      return { ok: true, value };
    } catch (err) {
      last = describeFailure(err);
      attempts.push({ ...base, start, end: Date.now(), code: last.code, reason: last.reason, message: last.message, detail: last.detail });
      if (!isRetryable(last.code, last.reason)) return { ok: false, failure: last, ambiguous, gaveUp: false };
      ambiguous ||= isAmbiguous(last.code, last.reason);
      instance = 1 - instance;
      await sleep(Math.min(1000, 100 * 2 ** retry));
    }
  }
  return { ok: false, failure: last, ambiguous, gaveUp: true };
}

/** The code of a logical call whose attempts never started: the load was told to stop. */
const NOT_ATTEMPTED = "NOT_ATTEMPTED";
const label = (rpc: string, f: Failure) =>
  f.code === NOT_ATTEMPTED ? `interrupted by the end of the load (before ${rpc})` : `failed at ${rpc}: ${f.code}${f.reason ? ` ${f.reason}` : ""}`;
const queueStatus = (s: QueueStatus) => (QueueStatus[s] ?? "UNSPECIFIED") as OkResult["queueStatus"];
const tokenLost = (f: Failure) => !!f.reason && TOKEN_LOST_REASONS.has(f.reason);

/** IssueToken, then poll until ACTIVE; a token the server forgets is re-issued (bounded). */
async function activate(b: Buyer, round: number): Promise<string> {
  for (let issue = 0; issue < 4 && Date.now() < stopAt; issue++) {
    const issued = await logical(
      b,
      round,
      "IssueToken",
      QueueService.method.issueToken,
      { userId: b.userId },
      {
        summarize: (v) => ({ token: v.ticket?.token, queueStatus: queueStatus(v.ticket?.status ?? 0), position: Number(v.ticket?.position ?? 0) }),
      },
    );
    if (!issued.ok) throw new RoundFailed(label("IssueToken", issued.failure));
    const ticket = issued.value.ticket!;
    // Kept only once ACTIVE: a round that gave up waiting must not send its WAITING token to a gated call.
    if (ticket.status === QueueStatus.ACTIVE) {
      b.token = ticket.token;
      return ticket.token;
    }
    const until = Math.min(Date.now() + input.activationTimeoutMs, stopAt);
    let reissue = false;
    // The client goes on with the token the server gave last (it may sign a new one at admission).
    let token = ticket.token;
    while (!reissue && Date.now() < until) {
      await sleep(input.pollMs);
      const sent = token;
      const s = await logical(
        b,
        round,
        "GetQueueStatus",
        QueueService.method.getQueueStatus,
        { token: sent },
        {
          token: sent,
          summarize: (v) => ({ token: v.ticket?.token || sent, queueStatus: queueStatus(v.ticket?.status ?? 0), position: Number(v.ticket?.position ?? 0) }),
        },
      );
      if (s.ok) {
        token = s.value.ticket?.token || token;
        if (s.value.ticket?.status === QueueStatus.ACTIVE) {
          b.token = token;
          return token;
        }
        if (s.value.ticket?.status === QueueStatus.EXPIRED) reissue = true; // the server forgot the place: ask again
      } else if (s.failure.code === "NOT_FOUND" || tokenLost(s.failure)) {
        reissue = true;
      } else {
        throw new RoundFailed(label("GetQueueStatus", s.failure));
      }
    }
    if (!reissue) throw new RoundFailed("not admitted in time");
  }
  throw new RoundFailed("queue token lost repeatedly");
}

/** A gated call; when the server has lost the buyer's token, get a new one and call again (bounded). */
async function gated<I extends DescMessage, O extends DescMessage>(
  b: Buyer,
  round: number,
  rpc: RpcName,
  method: DescMethodUnary<I, O>,
  req: MessageInitShape<I>,
  key: string,
  summarize: (v: MessageShape<O>) => OkResult,
): Promise<Outcome<O>> {
  let res: Outcome<O> | undefined;
  let ambiguous = false;
  for (let renewal = 0; renewal < 4; renewal++) {
    const token = b.token ?? (await activate(b, round));
    res = await logical(b, round, rpc, method, req, { key, token, gated: true, summarize });
    if (res.ok) return res;
    ambiguous ||= res.ambiguous;
    const lost = tokenLost(res.failure) || res.failure.reason === "QUEUE_TOKEN_WAITING";
    if (!lost) return { ...res, ambiguous };
    b.token = undefined;
  }
  return { ...res!, ambiguous } as Outcome<O>;
}

/** After an unanswered HoldSeat, SEAT_UNAVAILABLE may be our own hold: find it among the buyer's reservations. */
async function findOwnHold(b: Buyer, round: number, date: string, seatNumber: number): Promise<{ id: string; amount: number } | undefined> {
  const listed = await logical(
    b,
    round,
    "ListReservations",
    ReservationService.method.listReservations,
    { userId: b.userId, pageSize: 20 },
    {
      summarize: (v) => {
        const r = v.reservations.find((x) => x.date === date && x.seatNumber === seatNumber && x.status === ReservationStatus.HELD);
        return r ? { reservationId: r.reservationId, date, seatNumber, amount: Number(r.amount), reservationStatus: "HELD" } : {};
      },
    },
  );
  if (!listed.ok) return undefined;
  const r = listed.value.reservations.find((x) => x.date === date && x.seatNumber === seatNumber && x.status === ReservationStatus.HELD);
  return r ? { id: r.reservationId, amount: Number(r.amount) } : undefined;
}

async function purchase(b: Buyer, round: number): Promise<void> {
  const seatIndex = round * input.totalBuyers + b.index;
  const date = input.dates[Math.floor(seatIndex / input.seatsPerDate)];
  if (!date) throw new RoundFailed("out of seats");
  const seatNumber = (seatIndex % input.seatsPerDate) + 1;
  const keyOf = (what: string) => `${what}-${input.runId}-${b.userId}-${round}`;

  if (!b.token) await activate(b, round);

  const holdKey = keyOf("hold");
  const holdReq = { concertId: input.concertId, date, seatNumber, ...(HOLD_KEY ? { idempotencyKey: holdKey } : {}) } as MessageInitShape<
    typeof HoldSeatRequestSchema
  >;
  const held = await gated(b, round, "HoldSeat", ReservationService.method.holdSeat, holdReq, holdKey, (v) => ({
    reservationId: v.reservation?.reservationId,
    date: v.reservation?.date,
    seatNumber: v.reservation?.seatNumber,
    amount: Number(v.reservation?.amount ?? 0),
    reservationStatus: ReservationStatus[v.reservation?.status ?? 0],
  }));
  let reservationId: string;
  let amount: number;
  if (held.ok) {
    reservationId = held.value.reservation!.reservationId;
    amount = Number(held.value.reservation!.amount);
  } else if (held.ambiguous && held.failure.reason === "SEAT_UNAVAILABLE") {
    const own = await findOwnHold(b, round, date, seatNumber);
    if (!own) throw new RoundFailed(label("HoldSeat", held.failure));
    count("hold answer lost, found with ListReservations");
    reservationId = own.id;
    amount = own.amount;
  } else {
    throw new RoundFailed(label("HoldSeat", held.failure));
  }

  const chargeKey = keyOf("charge");
  const charged = await logical(
    b,
    round,
    "ChargeBalance",
    WalletService.method.chargeBalance,
    { userId: b.userId, amount: BigInt(amount), idempotencyKey: chargeKey },
    {
      key: chargeKey,
      summarize: (v) => ({ entryId: v.entry?.entryId, amount: Number(v.entry?.amount ?? 0), balance: Number(v.balance) }),
    },
  );
  if (!charged.ok) throw new RoundFailed(label("ChargeBalance", charged.failure));

  const payKey = keyOf("pay");
  const paid = await gated(b, round, "PayReservation", ReservationService.method.payReservation, { reservationId, idempotencyKey: payKey }, payKey, (v) => ({
    reservationId: v.payment?.reservationId,
    paymentId: v.payment?.paymentId,
    amount: Number(v.payment?.amount ?? 0),
    balance: Number(v.balance),
    reservationStatus: ReservationStatus[v.reservation?.status ?? 0],
  }));
  if (!paid.ok) throw new RoundFailed(label("PayReservation", paid.failure));
  b.token = undefined; // a payment ends the token
  count("bought");
}

async function buyer(b: Buyer): Promise<void> {
  for (let round = 0; !stopping && Date.now() < stopAt; round++) {
    try {
      await purchase(b, round);
    } catch (err) {
      if (!(err instanceof RoundFailed)) throw err;
      count(err.label);
      if (err.label === "out of seats") return;
    }
    await sleep(input.thinkMs);
  }
}

async function main(): Promise<void> {
  const ports = input.ports;
  const grpcCaller = createGrpcCaller(ports);
  const connectCaller = createConnectCaller(ports);
  const timer = setTimeout(stop, Math.max(0, input.hardStopAt - Date.now()));
  const [from, to] = input.buyers;
  // The runner times the fault from here: booting this process (tsx) takes seconds on a busy machine.
  process.send?.("ready");
  await Promise.all(
    Array.from({ length: to - from }, (_, k) => {
      const index = from + k;
      const b: Buyer = { index, userId: `fan-${index}`, caller: index % 2 === 0 ? grpcCaller : connectCaller, home: Math.floor(index / 2) % ports.length };
      return buyer(b).catch((err) => count(`crashed: ${String((err as Error)?.message ?? err).slice(0, 120)}`));
    }),
  );
  clearTimeout(timer);
  grpcCaller.close();
  connectCaller.close();
  const cpu = process.cpuUsage();
  const report: LoadReport = { attempts, outcomes, holdKeySent: HOLD_KEY, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  writeFileSync(input.output, JSON.stringify(report));
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
