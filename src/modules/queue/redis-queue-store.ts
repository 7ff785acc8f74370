import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { ReplyError, type Redis } from "ioredis";
import { domainError } from "../../platform/errors.js";
import {
  RATE_WINDOW_MS,
  type AdmissionLimits,
  type AdmissionRound,
  type QueueStore,
  type StatusTouch,
  type StoredTicket,
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
 *   P:admits     HASH second -> admissions, the last minute only (observed rate)
 *   P:sweep      idle-sweep cursor (ticket number)
 *   P:ver        bumped whenever someone's position or state may have changed
 *   P:secret     token signing secret, created once
 * A waiting user costs one ZSET entry plus one bucket field: ~130 bytes.
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
`;

const ISSUE = `${COMMON}
local u, now, idle = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local seq, st, x = lookup(u, now, idle)
if st == 'A' then return {seq, 2, x, -1} end
if st == 'W' then
  redis.call('HSET', bucket(u), u, string.format('%d:%d', seq, now))
  return {seq, 1, now + idle, redis.call('ZRANK', WAIT, u)}
end
if st == 'X' then drop(u) end
seq = redis.call('INCR', P .. 'seq')
redis.call('ZADD', WAIT, seq, u)
redis.call('HSET', bucket(u), u, string.format('%d:%d', seq, now))
return {seq, 1, now + idle, redis.call('ZRANK', WAIT, u)}
`;

// ARGV: P, now, idle, touch (1: keep WAITING in line), use (> 0: a gated call keeps an
// ACTIVE slot this long), then user/seq pairs. Returns state, position, expiry per pair.
const STATUS = `${COMMON}
local now, idle, touch, use = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV, 2 do
  local u, want = ARGV[i], tonumber(ARGV[i + 1])
  local seq, st, x = lookup(u, now, idle)
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
end
return out
`;

// ARGV: P, now, maxActive, ratePerSecond, burst, activeTtl, idle, sweepBatch, rateWindow, activeIdle
const ADMIT = `${COMMON}
local now, maxActive, rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl, idle, sweepN, window = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local activeIdle = tonumber(ARGV[10])

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

-- 4. The observed admission rate: admissions per second over the last window.
local sec = math.floor(now / 1000)
local log = P .. 'admits'
if admitted > 0 then redis.call('HINCRBY', log, sec, admitted) end
local recent = 0
local fields = redis.call('HGETALL', log)
for i = 1, #fields, 2 do
  local s = tonumber(fields[i])
  if (sec - s) * 1000 >= window then redis.call('HDEL', log, fields[i]) else recent = recent + tonumber(fields[i + 1]) end
end

-- 5. When the next slot frees at the latest known: the earliest window end or idle deadline (0: nobody active).
local nextFree = 0
for _, key in ipairs({ACTIVE, USED}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first > 0 and (nextFree == 0 or tonumber(first[2]) < nextFree) then nextFree = tonumber(first[2]) end
end

local ver
if admitted + dropped + gone + idleGone > 0 then ver = redis.call('INCR', P .. 'ver') else ver = tonumber(redis.call('GET', P .. 'ver') or '0') end
return {admitted, gone, idleGone, dropped, redis.call('ZCARD', WAIT), redis.call('ZCARD', ACTIVE), recent, ver, nextFree}
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
    throw domainError(Code.Unavailable, "QUEUE_UNAVAILABLE", "the waiting room is unreachable right now; retry shortly");
  }
}

export function createRedisQueueStore(redis: Redis, prefix: string): QueueStore {
  redis.defineCommand("queueIssue", { numberOfKeys: 0, lua: ISSUE });
  redis.defineCommand("queueStatus", { numberOfKeys: 0, lua: STATUS });
  redis.defineCommand("queueAdmit", { numberOfKeys: 0, lua: ADMIT });
  redis.defineCommand("queueExpire", { numberOfKeys: 0, lua: EXPIRE });
  const r = redis as unknown as Redis & QueueCommands;
  let secret: Promise<Buffer> | undefined;

  return {
    kind: "redis",
    async issue(userId, now, idleTtlMs) {
      const [seq, state, expiresAt, position] = await reachable(() => r.queueIssue(prefix, userId, now, idleTtlMs));
      return { userId, seq, state: STATES[state], position, expiresAt };
    },
    async status(refs, now, idleTtlMs, touch: StatusTouch) {
      const out: StoredTicket[] = [];
      const use = typeof touch === "object" ? touch.activeIdleTtlMs : 0;
      for (let i = 0; i < refs.length; i += STATUS_CHUNK) {
        const chunk = refs.slice(i, i + STATUS_CHUNK);
        const args: (string | number)[] = [prefix, now, idleTtlMs, touch === true ? 1 : 0, use];
        for (const ref of chunk) args.push(ref.userId, ref.seq);
        const flat = await reachable(() => r.queueStatus(...args));
        chunk.forEach((ref, j) => {
          out.push({ ...ref, state: STATES[flat[3 * j]], position: flat[3 * j + 1], expiresAt: flat[3 * j + 2] });
        });
      }
      return out;
    },
    async admit(now, l: AdmissionLimits): Promise<AdmissionRound> {
      const [admitted, expiredActive, expiredIdleActive, droppedIdle, waiting, active, recentAdmissions, version, nextFree] = await reachable(() =>
        r.queueAdmit(prefix, now, l.maxActive, l.admitPerSecond, l.burst, l.activeTtlMs, l.idleTtlMs, l.sweepBatch, RATE_WINDOW_MS, l.activeIdleTtlMs),
      );
      return {
        admitted,
        expiredActive,
        expiredIdleActive,
        droppedIdle,
        waiting,
        active,
        recentAdmissions,
        rateWindowMs: RATE_WINDOW_MS,
        nextSlotFreeAt: nextFree || undefined,
        version,
      };
    },
    async expire(ref) {
      return (await reachable(() => r.queueExpire(prefix, ref.userId, ref.seq))) === 1;
    },
    tokenSecret() {
      secret ??= reachable(async () => {
        const key = `${prefix}secret`;
        await redis.set(key, randomBytes(32).toString("base64"), "NX");
        const value = await redis.get(key);
        if (!value) throw new Error("queue token secret vanished from Redis");
        return Buffer.from(value, "base64");
      });
      secret.catch(() => (secret = undefined));
      return secret;
    },
  };
}
