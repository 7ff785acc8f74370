import type { AdmissionRound } from "./queue-store.js";

/**
 * Admission rounds over which an old observation's weight halves. Short: the
 * rate is what the line moves at now (an on-sale's first seconds, the room
 * filling up), not over the last minute.
 */
export const RATE_HALF_LIFE_ROUNDS = 4;

/**
 * The line's admission rate (people per ms), as an exponentially weighted
 * moving average of what every instance admitted between two of this
 * instance's rounds (the store's running total, so other instances'
 * admissions count too). A round after which nobody waits says how many came,
 * not how fast the line moves, and is left out. The weight of a new
 * observation grows with the time since the last one: after a quiet hour the
 * first round of the next rush replaces the old rate outright.
 */
export interface AdmissionRate {
  observe(round: AdmissionRound, now: number): void;
  /** Undefined until a round has been observed with people waiting. */
  readonly perMs: number | undefined;
}

export function createAdmissionRate(halfLifeMs: number): AdmissionRate {
  let last: { total: number; at: number; generation: number } | undefined;
  let rate: number | undefined;
  let observedAt = 0;
  return {
    observe(round, now) {
      const previous = last;
      // A store that lost its data counts from zero again: no difference to take.
      const comparable = previous !== undefined && previous.generation === round.generation && round.admittedTotal >= previous.total;
      // Several rounds at one instant (a manual clock): what they admit counts with the next round that takes time.
      if (comparable && now <= previous.at) return;
      last = { total: round.admittedTotal, at: now, generation: round.generation };
      if (!comparable) return;
      if (round.waiting === 0) return;
      const sample = (round.admittedTotal - previous.total) / (now - previous.at);
      const weight = rate === undefined ? 1 : 1 - 2 ** (-(now - observedAt) / halfLifeMs);
      rate = rate === undefined ? sample : rate + weight * (sample - rate);
      observedAt = now;
    },
    get perMs() {
      return rate;
    },
  };
}
