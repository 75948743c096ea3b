"""The Lua scripts of the Redis backend: the rules of `buckets.py`, run atomically inside Redis.

Per scope (key, or account) and model class there is one hash of what the buckets have used
(`r`, `i`, `o` = requests, input and output tokens; `t` = when they were last drained, in ms) and
one sorted set of concurrency slots (member = slot id, score = lease expiry in ms). A missing hash
reads as nothing used, so hashes expire once they have drained. Slots
are leases: a slot whose process died stops counting when its lease runs out, so nothing leaks.

Time comes from the Redis server (`TIME`), one clock for every gateway process; tests may pass
their own (ARGV[1] >= 0). Numbers go back as strings because Redis truncates Lua numbers to
integers in replies.
"""

from __future__ import annotations

_COMMON = """
local WINDOW = 60000
local CONCURRENCY_RETRY = 1000
local BLOCKED_RETRY = 60000

local function clock(arg)
  local now = tonumber(arg)
  if now >= 0 then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function drain(used, cap, elapsed)
  if elapsed > 0 and cap > 0 then used = used - elapsed * cap / WINDOW end
  if used < 0 then used = 0 end
  return used
end

-- What each bucket has used, drained up to `now`, and the timestamp to store (never moved back).
local function load(key, caps, now)
  local v = redis.call('HMGET', key, 'r', 'i', 'o', 't')
  if not v[4] then return {0, 0, 0}, now end
  local at = tonumber(v[4])
  local elapsed = now - at
  local used = {drain(tonumber(v[1]), caps[1], elapsed), drain(tonumber(v[2]), caps[2], elapsed),
                drain(tonumber(v[3]), caps[3], elapsed)}
  if now > at then at = now end
  return used, at
end

-- A missing hash reads as nothing used, so it may expire once every bucket has drained.
local function store(key, used, caps, at)
  redis.call('HSET', key, 'r', tostring(used[1]), 'i', tostring(used[2]), 'o', tostring(used[3]),
             't', tostring(at))
  local ttl = 1000
  for n = 1, 3 do
    if caps[n] > 0 and used[n] > 0 then
      local drained = used[n] * WINDOW / caps[n]
      if drained > ttl then ttl = drained end
    end
  end
  redis.call('PEXPIRE', key, math.ceil(ttl) + 1000)
end

local function keep_slot(zkey, slot, expires, lease)
  if redis.call('ZSCORE', zkey, slot) then
    redis.call('ZADD', zkey, 'XX', expires, slot)
    redis.call('PEXPIRE', zkey, lease + 1000)
  end
end
"""

