/**
 * The error and logging interceptors, exactly as the server stacks them, in
 * front of an in-memory router: what a client sees for each kind of failure,
 * and what the log records.
 */
import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { DeadlockException, OptimisticLockError, UniqueConstraintViolationException } from "@mikro-orm/core";
import { DriverException, MikroORM } from "@mikro-orm/postgresql";
import { Client } from "pg";
import type { Counter } from "prom-client";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { createLoggingInterceptor } from "../../src/rpc/logging";
import { ManualClock } from "../../src/platform/clock";
import { entities } from "../../src/entities";
import { ormOptions } from "../../src/platform/db/database";
import { dependencyUnavailableCounter } from "../../src/platform/db/outage-log";
import { domainError, ERROR_DOMAIN, errorReason } from "../../src/platform/errors";
import { Reason } from "../../src/platform/reasons";
import { createLogger } from "../../src/platform/logger";
import { createMetrics, type Metrics } from "../../src/platform/metrics";
import { freePort } from "../harness";

type LogLine = {
  level: number;
  msg: string;
  procedure?: string;
  code?: string;
  err?: { message: string; stack: string; type: string };
  [field: string]: unknown;
};

let failWith: unknown;
let lines: LogLine[];
let client: ReturnType<typeof createClient<typeof QueueService>>;
let metrics: Metrics;
let clock: ManualClock;

/** Real errors, as MikroORM and node-postgres raise them (see test/faults/db-fault-mapping.test.ts for every kind). */
let refused: DriverException;
let refusedRaw: Error;
let statementTimeout: DriverException;

beforeAll(async () => {
  const closed = `postgresql://postgres@127.0.0.1:${await freePort()}/none`;
  const nowhere = await MikroORM.init({ ...ormOptions(entities, { clientUrl: closed }, 1), connect: false });
  refused = await nowhere.em
    .getConnection()
    .execute("select 1")
    .then(
      () => Promise.reject(new Error("a closed port answered")),
      (e) => nowhere.em.getDriver().convertException(e),
    );
  await nowhere.close(true);
  refusedRaw = await new Client({ connectionString: closed }).connect().then(
    () => Promise.reject(new Error("a closed port answered")),
    (e: Error) => e,
  );
  const orm = await MikroORM.init(ormOptions(entities, { clientUrl: process.env.TEST_PG_ADMIN_URL }, 1));
  try {
    statementTimeout = await orm.em
      .fork()
      .execute("set statement_timeout = 50; select pg_sleep(2), 'secret-literal-4711'")
      .then(
        () => Promise.reject(new Error("pg_sleep outlived statement_timeout")),
        (e: DriverException) => e,
      );
  } finally {
    await orm.close(true);
  }
});

beforeEach(() => {
  failWith = undefined;
  lines = [];
  metrics = createMetrics();
  clock = new ManualClock();
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const log = createLogger("info", destination);
  const transport = createRouterTransport(
    (router) =>
      router.service(QueueService, {
        issueToken() {
          if (failWith !== undefined) throw failWith;
          return {};
        },
        getQueueStatus() {
          return {};
        },
        async *watchQueueStatus() {
          yield { ticket: { token: "first", userId: "u1" } };
          throw failWith;
        },
      }),
    { router: { interceptors: [createLoggingInterceptor(log, createMetrics()), createErrorInterceptor(log, metrics, { clock })] } },
  );
  client = createClient(QueueService, transport);
});

async function callFailing(err: unknown): Promise<ConnectError> {
  failWith = err;
  return ConnectError.from(
    await client.issueToken({ userId: "u1" }).then(
      () => undefined,
      (e) => e,
    ),
  );
}

/** A pg driver error as MikroORM receives it, for the library's own wrappers. */
function pgError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

