import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { ReplyError, type Redis } from "ioredis";
import { domainError } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import {
  newGenerationId,
  type AdmissionLimits,
  type AdmissionRound,
  type QueueStore,
  type RestorePolicy,
  type StatusTouch,
  type StoredTicket,
  type TicketRef,
  type TicketState,
} from "./queue-store.js";

/*
 * Layout under the prefix P (one Redis node; every change is one Lua script,
 * so concurrent callers and instances see each step as atomic):
 *   P:seq        INCR counter of ticket numbers
 *   P:wait       ZSET user -> ticket number: the line, in arrival order (ZRANK = position)
 *   P:active     ZSET user -> active-until (ms)
 *   P:used       ZSET user -> idle deadline (ms): the slot goes back unless a gated call
 *                comes first. ACTIVE users only (at most QUEUE_MAX_ACTIVE), nothing per
 *                waiting user. Apart from P:active, so the round finds each kind of expiry,
 *                and the next slot to free, with one range read per key
 *   P:u:<0..16383> HASH user -> "seq:lastSeen" (lastSeen 0 = active); small buckets stay
 *                listpack-encoded, ~20 bytes a user instead of ~100 for a top-level key
 *   P:tat        GCRA theoretical arrival time of the next admission (ms)
 *   P:admitted   INCR counter of admissions in this data's life, by every instance: the
 *                difference between two rounds is the line's throughput in between
 *   P:sweep      idle-sweep cursor (ticket number)
 *   P:ver        bumped whenever someone's position or state may have changed
 *   P:gen        the generation, "id:start": a random id and when this data started (ms).
 *                Missing: the data is new or was lost (an empty restart); the next script
 *                starts a new one (see TicketOrigin)
 *   P:born       ZSET minute -> first ticket number issued in it, so a WAITING token (which
 *                says when its ticket was issued) is the same whenever it is asked for again,
 *                at no cost per user; one entry per minute with arrivals, the last day's only
 *   P:restored   SET of ticket numbers put back from their tokens in this generation (each
 *                only once); gone when the restore window closes
 *   P:secret     token signing secret; P:secrets ZSET of the secrets tokens may still carry
 *                (unless QUEUE_TOKEN_SECRETS is set: then neither exists)
 * A waiting user costs one ZSET entry plus one bucket field: ~150 bytes.
 */
const COMMON = `
local P = ARGV[1]
local WAIT, ACTIVE, USED = P .. 'wait', P .. 'active', P .. 'used'
local function bucket(u)
  local h = 0
  for i = 1, #u do h = (h * 31 + string.byte(u, i)) % 16384 end
  return P .. 'u:' .. h
end
local function parse(rec)
  local s, t = string.match(rec, '^(%d+):(%d+)$')
  return tonumber(s), tonumber(t)
end
-- seq, state ('A' active, 'W' waiting, 'X' stale), expiry or last seen
local function lookup(u, now, idle)
  local rec = redis.call('HGET', bucket(u), u)
  if not rec then return nil end
  local seq, seen = parse(rec)
  local exp = redis.call('ZSCORE', ACTIVE, u)
  if exp then
    exp = tonumber(exp)
    -- No idle deadline (a slot from before idle tracking): the window alone bounds it.
    local usedUntil = tonumber(redis.call('ZSCORE', USED, u) or exp)
    if exp > now and usedUntil > now then return seq, 'A', exp end
    return seq, 'X', 0
  end
  if seen > 0 and seen + idle > now and redis.call('ZSCORE', WAIT, u) then return seq, 'W', seen end
  return seq, 'X', 0
end
local function drop(u)
  local n = redis.call('ZREM', WAIT, u) + redis.call('ZREM', ACTIVE, u)
  redis.call('ZREM', USED, u)
  redis.call('HDEL', bucket(u), u)
  if n > 0 then redis.call('INCR', P .. 'ver') end
end
-- Ticket numbers only grow: after a loss, new ones start above \`floor\` (the highest an
-- instance has seen), so new arrivals queue behind the tickets their tokens put back.
local function raise(floor)
  if floor > tonumber(redis.call('GET', P .. 'seq') or '0') then redis.call('SET', P .. 'seq', string.format('%d', floor)) end
end
-- The generation's id and start; \`id\` (random, from the caller) names a new one.
local function generation(now, floor, id)
  local g = redis.call('GET', P .. 'gen')
  if g then
    local i, start = string.match(g, '^(%d+):(%d+)$')
    return tonumber(i), tonumber(start)
  end
  redis.call('SET', P .. 'gen', string.format('%d:%d', id, now))
  raise(floor)
  return id, now
end
-- When ticket \`seq\` was issued (its minute, ms), or 0 when unknown.
local function born(seq)
  local hit = redis.call('ZREVRANGEBYSCORE', P .. 'born', seq, '-inf', 'LIMIT', 0, 1)
  if #hit == 0 then return 0 end
  return tonumber(hit[1]) * 60000
end
`;

