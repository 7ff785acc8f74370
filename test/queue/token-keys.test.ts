/**
 * Without QUEUE_TOKEN_SECRETS the signing secret lives in the store. When the
 * store loses it, instances must not split: whoever writes first wins, the
 * others adopt it, and every secret signed with keeps verifying everywhere.
 * Several instances on one Redis; time for the sync cadence is a counter.
 */
import { randomBytes } from "node:crypto";
import { fixedKeyRing, SECRET_SYNC_MS, sharedKeyRing } from "../../src/modules/queue/token-keys";
import { redisFactory } from "./store-factories";

const factory = redisFactory();
afterAll(() => factory.close());

const has = (keys: readonly Buffer[], k: Buffer) => keys.some((x) => x.equals(k));

test("after the store lost its secret, a fresh instance's secret wins, and the old one keeps verifying on every instance", async () => {
  const [sa, sb, sc] = await factory.create(3);
  let t = 0;
  const now = () => t;
  const a = sharedKeyRing(sa, now);
  const b = sharedKeyRing(sb, now);
  const old = (await a.keys()).signing;
  expect((await b.keys()).signing.equals(old)).toBe(true);

  await factory.lose();
  // An instance started now finds no secret and writes its own, before A or B notice.
  const c = sharedKeyRing(sc, now);
  const fresh = (await c.keys()).signing;
  expect(fresh.equals(old)).toBe(false);
  expect(has((await c.keys()).verifying, old)).toBe(false);

  // A and B notice on their next round: they sign with C's secret, still verify the old one, and hand it to the store.
  t += SECRET_SYNC_MS;
  await a.maintain();
  await b.maintain();
  for (const ring of [a, b]) {
    const k = await ring.keys();
    expect(k.signing.equals(fresh)).toBe(true);
    expect(has(k.verifying, old)).toBe(true);
  }
  // C meets a token signed with the old secret: it reads the set again and verifies it.
  const reloaded = await c.reload();
  expect(reloaded?.signing.equals(fresh)).toBe(true);
  expect(has(reloaded!.verifying, old)).toBe(true);
});

test("an instance that finds the secret gone writes its own back: nobody changes key", async () => {
  const [sa, sb, sc] = await factory.create(3);
  let t = 0;
  const a = sharedKeyRing(sa, () => t);
  const b = sharedKeyRing(sb, () => t);
  const key = (await a.keys()).signing;
  await b.keys();
  await factory.lose();
  t += SECRET_SYNC_MS;
  await a.maintain();
  const c = sharedKeyRing(sc, () => t);
  expect((await c.keys()).signing.equals(key)).toBe(true);
  await b.maintain();
  expect((await b.keys()).signing.equals(key)).toBe(true);
});

test("re-reads on tokens that do not verify are spaced out: forgeries cannot hammer the store", async () => {
  const [store] = await factory.create();
  let t = 0;
  let syncs = 0;
  const ring = sharedKeyRing(
    {
      syncTokenSecrets: (candidate, known) => {
        syncs++;
        return store.syncTokenSecrets(candidate, known);
      },
    },
    () => t,
  );
  await ring.keys();
  await Promise.all(Array.from({ length: 20 }, () => ring.reload()));
  expect(syncs).toBe(1);
  t += 100;
  await Promise.all(Array.from({ length: 20 }, () => ring.reload()));
  expect(syncs).toBe(2);
});

test("configured secrets: the first signs, all verify, the store is never asked", async () => {
  const secrets = [randomBytes(32), randomBytes(32)];
  const ring = fixedKeyRing(secrets);
  expect((await ring.keys()).signing).toBe(secrets[0]);
  expect((await ring.keys()).verifying).toEqual(secrets);
  expect(await ring.reload()).toBeUndefined();
});
