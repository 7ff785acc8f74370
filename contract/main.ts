/**
 * The boxoffice conformance kit: a black-box suite run against a deployment,
 * built from the Buf image alone (no server code, no generated code).
 *
 *   npm run contract -- --url http://127.0.0.1:8080 [--protocol grpc|connect|grpc-web]
 *     [--token JWT] [--charge-token JWT] [--user NAME] [--image boxoffice.binpb]
 *
 * One line per check (ok / FAIL / skip), then "N passed, M failed, K skipped";
 * exit code 1 on any failure, 2 on bad arguments.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { catalogChecks, listConcerts } from "./checks/catalog.js";
import { gateChecks } from "./checks/gate.js";
import { detectMode, identityChecks } from "./checks/identity.js";
import { inputChecks } from "./checks/input.js";
import { paymentChecks } from "./checks/payment.js";
import { queueChecks } from "./checks/queue.js";
import { reservationChecks } from "./checks/reservation.js";
import { forUser, randomKey, type Ctx } from "./context.js";
import { loadImage } from "./image.js";
import { Report, skip } from "./report.js";
import { createSession, type Protocol, type SessionOptions } from "./session.js";

const USAGE =
  "usage: npm run contract -- --url URL [--protocol grpc|connect|grpc-web] [--token JWT] [--charge-token JWT] [--user NAME] [--image FILE] [--timeout MS] [--admission-timeout MS]";

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      protocol: { type: "string", default: "grpc" },
      token: { type: "string" },
      "charge-token": { type: "string" },
      user: { type: "string" },
      image: { type: "string" },
      timeout: { type: "string", default: "10000" },
      "admission-timeout": { type: "string", default: "120000" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const protocol = values.protocol as Protocol;
  if (!values.url || !["grpc", "connect", "grpc-web"].includes(protocol)) throw new Error(USAGE);
  const ms = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive number of milliseconds`);
    return n;
  };
  return {
    url: values.url.replace(/\/+$/, ""),
    protocol,
    token: values.token,
    chargeToken: values["charge-token"],
    user: values.user,
    image: values.image,
    timeoutMs: ms("timeout", values.timeout!),
    admissionTimeoutMs: ms("admission-timeout", values["admission-timeout"]!),
  };
}

/** The `sub` of a JWT, read without verifying it: the server does that. */
function subjectOf(jwt: string): string {
  const payload = jwt.split(".")[1];
  const sub = payload && (JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { sub?: unknown }).sub;
  if (typeof sub !== "string" || !sub) throw new Error("--token is not a JWT with a sub claim");
  return sub;
}

async function main(): Promise<number> {
  let o: ReturnType<typeof options>;
  try {
    o = options();
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const image = loadImage(o.image);
  const report = new Report();
  console.log(`# boxoffice contract: ${o.url} over ${o.protocol}; image: ${image.source}`);
  const base: Omit<SessionOptions, "user" | "mode"> = { image, protocol: o.protocol, baseUrl: o.url, timeoutMs: o.timeoutMs };

  const mode = await detectMode({ report, image }, createSession({ ...base, user: "", mode: "none" }));
  if (mode === "jwt" && !o.token) {
    await report.check("the rest of the suite", async () => skip("the server authenticates callers (AUTH_MODE=jwt): pass --token"));
    return finish(report);
  }
  const user = o.token ? subjectOf(o.token) : (o.user ?? `contract-${randomBytes(5).toString("hex")}`);
  const s = createSession({ ...base, user, mode: mode ?? (o.token ? "jwt" : "none"), bearer: o.token, chargeBearer: o.chargeToken });
  const ctx: Ctx = {
    s,
    report,
    image,
    admissionTimeoutMs: o.admissionTimeoutMs,
    // A second buyer is only to be had where the server trusts user ids.
    ...(s.mode === "none" && { other: createSession({ ...base, user: `${user}-b`, mode: "none" }) }),
  };
  console.log(`# user ${user}, AUTH_MODE=${s.mode}`);

  await identityChecks(ctx);
  const concertId = await listConcerts(ctx);
  const token = await queueChecks(ctx, concertId);
  const show = await catalogChecks(ctx, token, concertId);
  await gateChecks(ctx, show ?? { concertId: concertId ?? "no-concert", date: "2027-01-01" });
  const held = await reservationChecks(ctx, token, show);
  const r = held?.reservation;
  await inputChecks(ctx, {
    queueToken: token,
    requests: {
      IssueToken: forUser(s),
      GetQueueStatus: { token },
      WatchQueueStatus: { token },
      ListConcerts: {},
      ListAvailableDates: { concertId: r?.concertId ?? concertId },
      ListAvailableSeats: { concertId: r?.concertId ?? concertId, date: r?.date ?? show?.date },
      // The seat the user holds already: a hold that slipped past validation takes nothing new.
      ...(r && { HoldSeat: { concertId: r.concertId, date: r.date, seatNumber: r.seatNumber, idempotencyKey: randomKey("input") } }),
      CancelHold: { reservationId: r?.reservationId },
      PayReservation: { reservationId: r?.reservationId, idempotencyKey: randomKey("input") },
      GetReservation: { reservationId: r?.reservationId },
      ListReservations: forUser(s),
      ChargeBalance: { userId: user, amount: 1000n, idempotencyKey: randomKey("input") },
      GetBalance: forUser(s),
      ListWalletEntries: forUser(s),
    },
  });
  await paymentChecks(ctx, token, held);
  return finish(report);
}

function finish(report: Report): number {
  console.log(report.summary());
  return report.failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