// ARGV: P, user, now, idle, floor, new generation id. Returns seq, state, expiry, position, generation, issued.
const ISSUE = `${COMMON}
local u, now, idle, floor = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local gen = generation(now, floor, tonumber(ARGV[6]))
local seq, st, x = lookup(u, now, idle)
if st == 'A' then return {seq, 2, x, -1, gen, born(seq)} end
if st == 'W' then
  redis.call('HSET', bucket(u), u, string.format('%d:%d', seq, now))
  return {seq, 1, now + idle, redis.call('ZRANK', WAIT, u), gen, born(seq)}
end
if st == 'X' then drop(u) end
raise(floor)
seq = redis.call('INCR', P .. 'seq')
redis.call('ZADD', WAIT, seq, u)
redis.call('HSET', bucket(u), u, string.format('%d:%d', seq, now))
local minute = math.floor(now / 60000)
if redis.call('ZADD', P .. 'born', 'NX', seq, minute) == 1 then redis.call('ZREMRANGEBYRANK', P .. 'born', 0, -1441) end
return {seq, 1, now + idle, redis.call('ZRANK', WAIT, u), gen, minute * 60000}
`;

// ARGV: P, now, idle, touch (1: keep WAITING in line), use (> 0: a gated call keeps an
// ACTIVE slot this long), restore (1: put lost tickets back), maxActive, activeIdle, window,
// maxAge, new generation id, then per ref: user, seq, the token's generation (0: none), kind (1 WAITING,
// 2 ACTIVE), its time (issued / active until). Returns the generation, then state,
// position, expiry, restored per ref.
const STATUS = `${COMMON}
local now, idle, touch, use = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local restore, maxActive, activeIdle = ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
local window, maxAge = tonumber(ARGV[9]), tonumber(ARGV[10])
local gen, genStart = generation(now, 0, tonumber(ARGV[11]))
local RESTORED = P .. 'restored'

-- The ticket of a token from an older generation, lost with the data: back at its number.
local function putBack(u, seq, kind, t)
  local b = bucket(u)
  if kind == 2 and t > now and redis.call('ZCARD', ACTIVE) < maxActive then
    redis.call('ZADD', ACTIVE, t, u)
    redis.call('ZADD', USED, now + activeIdle, u)
    redis.call('HSET', b, u, string.format('%d:0', seq))
  else
    redis.call('ZADD', WAIT, seq, u)
    redis.call('HSET', b, u, string.format('%d:%d', seq, now))
    if kind == 1 then redis.call('ZADD', P .. 'born', 'LT', seq, math.floor(t / 60000)) end
  end
  raise(seq)
  -- Relative: Redis expires by its own clock, the window is on the callers' (tests run on a manual one).
  redis.call('PEXPIRE', RESTORED, genStart + window - now)
  redis.call('INCR', P .. 'ver')
end
local function restorable(tgen, kind, t)
  if not restore or tgen == 0 or tgen == gen or now >= genStart + window then return false end
  if kind == 2 then return t > now end
  return t > 0 and t + maxAge > now
end

local out = {gen}
for i = 12, #ARGV, 5 do
  local u, want = ARGV[i], tonumber(ARGV[i + 1])
  local tgen, kind, t = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local seq, st, x = lookup(u, now, idle)
  local restored = 0
  if seq == nil and restorable(tgen, kind, t) and redis.call('SADD', RESTORED, want) == 1 then
    putBack(u, want, kind, t)
    seq, st, x = lookup(u, now, idle)
    restored = 1
  end
  if seq ~= want then
    st = 'E'
  elseif st == 'X' then
    drop(u)
    st = 'E'
  end
  if st == 'A' then
    -- GT: an instance whose clock lags never moves a deadline back.
    if use > 0 then redis.call('ZADD', USED, 'GT', now + use, u) end
    out[#out + 1] = 2; out[#out + 1] = -1; out[#out + 1] = x
  elseif st == 'W' then
    if touch then
      redis.call('HSET', bucket(u), u, string.format('%d:%d', seq, now))
      x = now
    end
    out[#out + 1] = 1; out[#out + 1] = redis.call('ZRANK', WAIT, u); out[#out + 1] = x + idle
  else
    out[#out + 1] = 3; out[#out + 1] = -1; out[#out + 1] = 0
  end
  out[#out + 1] = restored
end
return out
`;

