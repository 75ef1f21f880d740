-- Sliding-window quota step on Redis' clock (clock.lua); mirrors kv.WindowStep in Go.
-- KEYS[1]: hash, field = slot number (Unix µs / slot width), value = the
--          events admitted in that slot; absent when no slot counts.
-- ARGV:    slot width in µs, budget, n, kv.WindowSlots; then, only from
--          tests (export_test.go), the injected clock's Unix seconds and
--          nanoseconds instead of TIME.
-- Returns: {allowed (0|1), retry_after_ns, remaining}.
-- Unix µs and slot numbers stay below 2^53, so Lua's doubles are exact.
local sec, nsec = clock(5)
local g = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local k = tonumber(ARGV[4])
local cur = math.floor((sec * 1000000 + math.floor(nsec / 1000)) / g)

-- Count the slots still in the span; forget older ones.
local used = 0
local live = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local slot = tonumber(flat[i])
  if slot < cur - k then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    used = used + tonumber(flat[i + 1])
    live[#live + 1] = {slot, tonumber(flat[i + 1])}
  end
end
table.sort(live, function(a, b) return a[1] < b[1] end)

local need = used + n - budget
if need > 0 then
  -- Refused: wait until the oldest slots, leaving one by one, free enough.
  local freed = 0
  for _, e in ipairs(live) do
    freed = freed + e[2]
    if freed >= need then
      local rem = budget - used
      if rem < 0 then
        rem = 0
      end
      return {0, ((e[1] + k + 1) * g - sec * 1000000) * 1000 - nsec, rem}
    end
  end
end

redis.call('HINCRBY', KEYS[1], string.format('%.0f', cur), n)
local newest = cur
if #live > 0 and live[#live][1] > newest then
  newest = live[#live][1]
end
-- The key lives until its newest slot stops counting.
local ttl = math.ceil(((newest + k + 1) * g - sec * 1000000 - nsec / 1000) / 1000)
ttl = keep(5, ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, 0, budget - used - n}
