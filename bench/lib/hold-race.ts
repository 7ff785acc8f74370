/**
 * Building blocks of the on-sale seat race (bench/holds.ts, and the
 * on-sale flow and payments benchmarks): a database and a catalog of shows, users made ACTIVE over the real
 * queue RPCs, the seat race over grpc-js, and the winners counted in the
 * database afterwards.
 */
import { Client } from "pg";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { grpc, unary } from "../../test/e2e/grpc-js";
import { runLoad, type LoadResult } from "./load";
import { RpcStats } from "./rpc-stats";

export { createDatabase } from "../../test/harness/services";

export const QUEUE_TOKEN_HEADER = "x-queue-token";
export const SEAT_UNAVAILABLE = "SEAT_UNAVAILABLE";
export const HOLD_LIMIT_REACHED = "HOLD_LIMIT_REACHED";
/** The refusals a HoldSeat racer expects; anything else is an error. */
export const HOLD_REFUSALS: ReadonlySet<string> = new Set([SEAT_UNAVAILABLE, HOLD_LIMIT_REACHED]);
const NO_REFUSALS: ReadonlySet<string> = new Set();

export interface Show {
  concertId: string;
  /** "YYYY-MM-DD", ascending. */
  dates: string[];
  seatsPerDate: number;
  price: number;
}

/**
 * One concert with `dates` consecutive show days of `seatsPerDate` seats each,
 * written with plain SQL in one transaction. The schema must exist (the server
 * migrates on boot). Given a connected client (outside a transaction), it uses
 * it and leaves it open.
 */
export async function seedShow(
  database: string | Client,
  o: { concertId: string; dates: number; seatsPerDate: number; price?: number; firstDate?: string },
): Promise<Show> {
  const price = o.price ?? 121_000;
  const c = typeof database === "string" ? new Client({ connectionString: database }) : database;
  if (c !== database) await c.connect();
  try {
    await c.query("begin");
    await c.query(`insert into concert (id, title, artist, venue) values ($1, $2, 'Bench Artist', 'Bench Arena')`, [o.concertId, `Bench ${o.concertId}`]);
    const dates = await c.query<{ date: string }>(
      `insert into concert_date (concert_id, date, starts_at)
       select $1, d::date, d + interval '10 hours'
       from generate_series($2::date, $2::date + ($3::int - 1), interval '1 day') as d
       returning date::text as date`,
      [o.concertId, o.firstDate ?? "2027-09-01", o.dates],
    );
    await c.query(
      `insert into seat (concert_date_id, seat_number, price)
       select d.id, n, $3 from concert_date d, generate_series(1, $2::int) as n where d.concert_id = $1`,
      [o.concertId, o.seatsPerDate, price],
    );
    await c.query("commit");
    return { concertId: o.concertId, dates: dates.rows.map((r) => r.date).sort(), seatsPerDate: o.seatsPerDate, price };
  } catch (err) {
    await c.query("rollback").catch(() => undefined);
    throw err;
  } finally {
    if (c !== database) await c.end();
  }
}

export interface Activation {
  /** tokens[i] is the ACTIVE token of userIds[i]. */
  tokens: string[];
  issue: LoadResult;
  /** From the first IssueToken until every token polled ACTIVE. */
  seconds: number;
  /** GetQueueStatus calls it took. */
  polls: number;
}

/**
 * Every user calls IssueToken, then polls GetQueueStatus until ACTIVE, over
 * the real RPCs (the server must admit them: QUEUE_MAX_ACTIVE and
 * QUEUE_ADMIT_PER_SECOND high enough). Throws if not all are ACTIVE within `timeoutMs`.
 */
export async function activateUsers(clients: grpc.Client[], userIds: string[], o: { concurrency: number; timeoutMs: number }): Promise<Activation> {
  const started = performance.now();
  const deadline = started + o.timeoutMs;
  const tokens: string[] = new Array(userIds.length);
  const active: boolean[] = new Array(userIds.length).fill(false);
  const issue = await runLoad({
    concurrency: o.concurrency,
    durationMs: o.timeoutMs,
    maxCalls: userIds.length,
    call: async (i): Promise<undefined> => {
      const t = (await unary(clients[i % clients.length], QueueService.method.issueToken, { userId: userIds[i] })).message.ticket!;
      tokens[i] = t.token;
      active[i] = t.status === QueueStatus.ACTIVE;
    },
  });
  if (issue.errors || issue.calls < userIds.length) {
    throw new Error(`IssueToken: ${issue.calls} of ${userIds.length} answered, ${issue.errors} errors (${issue.errorSamples.join("; ")})`);
  }
  let polls = 0;
  for (;;) {
    const pending = active.flatMap((a, i) => (a ? [] : [i]));
    if (pending.length === 0) break;
    if (performance.now() > deadline) throw new Error(`${pending.length} of ${userIds.length} users still not ACTIVE after ${o.timeoutMs} ms`);
    const round = await runLoad({
      concurrency: o.concurrency,
      durationMs: Math.max(1, deadline - performance.now()),
      maxCalls: pending.length,
      call: async (k): Promise<undefined> => {
        const i = pending[k];
        const t = (await unary(clients[i % clients.length], QueueService.method.getQueueStatus, { token: tokens[i] })).message.ticket!;
        tokens[i] = t.token;
        active[i] = t.status === QueueStatus.ACTIVE;
        if (t.status === QueueStatus.EXPIRED) throw new Error(`${userIds[i]}'s token expired while waiting`);
      },
    });
    polls += round.calls;
    if (round.errors) throw new Error(`GetQueueStatus: ${round.errors} errors (${round.errorSamples.join("; ")})`);
    if (active.some((a) => !a)) await new Promise((r) => setTimeout(r, 200));
  }
  return { tokens, issue, seconds: (performance.now() - started) / 1000, polls };
}