// ARGV: P, now, maxActive, ratePerSecond, burst, activeTtl, idle, sweepBatch, activeIdle, floor,
// new generation id
const ADMIT = `${COMMON}
local now, maxActive, rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl, idle, sweepN = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local activeIdle, floor = tonumber(ARGV[9]), tonumber(ARGV[10])
local gen = generation(now, floor, tonumber(ARGV[11]))
raise(floor)

-- 1. Active windows that ran out free their slot, and so do actives that went idle.
local function release(users)
  local n = 0
  for _, u in ipairs(users) do
    redis.call('ZREM', USED, u)
    -- Only a slot still held ends: a deadline left behind (by an older script) must
    -- not delete the record of the user's next, waiting ticket.
    if redis.call('ZREM', ACTIVE, u) == 1 then
      redis.call('HDEL', bucket(u), u)
      n = n + 1
    end
  end
  return n
end
local gone = release(redis.call('ZRANGEBYSCORE', ACTIVE, '-inf', now, 'LIMIT', 0, 1000))
local idleGone = release(redis.call('ZRANGEBYSCORE', USED, '-inf', now, 'LIMIT', 0, 1000))

-- 2. Idle sweep: a slice of the line per round, resuming where the last one stopped.
local dropped = 0
local cursor = redis.call('GET', P .. 'sweep') or '0'
local slice = redis.call('ZRANGEBYSCORE', WAIT, '(' .. cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, sweepN)
for i = 1, #slice, 2 do
  local u = slice[i]
  local rec = redis.call('HGET', bucket(u), u)
  local seq, seen = 0, 0
  if rec then seq, seen = parse(rec) end
  if seen + idle <= now then
    redis.call('ZREM', WAIT, u)
    redis.call('HDEL', bucket(u), u)
    dropped = dropped + 1
  end
  cursor = slice[i + 1]
end
if #slice < sweepN * 2 then cursor = '0' end
redis.call('SET', P .. 'sweep', cursor)

-- 3. Admit from the head, bounded by free capacity and by the rate (GCRA).
local admitted = 0
local room = maxActive - redis.call('ZCARD', ACTIVE)
if room > 0 then
  local T = 1000 / rate
  local tat = tonumber(redis.call('GET', P .. 'tat') or '0')
  if tat < now then tat = now end
  local n = math.min(room, math.floor((now + burst * T - tat) / T))
  while n > 0 do
    local heads = redis.call('ZRANGE', WAIT, 0, n - 1)
    if #heads == 0 then break end
    for _, u in ipairs(heads) do
      local b = bucket(u)
      local rec = redis.call('HGET', b, u)
      redis.call('ZREM', WAIT, u)
      local seq, seen = 0, 0
      if rec then seq, seen = parse(rec) end
      if seen + idle <= now then
        redis.call('HDEL', b, u)
        dropped = dropped + 1
      else
        redis.call('ZADD', ACTIVE, now + ttl, u)
        -- Admission is the first use: the idle clock starts now.
        redis.call('ZADD', USED, now + activeIdle, u)
        redis.call('HSET', b, u, string.format('%d:0', seq))
        admitted = admitted + 1
        n = n - 1
      end
    end
  end
  if admitted > 0 then
    redis.call('SET', P .. 'tat', string.format('%d', math.ceil(tat + admitted * T)))
  end
end

-- 4. Admissions so far, by every instance (the callers derive the admission rate from it).
local total
if admitted > 0 then total = redis.call('INCRBY', P .. 'admitted', admitted) else total = tonumber(redis.call('GET', P .. 'admitted') or '0') end

-- 5. When the next slot frees at the latest known: the earliest window end or idle deadline (0: nobody active).
local nextFree = 0
for _, key in ipairs({ACTIVE, USED}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first > 0 and (nextFree == 0 or tonumber(first[2]) < nextFree) then nextFree = tonumber(first[2]) end
end

local ver
if admitted + dropped + gone + idleGone > 0 then ver = redis.call('INCR', P .. 'ver') else ver = tonumber(redis.call('GET', P .. 'ver') or '0') end
return {admitted, gone, idleGone, dropped, redis.call('ZCARD', WAIT), redis.call('ZCARD', ACTIVE), total, ver, nextFree, gen}
`;