test("an unexpected Error becomes INTERNAL without its text, and is logged once with its stack", async () => {
  const secret = "password=hunter2 at db.internal:5432";
  const err = await callFailing(new TypeError(`cannot read ${secret}`));
  expect(err.code).toBe(Code.Internal);
  expect(err.rawMessage).not.toContain("hunter2");
  expect(err.rawMessage).toMatch(/^internal error \(request id .*\)$/);
  expect(err.findDetails(ErrorInfoSchema)).toEqual([]);

  const mentioning = lines.filter((l) => JSON.stringify(l).includes("hunter2"));
  expect(mentioning).toHaveLength(1);
  expect(mentioning[0]).toMatchObject({ level: 50, msg: "unexpected failure", procedure: "/boxoffice.queue.v1.QueueService/IssueToken" });
  expect(mentioning[0].err?.type).toBe("TypeError");
  expect(mentioning[0].err?.stack).toContain("error-interceptor.test.ts");
  // ...and the one access-log line for the call records the code, not the secret.
  expect(lines.filter((l) => l.msg === "rpc")).toEqual([expect.objectContaining({ code: "INTERNAL" })]);
});

test.each([
  ["OptimisticLockError", "CONCURRENT_UPDATE", () => OptimisticLockError.lockFailed("Seat")],
  ["DeadlockException", "TRANSACTION_CONFLICT", () => new DeadlockException(pgError("deadlock detected", "40P01"))],
  [
    "UniqueConstraintViolationException",
    "CONCURRENT_INSERT",
    () => new UniqueConstraintViolationException(pgError('duplicate key value violates unique constraint "x"', "23505")),
  ],
])("%s becomes ABORTED (retryable) with reason %s in an ErrorInfo", async (_name, reason, make) => {
  const err = await callFailing(make());
  expect(err.code).toBe(Code.Aborted);
  expect(errorReason(err)).toBe(reason);
  expect(err.findDetails(ErrorInfoSchema)[0].domain).toBe(ERROR_DOMAIN);
  expect(err.rawMessage).not.toMatch(/duplicate key|deadlock detected|Seat/);
  expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
});

test("a ConnectError passes through unchanged, and is not logged as a failure", async () => {
  const original = domainError(Code.FailedPrecondition, Reason.QUEUE_TOKEN_WAITING, "the queue token is still waiting", { position: "17" });
  const err = await callFailing(original);
  expect(err.code).toBe(Code.FailedPrecondition);
  expect(err.rawMessage).toBe("the queue token is still waiting");
  expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "QUEUE_TOKEN_WAITING", domain: ERROR_DOMAIN, metadata: { position: "17" } });
  expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  expect(lines).toEqual([expect.objectContaining({ msg: "rpc", code: "FAILED_PRECONDITION" })]);
});

test("a server stream that fails after its first message ends INTERNAL without the text", async () => {
  failWith = new Error("stream secret hunter2");
  const received: string[] = [];
  const err = await (async () => {
    for await (const res of client.watchQueueStatus({ token: "t".repeat(16) })) received.push(res.ticket!.token);
  })().then(
    () => undefined,
    (e) => ConnectError.from(e),
  );
  expect(received).toEqual(["first"]);
  expect(err?.code).toBe(Code.Internal);
  expect(err?.rawMessage).not.toContain("hunter2");
  expect(lines.filter((l) => JSON.stringify(l).includes("hunter2"))).toHaveLength(1);
});

