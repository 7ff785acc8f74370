/** Wallet through the real server over real PostgreSQL: balances, the ledger, idempotency, limits. */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WalletEntryKind } from "../../gen/boxoffice/wallet/v1/wallet_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";

let db: TestDatabase;
let s: TestServer;
let wallet: Client<typeof WalletService>;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({ DATABASE_URL: db.url, CHARGE_MAX: "1000000", BALANCE_MAX: "5000000", DB_POOL_MAX: "10" });
  wallet = createClient(WalletService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
});
afterEach(async () => {
  expect(await checkInvariants(s.deps.orm.em.fork())).toEqual([]);
});
afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

const fail = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e) => ConnectError.from(e),
  );
const reason = (e: ConnectError) => e.findDetails(ErrorInfoSchema)[0]?.reason;

/** The ledger must explain the balance exactly. */
async function ledgerMatches(userId: string) {
  const [row] = await s.deps.orm.em.fork().execute<{ balance: string | null; sum: string | null; n: string }[]>(
    `select (select balance from wallet where user_id = ?) as balance,
              (select sum(amount) from wallet_entry where user_id = ?) as sum,
              (select count(*) from wallet_entry where user_id = ?) as n`,
    [userId, userId, userId],
  );
  return { balance: Number(row.balance ?? 0), sum: Number(row.sum ?? 0), entries: Number(row.n) };
}

test("a user never charged has balance 0 and no wallet row", async () => {
  expect((await wallet.getBalance({ userId: "nobody" })).balance).toBe(0n);
  expect(await ledgerMatches("nobody")).toEqual({ balance: 0, sum: 0, entries: 0 });
});

test("a charge creates the wallet and a ledger entry with the balance after it", async () => {
  const first = await wallet.chargeBalance({ userId: "ch-1", amount: 5000n });
  expect(first.balance).toBe(5000n);
  expect(first.entry).toMatchObject({ kind: WalletEntryKind.CHARGE, amount: 5000n, balanceAfter: 5000n });
  const second = await wallet.chargeBalance({ userId: "ch-1", amount: 250n });
  expect(second.balance).toBe(5250n);
  expect((await wallet.getBalance({ userId: "ch-1" })).balance).toBe(5250n);
  expect(await ledgerMatches("ch-1")).toEqual({ balance: 5250, sum: 5250, entries: 2 });
});

test("1,000 concurrent charges of 1 add up exactly", async () => {
  await Promise.all(Array.from({ length: 1000 }, () => wallet.chargeBalance({ userId: "many", amount: 1n })));
  expect((await wallet.getBalance({ userId: "many" })).balance).toBe(1000n);
  expect(await ledgerMatches("many")).toEqual({ balance: 1000, sum: 1000, entries: 1000 });
});

test("racing retries with one idempotency key move money once and all get the first result", async () => {
  const results = await Promise.all(
    Array.from({ length: 50 }, () => wallet.chargeBalance({ userId: "idem", amount: 700n, idempotencyKey: "topup-2026-12-01" })),
  );
  expect(new Set(results.map((r) => r.entry?.entryId)).size).toBe(1);
  expect(results.every((r) => r.balance === 700n)).toBe(true);
  // A later retry still answers with the first result, even after other charges moved the balance.
  await wallet.chargeBalance({ userId: "idem", amount: 1n });
  const late = await wallet.chargeBalance({ userId: "idem", amount: 700n, idempotencyKey: "topup-2026-12-01" });
  expect(late.balance).toBe(700n);
  expect(late.entry?.entryId).toBe(results[0].entry?.entryId);
  expect(await ledgerMatches("idem")).toEqual({ balance: 701, sum: 701, entries: 2 });
});

test("the same key with a different amount is refused and moves nothing", async () => {
  await wallet.chargeBalance({ userId: "reuse", amount: 100n, idempotencyKey: "k1" });
  const err = await fail(wallet.chargeBalance({ userId: "reuse", amount: 200n, idempotencyKey: "k1" }));
  expect(err.code).toBe(Code.FailedPrecondition);
  expect(reason(err)).toBe("IDEMPOTENCY_KEY_REUSED");
  expect(await ledgerMatches("reuse")).toEqual({ balance: 100, sum: 100, entries: 1 });
});

test.each([
  ["zero", 0n, Code.InvalidArgument],
  ["negative", -5n, Code.InvalidArgument],
  ["over CHARGE_MAX", 1_000_001n, Code.InvalidArgument],
  ["the int64 maximum", 9_223_372_036_854_775_807n, Code.InvalidArgument],
])("a %s amount is INVALID_ARGUMENT with nothing written", async (_name, amount, code) => {
  const err = await fail(wallet.chargeBalance({ userId: "bad-amounts", amount }));
  expect(err.code).toBe(code);
  expect(await ledgerMatches("bad-amounts")).toEqual({ balance: 0, sum: 0, entries: 0 });
});

test("a charge that would pass BALANCE_MAX is refused, also under concurrency", async () => {
  // Six concurrent charges of 1,000,000 against a 5,000,000 cap: exactly five fit.
  const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => wallet.chargeBalance({ userId: "capped", amount: 1_000_000n })));
  expect(outcomes.filter((o) => o.status === "fulfilled").length).toBe(5);
  const refused = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
  expect(reason(ConnectError.from(refused.reason))).toBe("BALANCE_LIMIT_EXCEEDED");
  expect(await ledgerMatches("capped")).toEqual({ balance: 5_000_000, sum: 5_000_000, entries: 5 });
});

test("ListWalletEntries pages newest first with an opaque token", async () => {
  for (let i = 1; i <= 45; i++) await wallet.chargeBalance({ userId: "pager", amount: BigInt(i) });
  const seen: bigint[] = [];
  let token = "";
  let pages = 0;
  do {
    const page = await wallet.listWalletEntries({ userId: "pager", pageSize: 20, pageToken: token });
    seen.push(...page.entries.map((e) => e.amount));
    token = page.nextPageToken;
    pages++;
  } while (token);
  expect(pages).toBe(3);
  expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => BigInt(45 - i)));
  const bad = await fail(wallet.listWalletEntries({ userId: "pager", pageToken: "bm9wZQ" }));
  expect(bad.code).toBe(Code.InvalidArgument);
  expect((await wallet.listWalletEntries({ userId: "pager" })).entries.length).toBe(20);
});
