/**
 * The catalog cache: hits cost no query, a herd of misses costs one, answers
 * age out after the TTL by the injected clock, and this instance's own writes
 * drop what they change. Queries are counted on the ORM's one connection.
 */
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { createCatalogCache, createReadCache, type CatalogCache } from "../../src/modules/concert/catalog-cache";
import { registerConcertRoutes } from "../../src/modules/concert/concert.routes";
import { holdSeat } from "../../src/modules/reservation/seat-hold.service";
import { ManualClock } from "../../src/platform/clock";
import { createLocalLocks } from "../../src/platform/locks";
import { CONCERT, DATE, openSeededDatabase, type SeededDatabase } from "../reservation/support";

const TTL_MS = 1000;

describe("read cache", () => {
  const clock = new ManualClock();
  const deferred = <T>() => {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };

  test("a hit within the TTL does not load; at the TTL it loads again", async () => {
    const cache = createReadCache<string, number>(clock, TTL_MS);
    let loads = 0;
    const load = async () => ++loads;
    expect(await cache.get("a", load)).toBe(1);
    clock.advance(TTL_MS - 1);
    expect(await cache.get("a", load)).toBe(1);
    expect(await cache.get("b", load)).toBe(2); // keys apart
    clock.advance(1);
    expect(await cache.get("a", load)).toBe(3);
    expect(loads).toBe(3);
  });

  test("concurrent misses share one load", async () => {
    const cache = createReadCache<string, number>(clock, TTL_MS);
    const gate = deferred<number>();
    let loads = 0;
    const calls = Array.from({ length: 50 }, () =>
      cache.get("a", () => {
        loads++;
        return gate.promise;
      }),
    );
    gate.resolve(7);
    expect(await Promise.all(calls)).toEqual(Array(50).fill(7));
    expect(loads).toBe(1);
  });

  test("a failed load is shared by its waiters but not kept", async () => {
    const cache = createReadCache<string, number>(clock, TTL_MS);
    const gate = deferred<number>();
    const first = cache.get("a", () => gate.promise);
    const second = cache.get("a", async () => 99);
    gate.reject(new Error("database down"));
    await expect(first).rejects.toThrow("database down");
    await expect(second).rejects.toThrow("database down");
    expect(await cache.get("a", async () => 5)).toBe(5);
  });

  test("an invalidation during a load: its waiters get their answer, later callers load afresh, and the old answer is never kept", async () => {
    const cache = createReadCache<string, string>(clock, TTL_MS);
    const old = deferred<string>();
    const before = cache.get("a", () => old.promise);
    cache.invalidate("a");
    const after = cache.get("a", async () => "new");
    old.resolve("old");
    expect(await before).toBe("old");
    expect(await after).toBe("new");
    expect(await cache.get("a", async () => "unexpected")).toBe("new");
    cache.invalidate();
    expect(await cache.get("a", async () => "newer")).toBe("newer");
  });

  test("TTL 0 loads every time", async () => {
    const cache = createReadCache<string, number>(clock, 0);
    let loads = 0;
    await Promise.all([cache.get("a", async () => ++loads), cache.get("a", async () => ++loads)]);
    await cache.get("a", async () => ++loads);
    expect(loads).toBe(3);
  });
});

describe("ListConcerts and ListAvailableDates over the real database", () => {
  let s: SeededDatabase;
  const clock = new ManualClock();
  let catalog: CatalogCache;
  let concerts: Client<typeof ConcertService>;
  let queries = 0;

  beforeAll(async () => {
    s = await openSeededDatabase();
    // Every statement of every fork goes through the one driver connection.
    const connection = s.orm.em.getConnection();
    const execute = connection.execute.bind(connection);
    connection.execute = ((...args: Parameters<typeof execute>) => {
      queries++;
      return execute(...args);
    }) as typeof connection.execute;
    catalog = createCatalogCache(clock, TTL_MS);
    concerts = createClient(
      ConcertService,
      createRouterTransport((router) => registerConcertRoutes(router, { em: () => s.orm.em.fork(), clock, catalog })),
    );
  });
  afterAll(() => s?.close());

  const counted = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const before = queries;
    const result = await fn();
    return [result, queries - before];
  };
  const freeOn = async (date: string) => (await concerts.listAvailableDates({ concertId: CONCERT })).dates.find((d) => d.date === date)?.availableSeats;

  test("the concert list: one query, then none until the TTL has passed", async () => {
    const [first, cost] = await counted(() => concerts.listConcerts({}));
    expect(first.concerts).toHaveLength(4);
    expect(cost).toBe(1);
    const [again, hitCost] = await counted(() => concerts.listConcerts({}));
    expect(again).toEqual(first);
    expect(hitCost).toBe(0);
    clock.advance(TTL_MS);
    expect((await counted(() => concerts.listConcerts({})))[1]).toBe(1);
  });

  test("a herd of ListAvailableDates costs what one call costs", async () => {
    clock.advance(TTL_MS);
    catalog.seatsChanged();
    const [, one] = await counted(() => concerts.listAvailableDates({ concertId: CONCERT }));
    expect(one).toBeGreaterThan(0);
    clock.advance(TTL_MS);
    const [answers, herd] = await counted(() => Promise.all(Array.from({ length: 100 }, () => concerts.listAvailableDates({ concertId: CONCERT }))));
    expect(herd).toBe(one);
    expect(new Set(answers.map((a) => JSON.stringify(a.dates.map((d) => [d.date, d.availableSeats])))).size).toBe(1);
    expect((await counted(() => concerts.listAvailableDates({ concertId: CONCERT })))[1]).toBe(0);
  });

  test("a hold shows at once after seatsChanged, and within the TTL without it", async () => {
    clock.advance(TTL_MS);
    expect(await freeOn(DATE)).toBe(50);
    const locks = createLocalLocks(() => clock.now().getTime());
    const hold = (seatNumber: number) =>
      holdSeat(s.orm.em.fork(), locks, clock, s.config.hold, { userId: "alice", concertId: CONCERT, date: DATE, seatNumber }, { useLock: false });

    await hold(1);
    expect(await freeOn(DATE)).toBe(50); // cached, and nobody said
    catalog.seatsChanged(CONCERT);
    expect(await freeOn(DATE)).toBe(49);

    await hold(2);
    catalog.seatsChanged("another-concert");
    expect(await freeOn(DATE)).toBe(49); // another concert's change keeps this one
    clock.advance(TTL_MS);
    expect(await freeOn(DATE)).toBe(48); // the staleness bound
  });

  test("seat lists are never cached", async () => {
    const [, first] = await counted(() => concerts.listAvailableSeats({ concertId: CONCERT, date: DATE }));
    const [, second] = await counted(() => concerts.listAvailableSeats({ concertId: CONCERT, date: DATE }));
    expect(first).toBe(1);
    expect(second).toBe(1);
  });

  test("an unknown concert is not kept: NOT_FOUND every time, each from the database", async () => {
    const [, first] = await counted(() => concerts.listAvailableDates({ concertId: "no-such-concert" }).catch(() => undefined));
    const [, second] = await counted(() => concerts.listAvailableDates({ concertId: "no-such-concert" }).catch(() => undefined));
    expect(first).toBeGreaterThan(0);
    expect(second).toBe(first);
  });
});