/**
 * How a racer picks seats.
 * - "hold": HoldSeat alone, on a seat drawn uniformly from the whole show
 *   (the hold path under the herd, nothing else on the server).
 * - "browse": like a real client, ListAvailableDates, then ListAvailableSeats
 *   of a random listed date, then HoldSeat on a random listed seat.
 */
export type RaceFlow = "hold" | "browse";

export interface RaceOptions {
  clients: grpc.Client[];
  /** One ACTIVE token per user. */
  tokens: string[];
  show: Show;
  flow: RaceFlow;
  /** HoldSeat attempts per user at most; a refused user picks again. */
  tries: number;
  concurrency: number;
  /** Stops starting users after this long. */
  maxMs: number;
}

export interface Grant {
  user: number;
  reservationId: string;
  date: string;
  seatNumber: number;
  /** Since the race started. */
  atMs: number;
}

export interface RaceResult {
  seconds: number;
  /** One call = one user's whole flow. */
  users: LoadResult;
  /** Per RPC: "HoldSeat", "HoldSeat granted", "HoldSeat refused", "ListAvailableDates", "ListAvailableSeats". */
  stats: RpcStats;
  grants: Grant[];
  outcomes: { won: number; refusedOut: number; soldOut: number; limit: number; errored: number; notRun: number };
}

const rand = (n: number) => Math.floor(Math.random() * n);

export async function raceForSeats(o: RaceOptions): Promise<RaceResult> {
  const stats = new RpcStats();
  const grants: Grant[] = [];
  const outcomes = { won: 0, refusedOut: 0, soldOut: 0, limit: 0, errored: 0, notRun: 0 };
  const { show } = o;
  let started = 0;

  const call = <T>(name: string, refusals: ReadonlySet<string>, run: () => Promise<T>) => stats.time(name, refusals, run);

  const userFlow = async (user: number): Promise<"refused" | undefined> => {
    const client = o.clients[user % o.clients.length];
    const meta = () => {
      const m = new grpc.Metadata();
      m.set(QUEUE_TOKEN_HEADER, o.tokens[user]);
      return m;
    };
    try {
      for (let attempt = 0; attempt < o.tries; attempt++) {
        let date: string;
        let seatNumber: number;
        if (o.flow === "hold") {
          date = show.dates[rand(show.dates.length)];
          seatNumber = 1 + rand(show.seatsPerDate);
        } else {
          const dates = await call("ListAvailableDates", NO_REFUSALS, () =>
            unary(client, ConcertService.method.listAvailableDates, { concertId: show.concertId }, meta()),
          );
          const listed = "value" in dates ? dates.value.message.dates : [];
          if (listed.length === 0) {
            outcomes.soldOut++;
            return "refused";
          }
          date = listed[rand(listed.length)].date;
          const seats = await call("ListAvailableSeats", NO_REFUSALS, () =>
            unary(client, ConcertService.method.listAvailableSeats, { concertId: show.concertId, date }, meta()),
          );
          const free = "value" in seats ? seats.value.message.seats : [];
          if (free.length === 0) continue; // the date sold out between the two calls
          seatNumber = free[rand(free.length)].seatNumber;
        }
        const held = await call("HoldSeat", HOLD_REFUSALS, () =>
          unary(client, ReservationService.method.holdSeat, { concertId: show.concertId, date, seatNumber }, meta()),
        );
        if ("value" in held) {
          stats.ok("HoldSeat granted", held.ms);
          const r = held.value.message.reservation!;
          grants.push({ user, reservationId: r.reservationId, date, seatNumber, atMs: performance.now() - started });
          outcomes.won++;
          return;
        }
        stats.refused("HoldSeat refused", held.ms, held.refusal);
        if (held.refusal === HOLD_LIMIT_REACHED) {
          outcomes.limit++;
          return "refused";
        }
      }
      outcomes.refusedOut++;
      return "refused";
    } catch (err) {
      outcomes.errored++;
      throw err;
    }
  };

  started = performance.now();
  const users = await runLoad({ concurrency: o.concurrency, durationMs: o.maxMs, maxCalls: o.tokens.length, call: userFlow });
  outcomes.notRun = o.tokens.length - users.calls - users.errors;
  return { seconds: users.seconds, users, stats, grants, outcomes };
}

