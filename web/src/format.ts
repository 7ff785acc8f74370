import { durationMs as ms, timestampDate, type Duration, type Timestamp } from "@boxoffice/client";

/** Shows are in Korea; their times read in Korea time wherever the buyer is. */
const VENUE_TZ = "Asia/Seoul";

const wonFormat = new Intl.NumberFormat("en-US", { style: "currency", currency: "KRW", maximumFractionDigits: 0 });

export const won = (amount: bigint | number): string => wonFormat.format(amount);

export const toDate = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);

export const durationMs = (d: Duration | undefined): number | undefined => (d ? ms(d) : undefined);

/** "2027-03-06" as "Sat 6 Mar 2027" (a calendar date: no time zone involved). */
export function showDay(date: string): { weekday: string; day: string; month: string; year: string; long: string } {
  const d = new Date(`${date}T12:00:00Z`);
  const part = (o: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat("en-GB", { ...o, timeZone: "UTC" }).format(d);
  const weekday = part({ weekday: "short" });
  const day = part({ day: "numeric" });
  const month = part({ month: "short" });
  const year = part({ year: "numeric" });
  return { weekday, day, month, year, long: `${weekday} ${day} ${month} ${year}` };
}

/** A show's start as "7:00 PM KST". */
export function showTime(t: Timestamp | undefined): string {
  const d = toDate(t);
  if (!d) return "";
  return new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "2-digit", timeZone: VENUE_TZ, timeZoneName: "short" }).format(d).replace("GMT+9", "KST");
}

/** mm:ss until `deadline` (never negative). */
export function countdown(deadline: number, now = Date.now()): string {
  const s = Math.max(0, Math.ceil((deadline - now) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** A wait estimate in words: "about 40 seconds", "about 3 minutes". */
export function waitWords(ms: number | undefined): string {
  if (ms === undefined) return "working it out…";
  const s = Math.round(ms / 1000);
  if (s <= 1) return "any moment now";
  if (s < 60) return `about ${s} seconds`;
  const m = Math.round(s / 60);
  return m === 1 ? "about a minute" : `about ${m} minutes`;
}

export const plural = (n: number | bigint, one: string, many = `${one}s`): string => `${n} ${Number(n) === 1 ? one : many}`;