# KEYS: key buckets, key slots, account buckets, account slots.
# ARGV: now ms (<0: server clock), slot id, lease ms, estimated input tokens,
#       key rpm, itpm, otpm, concurrent, account rpm, itpm, otpm, concurrent.
# Reply: admitted (1/0), retry ms, scope, dimension, limit, then what the key and the account have
# used (requests, input, output).
ADMIT = (
    _COMMON
    + """
local now = clock(ARGV[1])
local slot = ARGV[2]
local lease = tonumber(ARGV[3])
local est = tonumber(ARGV[4])
local kc = {tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}
local ac = {tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])}
local kused, kat = load(KEYS[1], kc, now)
local aused, aat = load(KEYS[3], ac, now)
local kslots = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local aslots = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf')

local worst_wait, worst = -1, nil
local function check(scope, dim, used, need, cap)
  local wait = -1
  if cap <= 0 then wait = BLOCKED_RETRY
  elseif used + need > cap then wait = (used + need - cap) * WINDOW / cap end
  if wait > worst_wait then worst_wait = wait; worst = {scope, dim, cap} end
end
local function check_slots(scope, in_flight, cap)
  local wait = -1
  if cap <= 0 then wait = BLOCKED_RETRY
  elseif in_flight >= cap then wait = CONCURRENCY_RETRY end
  if wait > worst_wait then worst_wait = wait; worst = {scope, 'concurrent', cap} end
end
for _, s in ipairs({{'key', kused, kc, kslots}, {'account', aused, ac, aslots}}) do
  local used, c = s[2], s[3]
  check(s[1], 'requests', used[1], 1, c[1])
  -- An estimate above the whole bucket needs a full one (need capped at the bucket's size).
  check(s[1], 'input_tokens', used[2], math.min(est, c[2]), c[2])
  check(s[1], 'output_tokens', used[3], 1, c[3])
  check_slots(s[1], s[4], c[4])
end

if worst then
  return {'0', tostring(worst_wait), worst[1], worst[2], tostring(worst[3]),
          tostring(kused[1]), tostring(kused[2]), tostring(kused[3]),
          tostring(aused[1]), tostring(aused[2]), tostring(aused[3])}
end

for _, s in ipairs({{KEYS[1], KEYS[2], kused, kc, kat}, {KEYS[3], KEYS[4], aused, ac, aat}}) do
  local used = s[3]
  used[1] = used[1] + 1
  used[2] = used[2] + est
  store(s[1], used, s[4], s[5])
  redis.call('ZREMRANGEBYSCORE', s[2], '-inf', now)
  redis.call('ZADD', s[2], now + lease, slot)
  redis.call('PEXPIRE', s[2], lease + 1000)
end
return {'1', '0', '', '', '0',
        tostring(kused[1]), tostring(kused[2]), tostring(kused[3]),
        tostring(aused[1]), tostring(aused[2]), tostring(aused[3])}
"""
)

# KEYS: as ADMIT.
# ARGV: now ms, slot id, lease ms, input delta, output tokens, release (1/0),
#       key rpm, itpm, otpm, account rpm, itpm, otpm.
# Reply: what the key and the account have used after the adjustment.
ADJUST = (
    _COMMON
    + """
local now = clock(ARGV[1])
local slot = ARGV[2]
local lease = tonumber(ARGV[3])
local din = tonumber(ARGV[4])
local dout = tonumber(ARGV[5])
local release = ARGV[6] == '1'
local out = {}
local scopes = {{KEYS[1], KEYS[2], {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}},
                {KEYS[3], KEYS[4], {tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])}}}
for _, s in ipairs(scopes) do
  local caps = s[3]
  local used, at = load(s[1], caps, now)
  -- A refund (negative delta) never takes a bucket below nothing used.
  used[2] = math.max(0, used[2] + din)
  used[3] = math.max(0, used[3] + dout)
  if din ~= 0 or dout ~= 0 then store(s[1], used, caps, at) end
  if release then
    redis.call('ZREM', s[2], slot)
  else
    keep_slot(s[2], slot, now + lease, lease)
  end
  for n = 1, 3 do out[#out + 1] = tostring(used[n]) end
end
return out
"""
)

# KEYS: key slots, account slots. ARGV: now ms, slot id, lease ms.
REFRESH = (
    _COMMON
    + """
local now = clock(ARGV[1])
local lease = tonumber(ARGV[3])
keep_slot(KEYS[1], ARGV[2], now + lease, lease)
keep_slot(KEYS[2], ARGV[2], now + lease, lease)
return 1
"""
)

# The places of async tasks waiting for a concurrency slot (a sorted set per key and model class,
# member = place id, score = lease expiry in ms), so the queue's bound holds across processes.
# KEYS: the queue. ARGV: now ms, place id, lease ms, bound. Reply: {'1'} when the place is taken.
QUEUE_JOIN = (
    _COMMON
    + """
local now = clock(ARGV[1])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'0'}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return {'1'}
"""
)

# KEYS: the queue. ARGV: now ms, place id, lease ms.
QUEUE_REFRESH = (
    _COMMON
    + """
local now = clock(ARGV[1])
local lease = tonumber(ARGV[3])
keep_slot(KEYS[1], ARGV[2], now + lease, lease)
return 1
"""
)
