/**
 * What never reaches a log line: money, idempotency keys, credentials and SQL
 * parameters, whether a caller logs them as fields, inside an error, or the
 * ORM would log them with its queries. Database errors come from a real
 * PostgreSQL (the shared test server), as the error interceptor would log them.
 */
import { Writable } from "node:stream";
import { DefaultLogger, MikroORM, UniqueConstraintViolationException, type Options } from "@mikro-orm/postgresql";
import { entities } from "../../src/entities";
import { ormOptions } from "../../src/platform/db/database";
import { createLogger } from "../../src/platform/logger";

const SECRETS = {
  amount: "918273",
  balance: "564738",
  idempotencyKey: "idem-6f1c2e-secret",
  authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.c2VjcmV0.c2ln",
  queueToken: "qt_9a8b7c6d5e4f3a2b1c0d",
  sqlParam: "param-5e5e5e-secret",
};

/**
 * A parsed log line as the tests walk it: any field, at any depth, reads as another node; what is really there
 * (a string, an array, nothing) is for the matcher at the end of the path to judge.
 */
interface LogNode {
  readonly [field: string]: LogNode;
}

function capture() {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      raw.push(String(chunk));
      done();
    },
  });
  const log = createLogger("info", destination);
  const lines = () =>
    raw
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((l): LogNode => JSON.parse(l));
  const leaked = () =>
    Object.entries(SECRETS)
      .filter(([, v]) => raw.join("").includes(v))
      .map(([k]) => k);
  return { log, lines, leaked };
}

const adminUrl = () => {
  const url = process.env.TEST_PG_ADMIN_URL;
  if (!url) throw new Error("TEST_PG_ADMIN_URL is not set: run the tests through jest (the global setup starts the services)");
  return url;
};

test("money, idempotency keys, tokens and query parameters are redacted, at the top level and nested", () => {
  const { log, lines, leaked } = capture();
  log.info(
    {
      procedure: "/boxoffice.wallet.v1.WalletService/ChargeBalance",
      userId: "alice",
      amount: SECRETS.amount,
      balance: SECRETS.balance,
      idempotency_key: SECRETS.idempotencyKey,
      params: [SECRETS.sqlParam],
    },
    "top level",
  );
  log.warn(
    {
      charge: { amount: SECRETS.amount, idempotencyKey: SECRETS.idempotencyKey, balanceAfter: SECRETS.balance },
      query: { sql: `select '${SECRETS.sqlParam}'`, bindings: [SECRETS.sqlParam], parameters: { p1: SECRETS.sqlParam } },
      deep: { entry: { ledger: { balance_after: SECRETS.balance, amount: SECRETS.amount } } },
      token: SECRETS.queueToken,
    },
    "nested",
  );
  log.warn({ payment: [{ amount: SECRETS.amount }] }, "in an array");
  const err = Object.assign(new Error("charge refused"), { amount: SECRETS.amount, idempotencyKey: SECRETS.idempotencyKey });
  log.warn({ err }, "error fields");

  expect(leaked()).toEqual([]);
  const [top, nested, array, withErr] = lines();
  expect(top).toMatchObject({ procedure: "/boxoffice.wallet.v1.WalletService/ChargeBalance", userId: "alice", amount: "[redacted]", params: "[redacted]" });
  expect(nested.deep.entry.ledger).toEqual({ balance_after: "[redacted]", amount: "[redacted]" });
  expect(array.payment).toEqual([{ amount: "[redacted]" }]);
  expect(withErr.err).toMatchObject({ type: "Error", message: "charge refused", amount: "[redacted]", idempotencyKey: "[redacted]" });
  expect(withErr.err.stack).toContain("log-redaction.test.ts");
});

test("authorization and queue-token headers are redacted, in any case the header object uses", () => {
  const { log, lines, leaked } = capture();
  log.info({ headers: { authorization: SECRETS.authorization, "x-queue-token": SECRETS.queueToken, "user-agent": "grpc-node" } }, "headers");
  log.warn({ req: { headers: { Authorization: SECRETS.authorization, "x-queue-token": SECRETS.queueToken } } }, "request");
  log.info({ call: { req: { headers: { authorization: SECRETS.authorization } } } }, "deeper");
  log.info({ authorization: SECRETS.authorization }, "bare");
  expect(leaked()).toEqual([]);
  expect(lines()[0].headers).toEqual({ authorization: "[redacted]", "x-queue-token": "[redacted]", "user-agent": "grpc-node" });
});

test("at any depth, in arrays and in nested errors", () => {
  const { log, lines, leaked } = capture();
  const deep = { a: { b: { c: { d: { e: { amount: SECRETS.amount, kept: "yes" } } } } } };
  log.info({ deep, list: [[{ idempotencyKey: SECRETS.idempotencyKey }]] }, "deep");
  log.warn({ context: { failure: Object.assign(new Error("nested"), { balance: SECRETS.balance }) } }, "nested error");
  // As ioredis reports a failed command.
  log.warn({ err: Object.assign(new Error("ERR unknown script"), { command: { name: "evalsha", args: ["sha", 1, SECRETS.queueToken] } }) }, "redis");
  expect(leaked()).toEqual([]);
  const [first, second, third] = lines();
  expect(first.deep.a.b.c.d.e).toEqual({ amount: "[redacted]", kept: "yes" });
  expect(first.list).toEqual([[{ idempotencyKey: "[redacted]" }]]);
  expect(second.context.failure).toMatchObject({ type: "Error", message: "nested", balance: "[redacted]" });
  expect(third.err.command).toEqual({ name: "evalsha", args: "[redacted]" });
  // What was logged is left as it was.
  expect(deep.a.b.c.d.e.amount).toBe(SECRETS.amount);
});

