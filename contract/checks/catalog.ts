/** The catalog: concerts need no token; dates and seats do. */
import { Code } from "@connectrpc/connect";
import { expect, rpc, type Ctx } from "../context.js";
import { expectRefusal } from "../refusal.js";
import { skip } from "../report.js";
import type { Msg } from "../session.js";

export interface Show {
  concertId: string;
  date: string;
  /** Free seats, in a random order so that runs against one server pick different seats. */
  seats: Msg[];
}

export async function listConcerts(ctx: Ctx): Promise<string | undefined> {
  const { s, report, image } = ctx;
  return report.check("ListConcerts: the concerts on sale, without a queue token", async () => {
    const concerts = (await s.unary(rpc(image, "concert", "ListConcerts"), {})).concerts as Msg[];
    expect(concerts.length > 0, "no concerts: the kit needs a catalog (SEED_DEMO_CATALOG=true)");
    for (const c of concerts) expect(c.concertId && c.title, "a concert without id or title");
    return concerts[Math.floor(Math.random() * concerts.length)].concertId as string;
  });
}

export async function catalogChecks(ctx: Ctx, token: string | undefined, concertId: string | undefined): Promise<Show | undefined> {
  const { s, report, image } = ctx;
  const datesRpc = rpc(image, "concert", "ListAvailableDates");
  const seatsRpc = rpc(image, "concert", "ListAvailableSeats");
  const need = () => {
    if (!token) skip("no ACTIVE queue token");
    if (!concertId) skip("no concert");
  };

  const date = await report.check("ListAvailableDates: dates of the concert with free seats", async () => {
    need();
    const dates = (await s.unary(datesRpc, { concertId }, { queueToken: token })).dates as Msg[];
    expect(dates.length > 0, `no dates with free seats for ${concertId}`);
    for (const d of dates) {
      expect(d.concertId === concertId, `a date of ${d.concertId}`);
      expect(d.availableSeats > 0 && d.availableSeats <= d.totalSeats, `${d.date}: ${d.availableSeats} of ${d.totalSeats} free`);
    }
    // The roomiest date: the kit takes a few seats, and other runs may share the server.
    return [...dates].sort((a, b) => b.availableSeats - a.availableSeats)[0].date as string;
  });

  const show = await report.check("ListAvailableSeats: free seats of the show, each with a price", async () => {
    need();
    if (!date) skip("no date");
    const r = await s.unary(seatsRpc, { concertId, date }, { queueToken: token });
    expect(r.concertId === concertId && r.date === date, "the response names another show");
    const seats = r.seats as Msg[];
    expect(seats.length >= 3, `${seats.length} free seats; the kit needs 3`);
    for (const seat of seats) expect(seat.seatNumber >= 1 && BigInt(seat.price) > 0n, `seat ${seat.seatNumber} priced ${seat.price}`);
    return { concertId: concertId!, date: date!, seats: [...seats].sort(() => Math.random() - 0.5) };
  });

  await report.check("ListAvailableDates of an unknown concert: NOT_FOUND CONCERT_NOT_FOUND", async () => {
    need();
    const err = await s.refusal(datesRpc, { concertId: "no-such-concert-contract" }, { queueToken: token });
    expectRefusal(image, datesRpc, err, Code.NotFound, "CONCERT_NOT_FOUND");
  });

  await report.check("ListAvailableSeats of a date without a show: NOT_FOUND CONCERT_DATE_NOT_FOUND", async () => {
    need();
    const err = await s.refusal(seatsRpc, { concertId, date: "1999-01-01" }, { queueToken: token });
    expectRefusal(image, seatsRpc, err, Code.NotFound, "CONCERT_DATE_NOT_FOUND");
  });
  return show;
}