describe("the database unavailable", () => {
  const unavailableTotal = async (reason: string) =>
    (await (metrics.registry.getSingleMetric("dependency_unavailable_total") as Counter).get()).values.find(
      (v) => v.labels.dependency === "database" && v.labels.reason === reason,
    )?.value ?? 0;
  const outageLines = () => lines.filter((l) => l.dependency === "database");

  test("connection refused, wrapped by MikroORM or raw from the driver, is UNAVAILABLE DATABASE_UNAVAILABLE", async () => {
    expect(refused).toBeInstanceOf(DriverException);
    expect(refused).toMatchObject({ code: "ECONNREFUSED" });
    expect(refusedRaw).toMatchObject({ code: "ECONNREFUSED", syscall: "connect" });
    for (const err of [refused, refusedRaw]) {
      const answer = await callFailing(err);
      expect(answer.code).toBe(Code.Unavailable);
      expect(errorReason(answer)).toBe("DATABASE_UNAVAILABLE");
      expect(answer.rawMessage).toBe("the database is unavailable; retry the call");
    }
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  test("a burst is one warn line, every call is counted, and the first success of a failed procedure says it is back", async () => {
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      expect(errorReason(await callFailing(i % 2 ? refused : refusedRaw))).toBe("DATABASE_UNAVAILABLE");
    }
    expect(outageLines()).toEqual([
      expect.objectContaining({ level: 40, msg: "database unavailable", reason: "DATABASE_UNAVAILABLE", kind: "ECONNREFUSED", suppressed: 0 }),
    ]);
    expect(outageLines()[0]).not.toHaveProperty("err");
    expect(await unavailableTotal("DATABASE_UNAVAILABLE")).toBe(5);
    // ...and the access log still has one line per call.
    expect(lines.filter((l) => l.msg === "rpc" && l.code === "UNAVAILABLE")).toHaveLength(5);

    // Another procedure succeeding says nothing about the database: it may not have touched it.
    await client.getQueueStatus({});
    expect(outageLines()).toHaveLength(1);

    clock.advance(1500);
    failWith = undefined;
    await client.issueToken({ userId: "u1" });
    await client.issueToken({ userId: "u1" });
    expect(outageLines().slice(1)).toEqual([expect.objectContaining({ level: 30, msg: "database available again", failures: 5, unavailableMs: 5500 })]);
  });

  test("a burst right after a logged recovery is said once more; later ones in the window are only counted; past it, the count held back", async () => {
    await callFailing(refused);
    failWith = undefined;
    await client.issueToken({ userId: "u1" });
    clock.advance(2000);
    await callFailing(refused);
    await callFailing(refused);
    failWith = undefined;
    await client.issueToken({ userId: "u1" });
    // The first "available again" did not last: the outage after it is said too, or the log would claim a recovery.
    expect(outageLines().map((l) => l.msg)).toEqual(["database unavailable", "database available again", "database unavailable", "database available again"]);

    clock.advance(1000);
    await callFailing(refused);
    failWith = undefined;
    await client.issueToken({ userId: "u1" });
    // A third flap inside the window: only counted.
    expect(outageLines()).toHaveLength(4);

    clock.advance(8000);
    await callFailing(refused);
    expect(outageLines().slice(4)).toEqual([expect.objectContaining({ msg: "database unavailable", suppressed: 3 })]);
    expect(await unavailableTotal("DATABASE_UNAVAILABLE")).toBe(5);
  });

  test("a statement timeout is UNAVAILABLE DATABASE_TIMEOUT; its line names the kind and carries neither the statement nor its values", async () => {
    expect(statementTimeout).toMatchObject({ code: "57014" });
    expect(statementTimeout.message).toContain("secret-literal-4711");
    const answer = await callFailing(statementTimeout);
    expect(answer.code).toBe(Code.Unavailable);
    expect(errorReason(answer)).toBe("DATABASE_TIMEOUT");
    expect(answer.rawMessage).not.toMatch(/select|secret/);
    expect(outageLines()).toEqual([expect.objectContaining({ level: 40, msg: "database statement timed out", kind: "57014 query_canceled" })]);
    expect(JSON.stringify(lines)).not.toMatch(/secret-literal|pg_sleep|statement_timeout =/);
    expect(await unavailableTotal("DATABASE_TIMEOUT")).toBe(1);
  });

  test("each reason has its own window: a lock timeout during an outage still gets its line", async () => {
    await callFailing(refused);
    // A real one: test/faults/db-fault-mapping.test.ts; here only its shape matters.
    await callFailing(new DriverException(pgError("update seat ... - canceling statement due to lock timeout", "55P03")));
    expect(outageLines().map((l) => [l.msg, l.reason])).toEqual([
      ["database unavailable", "DATABASE_UNAVAILABLE"],
      ["database row lock wait timed out", "LOCK_TIMEOUT"],
    ]);
  });

  test("one counter per registry, however many interceptors ask for it", () => {
    const counter = dependencyUnavailableCounter(metrics.registry);
    createErrorInterceptor(createLogger("silent"), metrics);
    expect(dependencyUnavailableCounter(metrics.registry)).toBe(counter);
  });
});