export interface WinnerReport {
  seats: number;
  /** Seats by how many live reservations (HELD and unexpired, or CONFIRMED) they have. */
  free: number;
  exactlyOne: number;
  moreThanOne: number;
  maxPerSeat: number;
  /** Seats whose own hold/sale columns disagree with their live reservation (or show a claim with none). */
  seatRowMismatches: number;
  /** Users with more live holds than HOLD_MAX_PER_USER. */
  usersOverLimit: number;
  /** Granted to clients but not a live reservation in the database, and the other way round. */
  grantsMissingInDb: number;
  liveNotGranted: number;
  /** Seats the clients were granted more than once. */
  seatsGrantedTwice: number;
  /**
   * No seat has two winners, no user is over the limit, and every grant a
   * client saw is a live reservation of its seat. (A live hold nobody was told
   * of can follow a client-side error; it is reported, not a violation.)
   */
  ok: boolean;
  examples: string[];
}

/** Counts the winners of every seat of `concertId` in the database and compares them with the grants clients saw. */
export async function checkWinners(databaseUrl: string, concertId: string, grants: Grant[], maxPerUser: number): Promise<WinnerReport> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const seats = await c.query<{ id: string; date: string; seat_number: number; held_by: string | null; hold_live: boolean; sold_by: string | null }>(
      `select s.id::text as id, d.date::text as date, s.seat_number, s.held_by_reservation_id as held_by,
              coalesce(s.hold_expires_at > now(), false) as hold_live, s.sold_reservation_id as sold_by
       from seat s join concert_date d on d.id = s.concert_date_id where d.concert_id = $1`,
      [concertId],
    );
    const live = await c.query<{ id: string; user_id: string; seat_id: string; status: string }>(
      `select r.id, r.user_id, r.seat_id::text as seat_id, r.status
       from reservation r join seat s on s.id = r.seat_id join concert_date d on d.id = s.concert_date_id
       where d.concert_id = $1 and (r.status = 'CONFIRMED' or (r.status = 'HELD' and r.hold_expires_at > now()))`,
      [concertId],
    );
    const bySeat = new Map<string, typeof live.rows>();
    for (const r of live.rows) bySeat.set(r.seat_id, [...(bySeat.get(r.seat_id) ?? []), r]);
    const report: WinnerReport = {
      seats: seats.rowCount ?? 0,
      free: 0,
      exactlyOne: 0,
      moreThanOne: 0,
      maxPerSeat: 0,
      seatRowMismatches: 0,
      usersOverLimit: 0,
      grantsMissingInDb: 0,
      liveNotGranted: 0,
      seatsGrantedTwice: 0,
      ok: false,
      examples: [],
    };
    const example = (s: string) => report.examples.length < 10 && report.examples.push(s);
    for (const s of seats.rows) {
      const winners = bySeat.get(s.id) ?? [];
      report.maxPerSeat = Math.max(report.maxPerSeat, winners.length);
      if (winners.length === 0) report.free++;
      else if (winners.length === 1) report.exactlyOne++;
      else {
        report.moreThanOne++;
        example(`seat ${s.date}#${s.seat_number} has ${winners.length} live reservations: ${winners.map((w) => w.id).join(", ")}`);
      }
      const w = winners.length === 1 ? winners[0] : undefined;
      const agrees = w
        ? w.status === "CONFIRMED"
          ? s.sold_by === w.id
          : s.held_by === w.id && s.hold_live && s.sold_by === null
        : s.sold_by === null && !(s.held_by && s.hold_live);
      if (winners.length <= 1 && !agrees) {
        report.seatRowMismatches++;
        example(`seat ${s.date}#${s.seat_number}: row held_by=${s.held_by} live=${s.hold_live} sold_by=${s.sold_by}, reservation ${w?.id ?? "none"}`);
      }
    }
    const perUser = new Map<string, number>();
    for (const r of live.rows) if (r.status === "HELD") perUser.set(r.user_id, (perUser.get(r.user_id) ?? 0) + 1);
    report.usersOverLimit = [...perUser.values()].filter((n) => n > maxPerUser).length;
    const liveIds = new Set(live.rows.map((r) => r.id));
    const grantedIds = new Set(grants.map((g) => g.reservationId));
    report.grantsMissingInDb = [...grantedIds].filter((id) => !liveIds.has(id)).length;
    report.liveNotGranted = [...liveIds].filter((id) => !grantedIds.has(id)).length;
    const grantedSeats = new Map<string, number>();
    for (const g of grants) grantedSeats.set(`${g.date}#${g.seatNumber}`, (grantedSeats.get(`${g.date}#${g.seatNumber}`) ?? 0) + 1);
    report.seatsGrantedTwice = [...grantedSeats.values()].filter((n) => n > 1).length;
    report.ok =
      report.moreThanOne === 0 &&
      report.seatRowMismatches === 0 &&
      report.usersOverLimit === 0 &&
      report.grantsMissingInDb === 0 &&
      report.seatsGrantedTwice === 0;
    return report;
  } finally {
    await c.end();
  }
}