// ARGV: P, now, candidate, known secrets (base64). Returns the signing secret, then the others.
const SECRETS = `
local P, now = ARGV[1], tonumber(ARGV[2])
local KEY, RING = P .. 'secret', P .. 'secrets'
local current = redis.call('GET', KEY)
if not current then
  current = ARGV[3]
  redis.call('SET', KEY, current)
end
for i = 4, #ARGV do redis.call('ZADD', RING, 'NX', now, ARGV[i]) end
-- The signing secret is always the newest, so trimming drops only old verify-only ones.
redis.call('ZADD', RING, now, current)
local n = redis.call('ZCARD', RING)
if n > 16 then redis.call('ZREMRANGEBYRANK', RING, 0, n - 17) end
local out = {current}
for _, s in ipairs(redis.call('ZRANGE', RING, 0, -1)) do
  if s ~= current then out[#out + 1] = s end
end
return out
`;

const EXPIRE = `${COMMON}
local u, want = ARGV[2], tonumber(ARGV[3])
local rec = redis.call('HGET', bucket(u), u)
if not rec then return 0 end
local seq = parse(rec)
if seq ~= want then return 0 end
drop(u)
return 1
`;

const STATES: Record<number, TicketState> = { 1: "WAITING", 2: "ACTIVE", 3: "EXPIRED" };

interface QueueCommands {
  queueIssue(...args: (string | number)[]): Promise<number[]>;
  queueStatus(...args: (string | number)[]): Promise<number[]>;
  queueAdmit(...args: (string | number)[]): Promise<number[]>;
  queueExpire(...args: (string | number)[]): Promise<number>;
  queueSecrets(...args: (string | number)[]): Promise<string[]>;
}

/** Status lookups per script call, so one call never blocks Redis for long. */
const STATUS_CHUNK = 500;

/**
 * Redis unreachable (refused, closed, timed out) becomes UNAVAILABLE, which
 * clients retry. A reply error (a bug in a script) stays what it is.
 */
async function reachable<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof ReplyError) throw err;
    throw domainError(Code.Unavailable, Reason.QUEUE_UNAVAILABLE, "the waiting room is unreachable right now; retry shortly");
  }
}

