"""The Lua scripts of the Redis ledger: each call is one script, atomic on the server.

Every script gets the tenant's five keys (one hash tag, so one Cluster slot) and starts the same
way: check the data-set epoch, then sweep expired holds, so a dead holder's reservations stop
counting as soon as anything touches the tenant again. A TTL on a key could not do that: nothing
runs when a key expires, and an aggregate ``pending`` counter would keep the dead hold forever.

``KEYS``: 1 ``acct`` hash (``epoch``; ``c:<account>`` committed and ``p:<account>`` pending
nanos), 2 ``pend`` zset (pending hold id → expiry ms), 3 ``holds`` hash (hold id → JSON record),
4 ``aexp`` zset (account → when its window ends, ms), 5 ``done`` zset (resolved hold id → when
it may be forgotten, ms).

``ARGV`` 1-4 are shared: the epoch this process knows, ``now`` in ms (empty: the server's
``TIME``), ``1`` to (re)stamp the tenant with the epoch (only once the client has confirmed
the global epoch, and that the tenant's stamp is missing or one an operator superseded), and
how long resolved holds are remembered (ms).

Amounts never pass through Lua arithmetic on their way into Redis: they stay strings and go
into ``HINCRBY``. Admission compares them as Lua numbers (doubles), which is exact while
``committed + pending + amount`` stays below 2^53 nanos (about $9 million per account); above
that the script refuses with an error rather than compare inexactly.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BALANCES", "COMMIT", "RELEASE", "RENEW", "RESERVE", "STATEMENT"]

_PREAMBLE: Final = """
local acct, pend, holds, aexp, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local retention = tonumber(ARGV[4])
local GRACE = 3600000

local function touch()
  -- The tenant's keys live until its last window ends and its last hold is forgotten.
  local horizon = now
  for _, z in ipairs({pend, aexp, done}) do
    local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
    if last[2] and tonumber(last[2]) > horizon then horizon = tonumber(last[2]) end
  end
  local ttl = horizon - now + GRACE
  for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ttl) end
end

local stamped = redis.call('HGET', acct, 'epoch')
if stamped ~= ARGV[1] then
  if ARGV[3] ~= '1' then
    if stamped then return {'epoch', stamped} end
    return {'noepoch'}
  end
  redis.call('HSET', acct, 'epoch', ARGV[1])
  touch()
end

local function settle_pending(rec, sign)
  -- HINCRBY refuses "-0".
  if rec.a == '0' then return end
  for _, k in ipairs(rec.k) do redis.call('HINCRBY', acct, 'p:' .. k, sign .. rec.a) end
end

local function resolve(id, rec, state)
  rec.s = state
  redis.call('HSET', holds, id, cjson.encode(rec))
  redis.call('ZREM', pend, id)
  redis.call('ZADD', done, now + retention, id)
end

