import { randomUUID } from "node:crypto";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { failedPrecondition, invalidArgument } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { WalletEntry, type WalletEntryKind } from "./wallet-entry.entity.js";
import { Wallet } from "./wallet.entity.js";

export interface WalletLimits {
  chargeMax: number;
  balanceMax: number;
}

export interface EntryView {
  id: string;
  kind: WalletEntryKind;
  amount: number;
  balanceAfter: number;
  idempotencyKey?: string;
  reservationId?: string;
  createdAt: Date;
}

export interface ChargeResult {
  balance: number;
  entry: EntryView;
}

const MAX_PAGE = 100;
const DEFAULT_PAGE = 20;

/**
 * Adds `amount` to the user's wallet (created on first use) and writes the
 * ledger entry, in one transaction. With an idempotency key, a retry returns
 * the first result and moves no money, also when the retries race: the unique
 * key (user, idempotency key) lets exactly one insert commit.
 */
export async function chargeBalance(
  em: EntityManager,
  clock: Clock,
  limits: WalletLimits,
  input: { userId: string; amount: bigint; idempotencyKey?: string },
): Promise<ChargeResult> {
  if (input.amount <= 0n) throw invalidArgument(Reason.AMOUNT_NOT_POSITIVE, "amount must be positive");
  if (input.amount > BigInt(limits.chargeMax)) {
    throw invalidArgument(Reason.CHARGE_LIMIT_EXCEEDED, `one charge may add at most ${limits.chargeMax} won`, { max: String(limits.chargeMax) });
  }
  const amount = Number(input.amount);
  const key = input.idempotencyKey || undefined;
  if (key) {
    const earlier = await findByKey(em, input.userId, key);
    if (earlier) return replay(earlier, amount);
  }
  try {
    return await em.transactional(async (tx) => {
      const now = clock.now();
      await tx.execute(`insert into wallet (user_id, balance, version, created_at, updated_at) values (?, 0, 1, ?, ?) on conflict (user_id) do nothing`, [
        input.userId,
        now,
        now,
      ]);
      // The row lock taken here orders concurrent changes of this wallet; the
      // bound keeps the balance under BALANCE_MAX whatever is sent.
      const [row] = await tx.execute<{ balance: string }[]>(
        `update wallet set balance = balance + ?, version = version + 1, updated_at = ?
         where user_id = ? and balance <= ? returning balance`,
        [amount, now, input.userId, limits.balanceMax - amount],
      );
      if (!row) {
        throw failedPrecondition(Reason.BALANCE_LIMIT_EXCEEDED, `a balance may not exceed ${limits.balanceMax} won`, { max: String(limits.balanceMax) });
      }
      const entry = await appendEntry(tx, now, { userId: input.userId, kind: "CHARGE", amount, balanceAfter: Number(row.balance), idempotencyKey: key });
      return { balance: entry.balanceAfter, entry };
    });
  } catch (err) {
    // A concurrent retry with the same key committed first: answer with its result.
    if (key && err instanceof UniqueConstraintViolationException) {
      const earlier = await findByKey(em.fork(), input.userId, key);
      if (earlier) return replay(earlier, amount);
    }
    throw err;
  }
}

/** Writes one ledger line inside the caller's transaction. */
export async function appendEntry(
  tx: EntityManager,
  now: Date,
  e: { userId: string; kind: WalletEntryKind; amount: number; balanceAfter: number; idempotencyKey?: string; reservationId?: string },
): Promise<EntryView> {
  const id = randomUUID();
  await tx.execute(
    `insert into wallet_entry (id, user_id, kind, amount, balance_after, idempotency_key, reservation_id, created_at)
     values (?, ?, ?, ?, ?, ?, ?, ?)`,
    [id, e.userId, e.kind, e.amount, e.balanceAfter, e.idempotencyKey ?? null, e.reservationId ?? null, now],
  );
  return { id, kind: e.kind, amount: e.amount, balanceAfter: e.balanceAfter, idempotencyKey: e.idempotencyKey, reservationId: e.reservationId, createdAt: now };
}