export function createRedisQueueStore(redis: Redis, prefix: string): QueueStore {
  redis.defineCommand("queueIssue", { numberOfKeys: 0, lua: ISSUE });
  redis.defineCommand("queueStatus", { numberOfKeys: 0, lua: STATUS });
  redis.defineCommand("queueAdmit", { numberOfKeys: 0, lua: ADMIT });
  redis.defineCommand("queueExpire", { numberOfKeys: 0, lua: EXPIRE });
  redis.defineCommand("queueSecrets", { numberOfKeys: 0, lua: SECRETS });
  const r = redis as unknown as Redis & QueueCommands;
  /** The highest ticket number this instance has seen: where numbering resumes if the data is lost. */
  let highestSeq = 0;
  const saw = (seq: number) => {
    if (seq > highestSeq) highestSeq = seq;
  };

  return {
    kind: "redis",
    async issue(userId, now, idleTtlMs) {
      const [seq, state, expiresAt, position, generation, issuedAt] = await reachable(() =>
        r.queueIssue(prefix, userId, now, idleTtlMs, highestSeq, newGenerationId()),
      );
      saw(seq);
      return { userId, seq, state: STATES[state], position, expiresAt, generation, issuedAt };
    },
    async status(refs, now, idleTtlMs, touch: StatusTouch, restore?: RestorePolicy) {
      const out: StoredTicket[] = [];
      const use = typeof touch === "object" ? touch.activeIdleTtlMs : 0;
      const policy = restore ? [1, restore.maxActive, restore.activeIdleTtlMs, restore.windowMs, restore.maxAgeMs] : [0, 0, 0, 0, 0];
      for (let i = 0; i < refs.length; i += STATUS_CHUNK) {
        const chunk = refs.slice(i, i + STATUS_CHUNK);
        const args: (string | number)[] = [prefix, now, idleTtlMs, touch === true ? 1 : 0, use, ...policy, newGenerationId()];
        for (const ref of chunk) {
          saw(ref.seq);
          args.push(ref.userId, ref.seq, ...originArgs(ref));
        }
        const [generation, ...flat] = await reachable(() => r.queueStatus(...args));
        chunk.forEach((ref, j) => {
          const [state, position, expiresAt, restored] = flat.slice(4 * j, 4 * j + 4);
          out.push({ userId: ref.userId, seq: ref.seq, state: STATES[state], position, expiresAt, generation, ...(restored ? { restored: true } : {}) });
        });
      }
      return out;
    },
    async admit(now, l: AdmissionLimits): Promise<AdmissionRound> {
      const [admitted, expiredActive, expiredIdleActive, droppedIdle, waiting, active, admittedTotal, version, nextFree, generation] = await reachable(() =>
        r.queueAdmit(
          prefix,
          now,
          l.maxActive,
          l.admitPerSecond,
          l.burst,
          l.activeTtlMs,
          l.idleTtlMs,
          l.sweepBatch,
          l.activeIdleTtlMs,
          highestSeq,
          newGenerationId(),
        ),
      );
      return {
        admitted,
        expiredActive,
        expiredIdleActive,
        droppedIdle,
        waiting,
        active,
        admittedTotal,
        nextSlotFreeAt: nextFree || undefined,
        version,
        generation,
      };
    },
    async expire(ref) {
      return (await reachable(() => r.queueExpire(prefix, ref.userId, ref.seq))) === 1;
    },
    async syncTokenSecrets(candidate, known) {
      const args = [prefix, Date.now(), candidate.toString("base64"), ...known.map((k) => k.toString("base64"))];
      const [signing, ...others] = (await reachable(() => r.queueSecrets(...args))).map((s) => Buffer.from(s, "base64"));
      return { signing, all: [signing, ...others] };
    },
    async tokenSecret() {
      return (await this.syncTokenSecrets(randomBytes(32), [])).signing;
    },
  };
}

/** A ref's origin as STATUS takes it: generation (0: none), kind (1 WAITING, 2 ACTIVE), time. */
function originArgs(ref: TicketRef): number[] {
  const o = ref.origin;
  if (!o) return [0, 0, 0];
  return o.state === "ACTIVE" ? [o.generation, 2, o.activeUntil] : [o.generation, 1, o.issuedAt];
}
