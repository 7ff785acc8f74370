/**
 * The error and logging interceptors, exactly as the server stacks them, in
 * front of an in-memory router: what a client sees for each kind of failure,
 * and what the log records.
 */
import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { DeadlockException, OptimisticLockError, UniqueConstraintViolationException } from "@mikro-orm/core";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { createLoggingInterceptor } from "../../src/rpc/logging";
import { domainError, ERROR_DOMAIN, errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { createMetrics } from "../../src/platform/metrics";

type LogLine = { level: number; msg: string; procedure?: string; code?: string; err?: { message: string; stack: string; type: string } };

let failWith: unknown;
let lines: LogLine[];
let client: ReturnType<typeof createClient<typeof QueueService>>;

beforeEach(() => {
  failWith = undefined;
  lines = [];
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
          throw failWith;
        },
        async *watchQueueStatus() {
          yield { ticket: { token: "first", userId: "u1" } };
          throw failWith;
        },
      }),
    { router: { interceptors: [createLoggingInterceptor(log, createMetrics()), createErrorInterceptor(log)] } },
  );
  client = createClient(QueueService, transport);
});

async function callFailing(err: unknown): Promise<ConnectError> {
  failWith = err;
  return ConnectError.from(await client.issueToken({ userId: "u1" }).then(() => undefined, (e) => e));
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
  const original = domainError(Code.FailedPrecondition, "TOKEN_NOT_ACTIVE", "the queue token is still waiting", { position: "17" });
  const err = await callFailing(original);
  expect(err.code).toBe(Code.FailedPrecondition);
  expect(err.rawMessage).toBe("the queue token is still waiting");
  expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "TOKEN_NOT_ACTIVE", domain: ERROR_DOMAIN, metadata: { position: "17" } });
  expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  expect(lines).toEqual([expect.objectContaining({ msg: "rpc", code: "FAILED_PRECONDITION" })]);
});

test("a server stream that fails after its first message ends INTERNAL without the text", async () => {
  failWith = new Error("stream secret hunter2");
  const received: string[] = [];
  const err = await (async () => {
    for await (const res of client.watchQueueStatus({ token: "t".repeat(16) })) received.push(res.ticket!.token);
  })().then(() => undefined, (e) => ConnectError.from(e));
  expect(received).toEqual(["first"]);
  expect(err?.code).toBe(Code.Internal);
  expect(err?.rawMessage).not.toContain("hunter2");
  expect(lines.filter((l) => JSON.stringify(l).includes("hunter2"))).toHaveLength(1);
});
