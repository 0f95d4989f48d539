"""The Lua scripts of the Redis ledger: each call is one script, atomic on the server.

Every script gets the tenant's two keys (one hash tag, so one Cluster slot) and starts the same
way: check the data-set epoch, then run the timers that are due, so a dead holder's
reservations stop counting as soon as anything touches the tenant again. A TTL on a key could
not do that: nothing runs when a key expires, and an aggregate ``pending`` counter would keep
the dead hold forever.

``KEYS``: 1 the *book*, a hash: ``epoch``; ``horizon`` (ms until which the keys are kept);
``c:<account>`` committed and ``p:<account>`` pending nanos; ``hold:<id>`` a hold's JSON record.
2 the *timers*, a sorted set scored in ms: ``p:<id>`` a pending hold's expiry, ``d:<id>`` when a
resolved hold may be forgotten, ``a:<account>`` when an account's window ends,
``m:<account>:<threshold>`` when a fired alert's mark (a book field of that name) may go.

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

__all__ = ["BALANCES", "COMMIT", "MARK_ALERT", "RELEASE", "RENEW", "RESERVE", "STATEMENT"]

_PREAMBLE: Final = """
local book, timers = KEYS[1], KEYS[2]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local retention = tonumber(ARGV[4])
local GRACE = 3600000

local function touch(needed)
  -- The keys live until the tenant's last window ends and its last hold is forgotten; the
  -- horizon is moved in steps of GRACE, so most calls only read it.
  local horizon = tonumber(redis.call('HGET', book, 'horizon')) or 0
  if needed > horizon then
    horizon = needed + GRACE
    redis.call('HSET', book, 'horizon', horizon)
    redis.call('PEXPIRE', book, horizon - now)
    redis.call('PEXPIRE', timers, horizon - now)
  elseif redis.call('PTTL', timers) == -1 then
    redis.call('PEXPIRE', timers, horizon - now)
  end
end

local stamped = redis.call('HGET', book, 'epoch')
if stamped ~= ARGV[1] then
  if ARGV[3] ~= '1' then
    if stamped then return {'epoch', stamped} end
    return {'noepoch'}
  end
  redis.call('HSET', book, 'epoch', ARGV[1])
  touch(now)
end

local function held(rec, j)
  -- What the hold took from its j-th account (holds before per-account amounts: rec.a).
  if rec.m then return rec.m[j] end
  return rec.a
end

local function unit(rec, j)
  if rec.u then return rec.u[j] end
  return 'nanos'
end

local function settle_pending(rec, sign)
  for j, k in ipairs(rec.k) do
    local a = held(rec, j)
    -- HINCRBY refuses "-0".
    if a ~= '0' then redis.call('HINCRBY', book, 'p:' .. k, sign .. a) end
  end
end

local function post(k, amount)
  if amount ~= '0' then redis.call('HINCRBY', book, 'c:' .. k, amount) end
end

local function resolve(id, rec, state)
  rec.s = state
  redis.call('HSET', book, 'hold:' .. id, cjson.encode(rec))
  redis.call('ZREM', timers, 'p:' .. id)
  redis.call('ZADD', timers, now + retention, 'd:' .. id)
end

-- Bounded, so a backlog of dead holds never makes one call slow (or Redis BUSY).
for _, m in ipairs(redis.call('ZRANGEBYSCORE', timers, '-inf', now, 'LIMIT', 0, 100)) do
  local kind, name = string.sub(m, 1, 1), string.sub(m, 3)
  if kind == 'p' then
    local rec = cjson.decode(redis.call('HGET', book, 'hold:' .. name))
    settle_pending(rec, '-')
    resolve(name, rec, 'expired')
  elseif kind == 'd' then
    redis.call('HDEL', book, 'hold:' .. name)
    redis.call('ZREM', timers, m)
  elseif kind == 'm' then
    redis.call('HDEL', book, m)
    redis.call('ZREM', timers, m)
  elseif (tonumber(redis.call('HGET', book, 'p:' .. name)) or 0) == 0 then
    redis.call('HDEL', book, 'c:' .. name, 'p:' .. name)
    redis.call('ZREM', timers, m)
  else
    redis.call('ZADD', timers, now + 60000, m)
  end
end
"""

# ARGV 5.. : hold id, amount, ttl ms, token, then the accounts as one JSON array of strings:
# key, limit, hard stop (1/0), window end ms, amount held, unit, key, ...
# Replies 'ok', the hold's expiry, now, then each account's spend before the hold; or 'deny',
# now, then each account's spend.
RESERVE: Final = (
    _PREAMBLE
    + """
local id, amount, ttl, token = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local accounts = cjson.decode(ARGV[9])
local prev = redis.call('HGET', book, 'hold:' .. id)
if prev then
  local rec = cjson.decode(prev)
  if rec.s == 'pending' and rec.t == token then
    -- The same call retried after a lost reply: it already holds.
    return {'ok', redis.call('ZSCORE', timers, 'p:' .. id), now}
  end
  if rec.s == 'pending' or rec.s == 'committed' then return {'dup', rec.s} end
