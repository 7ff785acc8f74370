/**
 * ListReservations paging over a real database: the service's keyset cursor
 * on (created_at, id), and the handler in memory with the validation and
 * error interceptors and a stand-in for authentication that puts the
 * principal in the context (acting user, page bounds, bad tokens).
 */
import { randomUUID } from "node:crypto";
import { Code, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { Seat } from "../../src/modules/concert/seat.entity";
import { Reservation } from "../../src/modules/reservation/reservation.entity";
import { listReservations } from "../../src/modules/reservation/reservation.service";
import { createPayReservationHandler } from "../../src/modules/payment/payment.routes";
import { registerReservationRoutes } from "../../src/modules/reservation/reservation.routes";
import { ManualClock } from "../../src/platform/clock";
import { principalKey } from "../../src/rpc/context";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { openSeededDatabase, quietLog, rejection, routeDeps, type SeededDatabase } from "./support";

let s: SeededDatabase;
const clock = new ManualClock();
const em = () => s.orm.em.fork();
let seatIds: number[];

/** Stands in for authentication: `x-test-sub` (and `x-test-scope`) make a verified caller; without them, AUTH_MODE=none. */
const fakeAuth: Interceptor = (next) => async (req) => {
  const sub = req.header.get("x-test-sub");
  const scope = req.header.get("x-test-scope");
  req.contextValues.set(principalKey, sub ? { kind: "user", userId: sub, scopes: new Set(scope ? [scope] : []) } : { kind: "anonymous", trusted: true });
  return next(req);
};
const as = (sub: string, scope?: string) => ({ headers: { "x-test-sub": sub, ...(scope ? { "x-test-scope": scope } : {}) } });

let client: ReturnType<typeof createClient<typeof ReservationService>>;

beforeAll(async () => {
  s = await openSeededDatabase();
  seatIds = (await em().find(Seat, {}, { fields: ["id"], orderBy: { id: "asc" }, limit: 10 })).map((x) => x.id);
  const deps = routeDeps(s, clock);
  const transport = createRouterTransport((router) => registerReservationRoutes(router, deps, createPayReservationHandler(deps)), {
    router: { interceptors: [createErrorInterceptor(quietLog), fakeAuth, createValidateInterceptor()] },
  });
  client = createClient(ReservationService, transport);
});
afterAll(() => s?.close());

/**
 * Writes `n` past reservations for `userId`, taken at `at` (all at the same
 * instant unless `stepMs` spreads them), and returns their ids newest first.
 */
async function seed(userId: string, n: number, at: Date, stepMs = 0): Promise<string[]> {
  const rows = Array.from({ length: n }, (_, i) => ({
    id: randomUUID(),
    userId,
    seat: seatIds[i % seatIds.length],
    amount: 1000,
    status: "CANCELLED" as const,
    holdExpiresAt: new Date(at.getTime() + i * stepMs + 60_000),
    createdAt: new Date(at.getTime() + i * stepMs),
    confirmedAt: null,
  }));
  await em().insertMany(Reservation, rows);
  return rows.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).map((r) => r.id);
}

async function pageThrough(userId: string, pageSize: number): Promise<{ pages: string[][]; tokens: string[] }> {
  const pages: string[][] = [];
  const tokens: string[] = [];
  let token = "";
  do {
    const page = await client.listReservations({ userId, pageSize, pageToken: token });
    pages.push(page.reservations.map((r) => r.reservationId));
    tokens.push(page.nextPageToken);
    token = page.nextPageToken;
  } while (token && pages.length < 50);
  return { pages, tokens };
}