-- Bounded, so a backlog of dead holds never makes one call slow (or Redis BUSY).
local expired = redis.call('ZRANGEBYSCORE', pend, '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  local rec = cjson.decode(redis.call('HGET', holds, id))
  settle_pending(rec, '-')
  resolve(id, rec, 'expired')
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', done, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('HDEL', holds, id)
  redis.call('ZREM', done, id)
end
for _, k in ipairs(redis.call('ZRANGEBYSCORE', aexp, '-inf', now, 'LIMIT', 0, 100)) do
  if (tonumber(redis.call('HGET', acct, 'p:' .. k)) or 0) == 0 then
    redis.call('HDEL', acct, 'c:' .. k, 'p:' .. k)
    redis.call('ZREM', aexp, k)
  else
    redis.call('ZADD', aexp, now + 60000, k)
  end
end
"""

# ARGV 5.. : hold id, amount, ttl ms, token, account count, then per account:
# key, limit, hard stop (1/0), window end ms.
RESERVE: Final = (
    _PREAMBLE
    + """
local id, amount, ttl, token, n = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local prev = redis.call('HGET', holds, id)
if prev then
  local rec = cjson.decode(prev)
  if rec.s == 'pending' and rec.t == token then
    -- The same call retried after a lost reply: it already holds.
    return {'ok', redis.call('ZSCORE', pend, id), now}
  end
  if rec.s == 'pending' or rec.s == 'committed' then return {'dup', rec.s} end
end
local want = tonumber(amount)
local spent, keys, deny = {'deny'}, {}, false
for i = 0, n - 1 do
  local key, limit, hard = ARGV[10 + 4 * i], ARGV[11 + 4 * i], ARGV[12 + 4 * i]
  local c = tonumber(redis.call('HGET', acct, 'c:' .. key)) or 0
  local p = tonumber(redis.call('HGET', acct, 'p:' .. key)) or 0
  if c + p + want >= 9007199254740992 then
    return redis.error_reply('aegis: account ' .. key .. ' is beyond 2^53 nanos')
  end
  if hard == '1' and c + p + want > tonumber(limit) then deny = true end
  spent[#spent + 1] = c + p
  keys[#keys + 1] = key
end
if deny then return spent end
for i = 0, n - 1 do
  local key = ARGV[10 + 4 * i]
  redis.call('HINCRBY', acct, 'p:' .. key, amount)
  redis.call('ZADD', aexp, 'GT', ARGV[13 + 4 * i], key)
end
redis.call('ZADD', pend, now + ttl, id)
redis.call('ZREM', done, id)
redis.call('HSET', holds, id, cjson.encode({s = 'pending', a = amount, k = keys, t = token}))
touch()
return {'ok', tostring(now + ttl), now}
"""
)

# ARGV 5.. : hold id, amount, token.
COMMIT: Final = (
    _PREAMBLE
    + """
local id, amount, token = ARGV[5], ARGV[6], ARGV[7]
local raw = redis.call('HGET', holds, id)
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.s == 'committed' and rec.ct == token then return {'ok', rec.a, rec.l} end
if rec.s == 'committed' or rec.s == 'released' then return {'resolved', rec.s} end
local late = '0'
if rec.s == 'expired' then late = '1' else settle_pending(rec, '-') end
for _, k in ipairs(rec.k) do
  redis.call('HINCRBY', acct, 'c:' .. k, amount)
  redis.call('ZADD', aexp, 'NX', now, k)
end
rec.c, rec.ct, rec.l = amount, token, late
resolve(id, rec, 'committed')
touch()
return {'ok', rec.a, late}
"""
)

# ARGV 5.. : hold id, token.
RELEASE: Final = (
    _PREAMBLE
    + """
local id, token = ARGV[5], ARGV[6]
local raw = redis.call('HGET', holds, id)
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.s == 'expired' or (rec.s == 'released' and rec.rt == token) then return {'ok'} end
if rec.s ~= 'pending' then return {'resolved', rec.s} end
settle_pending(rec, '-')
rec.rt = token
resolve(id, rec, 'released')
touch()
return {'ok'}
"""
)

# ARGV 5.. : hold id, ttl ms.
RENEW: Final = (
    _PREAMBLE
    + """
local id, ttl = ARGV[5], tonumber(ARGV[6])
local raw = redis.call('HGET', holds, id)
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.s ~= 'pending' then return {'resolved', rec.s} end
redis.call('ZADD', pend, now + ttl, id)
touch()
return {'ok', rec.a, tostring(now + ttl)}
"""
)

# ARGV 5.. : account keys.
BALANCES: Final = (
    _PREAMBLE
    + """
local out = {'ok'}
for i = 5, #ARGV do
  out[#out + 1] = redis.call('HGET', acct, 'c:' .. ARGV[i]) or '0'
  out[#out + 1] = redis.call('HGET', acct, 'p:' .. ARGV[i]) or '0'
end
return out
"""
)

STATEMENT: Final = (
    _PREAMBLE
    + """
local held = {}
local pending = redis.call('ZRANGE', pend, 0, -1, 'WITHSCORES')
for i = 1, #pending, 2 do
  local rec = cjson.decode(redis.call('HGET', holds, pending[i]))
  held[#held + 1] = pending[i]
  held[#held + 1] = rec.a
  held[#held + 1] = pending[i + 1]
end
return {'ok', redis.call('HGETALL', acct), held}
"""
)