test("a line with nothing to censor is written as given", () => {
  const { log, lines } = capture();
  log.info({ procedure: "/p", code: "OK", durationMs: 1.5, requestId: "r-1", nextPageToken: "kept", tokens: 3 }, "rpc");
  expect(lines()[0]).toMatchObject({ procedure: "/p", code: "OK", durationMs: 1.5, requestId: "r-1", nextPageToken: "kept", tokens: 3, msg: "rpc" });
});

describe("over a real PostgreSQL", () => {
  let orm: MikroORM;
  beforeAll(async () => {
    orm = await MikroORM.init(ormOptions(entities, { clientUrl: adminUrl() }, 2));
  });
  afterAll(() => orm?.close(true));

  test("a database error keeps its SQLSTATE, constraint and stack, never the statement's values", async () => {
    const failure = await orm.em
      .fork()
      .transactional(async (tx) => {
        await tx.execute(
          `create temp table charge_probe (user_id text, idempotency_key text, amount bigint,
         constraint charge_probe_key_unique unique (user_id, idempotency_key)) on commit drop`,
        );
        const insert = `insert into charge_probe (user_id, idempotency_key, amount) values (?, ?, ?)`;
        await tx.execute(insert, ["alice", SECRETS.idempotencyKey, SECRETS.amount]);
        return tx.execute(insert, ["alice", SECRETS.idempotencyKey, SECRETS.amount]).then(
          () => undefined,
          (e: unknown) => e,
        );
      })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(UniqueConstraintViolationException);
    // What the log would get without the serializer: the statement with the values inlined, and the key in `detail`.
    expect((failure as Error).message).toContain(SECRETS.idempotencyKey);
    expect(JSON.stringify(failure)).toContain(SECRETS.idempotencyKey);

    const { log, lines, leaked } = capture();
    log.warn({ procedure: "/x", err: failure }, "retryable failure");
    log.error(failure as Error, "as the first argument");
    log.error({ err: new Error("charge failed", { cause: failure }) }, "as a cause");
    // Without a message pino would take the error's: the statement with its values.
    log.error(failure as Error);
    log.warn({ err: failure });
    expect(leaked()).toEqual([]);
    const [warned, first, wrapped, bare, bareObject] = lines();
    expect(warned.err).toMatchObject({
      type: "UniqueConstraintViolationException",
      code: "23505",
      constraint: "charge_probe_key_unique",
      table: "charge_probe",
      message: expect.stringMatching(/^duplicate key value violates unique constraint "…"$/),
    });
    expect(warned.err.detail).toBeUndefined();
    expect(warned.err.stack).toMatch(/^UniqueConstraintViolationException: duplicate key/);
    expect(warned.err.stack).toContain("log-redaction.test.ts");
    expect(first.err.code).toBe("23505");
    expect(wrapped.err).toMatchObject({ message: "charge failed", cause: { code: "23505" } });
    expect(bare.msg).toBe('duplicate key value violates unique constraint "…"');
    expect(bareObject.msg).toBe(bare.msg);
  });

  test("a value PostgreSQL quotes in its own message is masked", async () => {
    const failure = await orm.em
      .fork()
      .execute(`select ?::uuid as id`, [SECRETS.sqlParam])
      .catch((e: unknown) => e);
    expect((failure as Error).message).toContain(SECRETS.sqlParam);
    const { log, lines, leaked } = capture();
    log.error({ err: failure }, "unexpected failure");
    expect(leaked()).toEqual([]);
    expect(lines()[0].err).toMatchObject({ code: "22P02", message: 'invalid input syntax for type uuid: "…"' });
  });

  test("the ORM never logs queries, even with debug on and a query asking for it", async () => {
    const run = async (overrides: Partial<Options>) => {
      const written: string[] = [];
      const probe = await MikroORM.init({
        ...ormOptions(entities, { clientUrl: adminUrl() }, 1),
        debug: true,
        logger: (m: string) => written.push(m),
        ...overrides,
      });
      try {
        await probe.em.fork().execute(`select ?::text as v`, [SECRETS.sqlParam], "all", { enabled: true });
        await probe.em.fork().execute(`select ?::text as v, ?::bigint as amount`, [SECRETS.idempotencyKey, SECRETS.amount]);
      } finally {
        await probe.close(true);
      }
      return written;
    };
    // Control: MikroORM's stock logger writes the statement with its parameters inlined.
    const stock = await run({ loggerFactory: (options) => new DefaultLogger(options) });
    expect(stock.join("\n")).toContain(SECRETS.sqlParam);

    const ours = await run({});
    expect(ours.length).toBeGreaterThan(0); // the ORM's other messages still get through
    expect(ours.filter((m) => m.includes("[query]"))).toEqual([]);
    for (const secret of [SECRETS.sqlParam, SECRETS.idempotencyKey, SECRETS.amount]) expect(ours.join("\n")).not.toContain(secret);
  });
});
