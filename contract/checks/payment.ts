/** The wallet and the payment: balance, charges, paying the hold, and what reads show afterwards. */
import { Code } from "@connectrpc/connect";
import { expect, forUser, randomKey, reservationStatus, rpc, type Ctx } from "../context.js";
import { expectRefusal } from "../refusal.js";
import { skip } from "../report.js";
import type { Msg } from "../session.js";
import type { Hold } from "./reservation.js";
import { activeToken } from "./queue.js";

export async function paymentChecks(ctx: Ctx, token: string | undefined, held: Hold | undefined): Promise<void> {
  const { s, report, image } = ctx;
  const balanceRpc = rpc(image, "wallet", "GetBalance");
  const charge = rpc(image, "wallet", "ChargeBalance");
  const pay = rpc(image, "reservation", "PayReservation");
  const getBalance = async () => BigInt((await s.unary(balanceRpc, forUser(s))).balance);

  const before = await report.check("GetBalance: the user's balance", async () => {
    const b = await getBalance();
    expect(b >= 0n, `balance ${b}`);
    return b;
  });
  const amount = held ? BigInt(held.reservation.amount) : undefined;
  const needHold = () => {
    if (!token) skip("no ACTIVE queue token");
    if (!held) skip("no hold to pay");
  };

  await report.check("PayReservation with too small a balance: FAILED_PRECONDITION INSUFFICIENT_BALANCE, metadata balance and required", async () => {
    needHold();
    if (before === undefined) return skip("no balance");
    if (before >= amount!) skip(`the user's balance (${before}) already covers the hold`);
    const err = await s.refusal(pay, { reservationId: held!.reservation.reservationId, idempotencyKey: randomKey("short") }, { queueToken: token });
    const info = expectRefusal(image, pay, err, Code.FailedPrecondition, "INSUFFICIENT_BALANCE");
    expect(info.metadata.balance === String(before) && info.metadata.required === String(amount), `metadata ${JSON.stringify(info.metadata)}`);
  });

  if (s.mode === "jwt") {
    await report.check("ChargeBalance with the user's own token (no wallet:charge scope): PERMISSION_DENIED SCOPE_REQUIRED", async () => {
      const err = await s.refusal(charge, { userId: s.user, amount: 1000n, idempotencyKey: randomKey("charge") });
      expectRefusal(image, charge, err, Code.PermissionDenied, "SCOPE_REQUIRED");
    });
  }
  const chargeAs = { bearer: s.mode === "jwt" ? (s.chargeBearer ?? null) : undefined };
  const canCharge = () => {
    if (s.mode === "jwt" && !s.chargeBearer) skip("AUTH_MODE=jwt: charging needs --charge-token (scope wallet:charge)");
  };
  const chargeAmount = (amount ?? 50_000n) + 1_000n;
  const chargeKey = randomKey("charge");
  const charged = await report.check("ChargeBalance: credits the wallet and writes a CHARGE entry", async () => {
    canCharge();
    const start = await getBalance();
    const r = await s.unary(charge, { userId: s.user, amount: chargeAmount, idempotencyKey: chargeKey }, chargeAs);
    expect(BigInt(r.balance) === start + chargeAmount, `balance ${r.balance}, expected ${start + chargeAmount}`);
    expect(BigInt(r.entry?.amount) === chargeAmount && r.entry.idempotencyKey === chargeKey, "the entry does not match the charge");
    return r;
  });
  await report.check("ChargeBalance retried with the same idempotency_key: the same entry, credited once", async () => {
    if (!charged) skip("no charge");
    const r = await s.unary(charge, { userId: s.user, amount: chargeAmount, idempotencyKey: chargeKey }, chargeAs);
    expect(r.entry?.entryId === charged.entry.entryId, "a different entry");
    expect((await getBalance()) === BigInt(charged.balance), "the balance moved");
  });
  await report.check("ChargeBalance with that idempotency_key and another amount: FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED", async () => {
    if (!charged) skip("no charge");
    const err = await s.refusal(charge, { userId: s.user, amount: chargeAmount + 1n, idempotencyKey: chargeKey }, chargeAs);
    expectRefusal(image, charge, err, Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED");
  });

  const payKey = randomKey("pay");
  const paid = await report.check("PayReservation: CONFIRMED, a payment of the hold's amount, the balance less it", async () => {
    needHold();
    const start = await getBalance();
    if (start < amount!) skip(`the balance (${start}) does not cover the hold (${amount})`);
    const r = await s.unary(pay, { reservationId: held!.reservation.reservationId, idempotencyKey: payKey }, { queueToken: token });
    expect(r.reservation?.status === reservationStatus(image, "CONFIRMED"), `status ${r.reservation?.status}`);
    expect(r.reservation.confirmedAt, "no confirmed_at");
    expect(BigInt(r.payment?.amount) === amount && r.payment.reservationId === held!.reservation.reservationId, "the payment does not match");
    expect(BigInt(r.balance) === start - amount!, `balance ${r.balance}, expected ${start - amount!}`);
    return r;
  });
  await report.check("PayReservation retried with the same idempotency_key after the payment ended the token: the same payment", async () => {
    if (!paid) skip("no payment");
    const r = await s.unary(pay, { reservationId: held!.reservation.reservationId, idempotencyKey: payKey }, { queueToken: token });
    expect(r.payment?.paymentId === paid.payment.paymentId, "a different payment");
    expect((await getBalance()) === BigInt(paid.balance), "the balance moved");
  });
  await report.check("a gated call with the token the payment ended: FAILED_PRECONDITION QUEUE_TOKEN_EXPIRED", async () => {
    if (!paid) skip("no payment");
    const dates = rpc(image, "concert", "ListAvailableDates");
    const err = await s.refusal(dates, { concertId: held!.reservation.concertId }, { queueToken: token });
    expectRefusal(image, dates, err, Code.FailedPrecondition, "QUEUE_TOKEN_EXPIRED");
  });
  await report.check("PayReservation of the paid reservation with a new key and token: FAILED_PRECONDITION ALREADY_PAID", async () => {
    if (!paid) skip("no payment");
    const fresh = await activeToken(ctx, s);
    const err = await s.refusal(pay, { reservationId: held!.reservation.reservationId, idempotencyKey: randomKey("pay") }, { queueToken: fresh });
    expectRefusal(image, pay, err, Code.FailedPrecondition, "ALREADY_PAID");
  });

  await report.check("GetReservation: CONFIRMED", async () => {
    if (!paid) skip("no payment");
    const r = (await s.unary(rpc(image, "reservation", "GetReservation"), { reservationId: held!.reservation.reservationId })).reservation as Msg;
    expect(r.status === reservationStatus(image, "CONFIRMED"), `status ${r.status}`);
  });
  await report.check("ListReservations: the user's reservations, the paid one among them", async () => {
    const list = (await s.unary(rpc(image, "reservation", "ListReservations"), { ...forUser(s), pageSize: 100 })).reservations as Msg[];
    for (const r of list) expect(r.userId === s.user, `a reservation of ${r.userId}`);
    if (held)
      expect(
        list.some((r) => r.reservationId === held.reservation.reservationId),
        "the hold is not listed",
      );
  });
  await report.check("ListWalletEntries: the charge and the payment, newest first", async () => {
    const entries = (await s.unary(rpc(image, "wallet", "ListWalletEntries"), { ...forUser(s), pageSize: 100 })).entries as Msg[];
    if (charged)
      expect(
        entries.some((e) => e.entryId === charged.entry.entryId),
        "the charge is not listed",
      );
    if (paid)
      expect(
        entries.some((e) => e.reservationId === held!.reservation.reservationId && BigInt(e.amount) === -amount!),
        "the payment is not listed",
      );
    if (paid) expect(BigInt(entries[0].balanceAfter) === BigInt(paid.balance), "the newest entry's balance_after is not the balance after the payment");
  });
  await report.check("GetBalance after: the balance the payment reported", async () => {
    if (!paid) skip("no payment");
    expect((await getBalance()) === BigInt(paid.balance), "the balance differs");
  });
  for (const name of ["ListReservations", "ListWalletEntries"] as const) {
    await report.check(`${name} with a page_token the server did not issue: INVALID_ARGUMENT INVALID_PAGE_TOKEN`, async () => {
      const m = rpc(image, name === "ListReservations" ? "reservation" : "wallet", name);
      expectRefusal(image, m, await s.refusal(m, { ...forUser(s), pageToken: "not-a-page-token" }), Code.InvalidArgument, "INVALID_PAGE_TOKEN");
    });
  }
}
