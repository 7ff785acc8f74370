import type { EntityManager } from "@mikro-orm/postgresql";

/** The catalog `npm start` serves on a fresh embedded database and `npm run seed` loads. */
export const DEMO_CONCERTS = [
  {
    id: "iu-golden-hour-2027",
    title: "IU Golden Hour: Under the Orange Sun",
    artist: "IU",
    venue: "KSPO Dome, Seoul",
    dates: ["2027-03-06", "2027-03-07", "2027-03-13"],
  },
  {
    id: "bts-permission-to-dance-2027",
    title: "Permission to Dance on Stage",
    artist: "BTS",
    venue: "Jamsil Olympic Stadium, Seoul",
    dates: ["2027-04-10", "2027-04-11", "2027-04-17", "2027-04-18"],
  },
  {
    id: "seventeen-follow-2027",
    title: "FOLLOW Again",
    artist: "SEVENTEEN",
    venue: "Gocheok Sky Dome, Seoul",
    dates: ["2027-05-22", "2027-05-23"],
  },
  {
    id: "akmu-lovelee-2027",
    title: "LOVEE Tour",
    artist: "AKMU",
    venue: "Busan BEXCO Auditorium",
    dates: ["2027-06-05", "2027-06-06", "2027-06-12"],
  },
] as const;

export const SEATS_PER_SHOW = 50;
/** Shows start at 19:00 Korea time. */
const SHOW_START_UTC = "T10:00:00Z";

/** VIP front rows, then R and S sections. */
export function demoSeatPrice(seatNumber: number): number {
  if (seatNumber <= 10) return 165_000;
  if (seatNumber <= 30) return 143_000;
  return 121_000;
}

/**
 * Inserts the demo catalog where it is missing; safe to run again. Returns the
 * number of concerts it added.
 */
export async function seedDemoCatalog(em: EntityManager): Promise<number> {
  return em.transactional(async (tx) => {
    let added = 0;
    for (const c of DEMO_CONCERTS) {
      const inserted = await tx.execute<{ id: string }[]>(
        `insert into concert (id, title, artist, venue) values (?, ?, ?, ?) on conflict (id) do nothing returning id`,
        [c.id, c.title, c.artist, c.venue],
      );
      if (inserted.length === 0) continue;
      added++;
      for (const date of c.dates) {
        const [show] = await tx.execute<{ id: string }[]>(`insert into concert_date (concert_id, date, starts_at) values (?, ?, ?) returning id`, [
          c.id,
          date,
          new Date(date + SHOW_START_UTC),
        ]);
        await tx.execute(
          `insert into seat (concert_date_id, seat_number, price)
           select ?, n, case when n <= 10 then ? when n <= 30 then ? else ? end
           from generate_series(1, ?) as n`,
          [show.id, demoSeatPrice(1), demoSeatPrice(11), demoSeatPrice(31), SEATS_PER_SHOW],
        );
      }
    }
    return added;
  });
}