/**
 * Takes `amount` from the wallet and writes its PAYMENT ledger line, inside
 * the caller's transaction and in one statement (the ledger insert reads the
 * new balance from the update), or refuses with INSUFFICIENT_BALANCE. The
 * guard is in the UPDATE itself, so two concurrent debits can never both pass
 * on the same money. Returns the balance after the debit.
 */
export async function debitWithEntry(
  tx: EntityManager,
  now: Date,
  e: { userId: string; amount: number; idempotencyKey?: string; reservationId: string },
): Promise<number> {
  const [row] = await tx.execute<{ balance_after: string }[]>(
    `with debited as (
       update wallet set balance = balance - ?, version = version + 1, updated_at = ?
       where user_id = ? and balance >= ? returning user_id, balance
     )
     insert into wallet_entry (id, user_id, kind, amount, balance_after, idempotency_key, reservation_id, created_at)
     select ?, user_id, 'PAYMENT', ?, balance, ?, ?, ? from debited
     returning balance_after`,
    [e.amount, now, e.userId, e.amount, randomUUID(), -e.amount, e.idempotencyKey ?? null, e.reservationId, now],
  );
  if (!row) {
    const balance = await getBalance(tx, e.userId);
        // The figures go in the metadata for the client, not in the message: messages reach the logs.
    throw failedPrecondition(Reason.INSUFFICIENT_BALANCE, "the balance does not cover the amount", {
      balance: String(balance),
      required: String(e.amount),
    });
  }
  return Number(row.balance_after);
}

async function findByKey(em: EntityManager, userId: string, key: string) {
  return em.findOne(WalletEntry, { wallet: userId, idempotencyKey: key }, { disableIdentityMap: true });
}

/**
 * A charge's first result. Charges and payments share the ledger's (user,
 * key) space, so a payment's key is refused like a key reused with another
 * amount: IDEMPOTENCY_KEY_REUSED, final (no retry could take it).
 */
function replay(earlier: WalletEntry, amount: number): ChargeResult {
  if (earlier.kind !== "CHARGE") {
    throw failedPrecondition(Reason.IDEMPOTENCY_KEY_REUSED, "this idempotency key was already used for a payment; use a new key for the charge");
  }
  if (earlier.amount !== amount) {
    throw failedPrecondition(Reason.IDEMPOTENCY_KEY_REUSED, "this idempotency key was already used for a charge of another amount");
  }
  return { balance: earlier.balanceAfter, entry: view(earlier) };
}

export async function getBalance(em: EntityManager, userId: string): Promise<number> {
  const wallet = await em.findOne(Wallet, { userId }, { fields: ["balance"], disableIdentityMap: true });
  return wallet?.balance ?? 0;
}

/** A page of the ledger, newest first. The page token is an opaque cursor. */
export async function listEntries(
  em: EntityManager,
  userId: string,
  pageSize: number,
  pageToken: string,
): Promise<{ entries: EntryView[]; nextPageToken: string }> {
  const size = Math.min(pageSize || DEFAULT_PAGE, MAX_PAGE);
  const before = pageToken ? decodeCursor(pageToken) : undefined;
  const rows = await em.find(
    WalletEntry,
    { wallet: userId, ...(before !== undefined ? { seq: { $lt: before } } : {}) },
    { orderBy: { seq: "desc" }, limit: size + 1, disableIdentityMap: true },
  );
  const page = rows.slice(0, size);
  const nextPageToken = rows.length > size ? encodeCursor(page[page.length - 1].seq) : "";
  return { entries: page.map(view), nextPageToken };
}

function view(e: WalletEntry): EntryView {
  return {
    id: e.id,
    kind: e.kind,
    amount: e.amount,
    balanceAfter: e.balanceAfter,
    idempotencyKey: e.idempotencyKey ?? undefined,
    reservationId: e.reservationId ?? undefined,
    createdAt: e.createdAt,
  };
}

const CURSOR = /^c1:(\d{1,16})$/;

function encodeCursor(seq: number): string {
  return Buffer.from(`c1:${seq}`).toString("base64url");
}

function decodeCursor(token: string): number {
  const m = CURSOR.exec(Buffer.from(token, "base64url").toString());
  if (!m) throw invalidArgument(Reason.INVALID_PAGE_TOKEN, "page_token is not one this server issued");
  return Number(m[1]);
}
