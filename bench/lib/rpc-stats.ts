/**
 * Per-RPC tallies for load that mixes several RPCs in one flow (list, then
 * hold): latency of every answered call, business refusals by reason kept
 * apart from errors.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { asConnectError } from "../../test/e2e/grpc-js";
import { percentile } from "./load";

export interface RpcSummary {
  /** Answered calls (OK or refused); errors are not counted here. */
  calls: number;
  ok: number;
  refusals: number;
  refusedBy: Record<string, number>;
  errors: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Up to 5 distinct error messages. */
  errorSamples: string[];
}

interface Tally {
  latencies: number[];
  ok: number;
  refusedBy: Map<string, number>;
  errors: number;
  samples: Set<string>;
}

/** How a failed call went: a refusal with its reason, or an error with a message for the report. */
export type Failure = { refusal: string } | { error: string };

/**
 * A FAILED_PRECONDITION whose ErrorInfo reason is in `refusals` is a refusal;
 * anything else (another code, another reason, a transport failure) is an error.
 */
export function classifyFailure(err: unknown, refusals: ReadonlySet<string>): Failure {
  let ce: ConnectError;
  try {
    ce = asConnectError(err);
  } catch {
    return { error: String((err as Error)?.message ?? err) };
  }
  const reason = ce.findDetails(ErrorInfoSchema)[0]?.reason;
  if (ce.code === Code.FailedPrecondition && reason && refusals.has(reason)) return { refusal: reason };
  return { error: `${Code[ce.code]}${reason ? ` ${reason}` : ""}: ${ce.rawMessage}` };
}

export class RpcStats {
  private readonly tallies = new Map<string, Tally>();

  private tally(name: string): Tally {
    let t = this.tallies.get(name);
    if (!t) {
      t = { latencies: [], ok: 0, refusedBy: new Map(), errors: 0, samples: new Set() };
      this.tallies.set(name, t);
    }
    return t;
  }

  ok(name: string, ms: number): void {
    const t = this.tally(name);
    t.ok++;
    t.latencies.push(ms);
  }

  refused(name: string, ms: number, reason: string): void {
    const t = this.tally(name);
    t.refusedBy.set(reason, (t.refusedBy.get(reason) ?? 0) + 1);
    t.latencies.push(ms);
  }

  error(name: string, message: string): void {
    const t = this.tally(name);
    t.errors++;
    if (t.samples.size < 5) t.samples.add(message.slice(0, 200));
  }

  /**
   * Times one call. Resolves the value, or `{ refusal }` for an expected
   * refusal, with the latency; records and rethrows errors.
   */
  async time<T>(name: string, refusals: ReadonlySet<string>, call: () => Promise<T>): Promise<({ value: T } | { refusal: string }) & { ms: number }> {
    const t0 = performance.now();
    try {
      const value = await call();
      const ms = performance.now() - t0;
      this.ok(name, ms);
      return { value, ms };
    } catch (err) {
      const ms = performance.now() - t0;
      const f = classifyFailure(err, refusals);
      if ("refusal" in f) {
        this.refused(name, ms, f.refusal);
        return { refusal: f.refusal, ms };
      }
      this.error(name, f.error);
      throw err;
    }
  }

  names(): string[] {
    return [...this.tallies.keys()];
  }

  /** Figures for one RPC; `seconds` is the wall time the rate is taken over. */
  summary(name: string, seconds: number): RpcSummary {
    const t = this.tally(name);
    const sorted = Float64Array.from(t.latencies).sort();
    const refusals = [...t.refusedBy.values()].reduce((a, b) => a + b, 0);
    return {
      calls: sorted.length,
      ok: t.ok,
      refusals,
      refusedBy: Object.fromEntries(t.refusedBy),
      errors: t.errors,
      perSecond: sorted.length / seconds,
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1] : NaN,
      errorSamples: [...t.samples],
    };
  }
}