end
local spent, keys, amounts, units, deny = {}, {}, {}, {}, false
local needed = math.max(now + ttl, now + retention)
for i = 1, #accounts, 6 do
  local key, limit, hard = accounts[i], accounts[i + 1], accounts[i + 2]
  local want = tonumber(accounts[i + 4])
  local c = tonumber(redis.call('HGET', book, 'c:' .. key)) or 0
  local p = tonumber(redis.call('HGET', book, 'p:' .. key)) or 0
  if c + p + want >= 9007199254740992 then
    return redis.error_reply('aegis: account ' .. key .. ' is beyond 2^53 nanos')
  end
  if hard == '1' and c + p + want > tonumber(limit) then deny = true end
  spent[#spent + 1] = c + p
  keys[#keys + 1] = key
  amounts[#amounts + 1] = accounts[i + 4]
  units[#units + 1] = accounts[i + 5]
  needed = math.max(needed, tonumber(accounts[i + 3]))
end
if deny then return {'deny', now, unpack(spent)} end
for i = 1, #accounts, 6 do
  local want = accounts[i + 4]
  if want ~= '0' then redis.call('HINCRBY', book, 'p:' .. accounts[i], want) end
  redis.call('ZADD', timers, 'GT', accounts[i + 3], 'a:' .. accounts[i])
end
redis.call('ZADD', timers, now + ttl, 'p:' .. id)
redis.call('ZREM', timers, 'd:' .. id)
local rec = {s = 'pending', a = amount, k = keys, m = amounts, u = units, t = token}
redis.call('HSET', book, 'hold:' .. id, cjson.encode(rec))
touch(needed)
return {'ok', tostring(now + ttl), now, unpack(spent)}
"""
)

# ARGV 5.. : hold id, amount, token, the call's tokens ('' when unknown).
COMMIT: Final = (
    _PREAMBLE
    + """
local id, amount, token, tokens = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local raw = redis.call('HGET', book, 'hold:' .. id)
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.s == 'committed' and rec.ct == token then return {'ok', rec.a, rec.l} end
if rec.s == 'committed' or rec.s == 'released' then return {'resolved', rec.s} end
local late = '0'
if rec.s == 'expired' then late = '1' else settle_pending(rec, '-') end
for j, k in ipairs(rec.k) do
  -- As ledger.posted_amount: requests stay, tokens are the real count, slots are freed.
  local u, posted = unit(rec, j), amount
  if u == 'requests' then posted = held(rec, j)
  elseif u == 'in_flight' then posted = '0'
  elseif u == 'tokens' then
    if tokens == '' then posted = held(rec, j) else posted = tokens end
  end
  post(k, posted)
  redis.call('ZADD', timers, 'NX', now, 'a:' .. k)
end
rec.c, rec.ct, rec.l = amount, token, late
resolve(id, rec, 'committed')
touch(now + retention)
return {'ok', rec.a, late}
"""
)

# ARGV 5.. : hold id, token.
RELEASE: Final = (
    _PREAMBLE
    + """
local id, token = ARGV[5], ARGV[6]
local raw = redis.call('HGET', book, 'hold:' .. id)
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.s == 'expired' or (rec.s == 'released' and rec.rt == token) then return {'ok'} end
if rec.s ~= 'pending' then return {'resolved', rec.s} end
settle_pending(rec, '-')
for j, k in ipairs(rec.k) do
  if unit(rec, j) == 'requests' then post(k, held(rec, j)) end
end
rec.rt = token
resolve(id, rec, 'released')
touch(now + retention)
return {'ok'}
"""
)

# ARGV 5.. : hold id, ttl ms.
RENEW: Final = (
    _PREAMBLE
    + """
local id, ttl = ARGV[5], tonumber(ARGV[6])
local raw = redis.call('HGET', book, 'hold:' .. id)
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.s ~= 'pending' then return {'resolved', rec.s} end
redis.call('ZADD', timers, now + ttl, 'p:' .. id)
touch(now + ttl)
return {'ok', rec.a, tostring(now + ttl)}
"""
)

# ARGV 5.. : account keys.
BALANCES: Final = (
    _PREAMBLE
    + """
local out = {'ok'}
for i = 5, #ARGV do
  out[#out + 1] = redis.call('HGET', book, 'c:' .. ARGV[i]) or '0'
  out[#out + 1] = redis.call('HGET', book, 'p:' .. ARGV[i]) or '0'
end
return out
"""
)

# Replies the book's fields and the pending holds: id, amount, expiry ms, ...
STATEMENT: Final = (
    _PREAMBLE
    + """
local held = {}
local due = redis.call('ZRANGE', timers, 0, -1, 'WITHSCORES')
for i = 1, #due, 2 do
  if string.sub(due[i], 1, 2) == 'p:' then
    local id = string.sub(due[i], 3)
    held[#held + 1] = id
    held[#held + 1] = cjson.decode(redis.call('HGET', book, 'hold:' .. id)).a
    held[#held + 1] = due[i + 1]
  end
end
local fields = {}
local all = redis.call('HGETALL', book)
for i = 1, #all, 2 do
  local kind = string.sub(all[i], 1, 2)
  if kind == 'c:' or kind == 'p:' then
    fields[#fields + 1] = all[i]
    fields[#fields + 1] = all[i + 1]
  end
end
return {'ok', fields, held}
"""
)

# ARGV 5, 6: the mark's name (account and threshold), the window's end in ms. The first caller
# in the window gets 'first'; the mark is swept with the window.
MARK_ALERT: Final = (
    _PREAMBLE
    + """
local field, ends = 'm:' .. ARGV[5], tonumber(ARGV[6])
if ends <= now then return {'late'} end
local seen = tonumber(redis.call('HGET', book, field))
if seen and seen > now then return {'seen'} end
redis.call('HSET', book, field, ends)
redis.call('ZADD', timers, ends, field)
touch(ends)
return {'first'}
"""
)
