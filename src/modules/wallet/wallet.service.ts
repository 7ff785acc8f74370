import { LockMode, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { failedPrecondition, invalidArgument } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { Wallet, WalletEntry, type WalletEntryKind } from "./wallet.entity.js";

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
      // The row lock orders concurrent changes of this wallet (charges and
      // payments alike), so every charge adds up instead of failing on the version.
      const wallet = await lockWallet(tx, input.userId, now, { create: true });
      const entry = wallet!.credit(amount, limits.balanceMax, now, key);
      tx.persist(entry);
      return { balance: wallet!.balance, entry: view(entry) };
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

/**
 * The user's wallet locked for update inside the caller's transaction, or
 * undefined when the user has none. With `create`, a missing wallet is made
 * first: the insert skips a row a concurrent first charge made, so both
 * charges then queue on the same row lock instead of one failing.
 */
export async function lockWallet(tx: EntityManager, userId: string, now: Date, options: { create?: boolean } = {}): Promise<Wallet | undefined> {
  const found = await tx.findOne(Wallet, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  if (found || !options.create) return found ?? undefined;
  await tx.createQueryBuilder(Wallet).insert({ userId, balance: 0, version: 1, createdAt: now, updatedAt: now }).onConflict("userId").ignore().execute();
  return tx.findOneOrFail(Wallet, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
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
