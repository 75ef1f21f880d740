-- GCRA step on Redis' clock (clock.lua); mirrors kv.GCRA in Go.
-- KEYS[1]: state key, value "<unix seconds>:<nanoseconds>" (the theoretical
--          arrival time, TAT), absent when the bucket is full.
-- ARGV:    interval in ns, burst, n; then, only from tests (export_test.go),
--          the injected clock's Unix seconds and nanoseconds instead of TIME.
-- Returns: {allowed (0|1), retry_after_ns, remaining}.
-- Times are kept relative to the current second so every number stays far
-- below 2^53 and Lua's doubles compute them exactly.
local base, now = clock(4)
local iv = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])

local tat = now
local v = redis.call('GET', KEYS[1])
if v then
  local i = string.find(v, ':', 1, true)
  local rel = (tonumber(string.sub(v, 1, i - 1)) - base) * 1000000000 + tonumber(string.sub(v, i + 1))
  if rel > tat then
    tat = rel
  end
end

local nxt = tat + n * iv
local allow_at = nxt - burst * iv
if now < allow_at then
  local rem = math.floor((now - (tat - burst * iv)) / iv)
  if rem < 0 then
    rem = 0
  end
  return {0, allow_at - now, rem}
end

local s = math.floor(nxt / 1000000000)
local ns = nxt - s * 1000000000
local ttl = math.ceil((nxt - now) / 1000000)
ttl = keep(4, ttl)
redis.call('SET', KEYS[1], string.format('%d:%d', base + s, ns), 'PX', ttl)
return {1, 0, math.floor((now - allow_at) / iv)}