test("pages of 2 across 5 reservations, newest first; the last page has no token", async () => {
  const ids = await seed("pager", 5, new Date("2027-01-01T00:00:00Z"), 1000);
  const { pages, tokens } = await pageThrough("pager", 2);
  expect(pages).toEqual([ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
  expect(tokens[0]).not.toBe("");
  expect(tokens[1]).not.toBe("");
  expect(tokens[2]).toBe("");
  // Opaque: nothing in the token reads as a timestamp or an id.
  expect(tokens[0]).not.toContain(ids[1]);
});

test("reservations taken at the same instant page by id, none repeated or skipped", async () => {
  const ids = await seed("same-instant", 5, new Date("2027-01-02T00:00:00Z"));
  const { pages } = await pageThrough("same-instant", 2);
  expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
  expect(pages.flat()).toEqual(ids);
});

test("a reservation taken while paging neither shifts nor repeats the later pages", async () => {
  const ids = await seed("busy", 5, new Date("2027-01-03T00:00:00Z"), 1000);
  const first = await client.listReservations({ userId: "busy", pageSize: 2 });
  const [newer] = await seed("busy", 1, new Date("2027-01-04T00:00:00Z"));
  // One taken at the same instant as the last row of the first page: ordered by id it may land on either side.
  const [tied] = await seed("busy", 1, new Date("2027-01-03T00:00:03Z"));
  const rest: string[] = [];
  let token = first.nextPageToken;
  while (token) {
    const page = await client.listReservations({ userId: "busy", pageSize: 2, pageToken: token });
    rest.push(...page.reservations.map((r) => r.reservationId));
    token = page.nextPageToken;
  }
  const seen = [...first.reservations.map((r) => r.reservationId), ...rest];
  expect(seen).not.toContain(newer);
  expect(new Set(seen).size).toBe(seen.length);
  expect(seen.filter((id) => id !== tied)).toEqual(ids);
  expect(seen.includes(tied)).toBe(tied < first.reservations[1].reservationId);
});

test("page_size 0 means 20; at most 100 a page", async () => {
  const ids = await seed("many", 105, new Date("2027-01-05T00:00:00Z"), 10);
  const byDefault = await client.listReservations({ userId: "many" });
  expect(byDefault.reservations.map((r) => r.reservationId)).toEqual(ids.slice(0, 20));
  expect(byDefault.nextPageToken).not.toBe("");

  const full = await client.listReservations({ userId: "many", pageSize: 100 });
  expect(full.reservations).toHaveLength(100);
  const last = await client.listReservations({ userId: "many", pageSize: 100, pageToken: full.nextPageToken });
  expect(last.reservations.map((r) => r.reservationId)).toEqual(ids.slice(100));
  expect(last.nextPageToken).toBe("");

  expect(await rejection(client.listReservations({ userId: "many", pageSize: 101 }))).toMatchObject({ code: Code.InvalidArgument });
  expect(await rejection(client.listReservations({ userId: "many", pageSize: -1 }))).toMatchObject({ code: Code.InvalidArgument });
  // The service caps on its own too, whatever a caller past validation asks for.
  expect((await listReservations(em(), clock, "many", 1000, "")).reservations).toHaveLength(100);
});

test("a page token this server did not issue is INVALID_ARGUMENT (INVALID_PAGE_TOKEN)", async () => {
  await seed("tokens", 3, new Date("2027-01-06T00:00:00Z"), 1000);
  const { nextPageToken } = await client.listReservations({ userId: "tokens", pageSize: 1 });
  const forged = [
    "bm9wZQ", // "nope"
    "not base64 at all!",
    Buffer.from("r1:1798761600000:not-a-uuid").toString("base64url"),
    Buffer.from(`r1:abc:${randomUUID()}`).toString("base64url"),
    nextPageToken.slice(0, -4),
  ];
  for (const pageToken of forged) {
    expect(await rejection(client.listReservations({ userId: "tokens", pageToken }))).toEqual({ code: Code.InvalidArgument, reason: "INVALID_PAGE_TOKEN" });
  }
  // Longer than any token the server issues: refused by validation before any work.
  expect(await rejection(client.listReservations({ userId: "tokens", pageToken: "a".repeat(257) }))).toMatchObject({ code: Code.InvalidArgument });
});

test("the acting user: the caller by default, another user only with boxoffice:service", async () => {
  const mine = await seed("alice", 2, new Date("2027-01-07T00:00:00Z"), 1000);
  const theirs = await seed("bob", 1, new Date("2027-01-07T00:00:00Z"));

  const own = await client.listReservations({}, as("alice"));
  expect(own.reservations.map((r) => r.reservationId)).toEqual(mine);
  expect(own.reservations.every((r) => r.userId === "alice")).toBe(true);
  expect((await client.listReservations({ userId: "alice" }, as("alice"))).reservations).toHaveLength(2);

  expect(await rejection(client.listReservations({ userId: "bob" }, as("alice")))).toEqual({ code: Code.PermissionDenied, reason: "USER_MISMATCH" });
  const forBob = await client.listReservations({ userId: "bob" }, as("support-desk", "boxoffice:service"));
  expect(forBob.reservations.map((r) => r.reservationId)).toEqual(theirs);

  // AUTH_MODE=none trusts the request, so it must say whose.
  expect(await rejection(client.listReservations({}))).toEqual({ code: Code.InvalidArgument, reason: "USER_ID_REQUIRED" });
  // A user_id that is set is still validated.
  expect(await rejection(client.listReservations({ userId: "-bad id" }, as("alice")))).toMatchObject({ code: Code.InvalidArgument });
});
