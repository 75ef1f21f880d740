-- The clock of the limiter scripts, prepended to each (redis.go): Redis'
-- own TIME, or, only from tests (export_test.go), the injected clock's Unix
-- seconds and nanoseconds in ARGV[i] and ARGV[i + 1].
local function clock(i)
  if ARGV[i] then
    return tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  end
  local t = redis.call('TIME')
  return tonumber(t[1]), tonumber(t[2]) * 1000
end

-- keep is the TTL in ms to give a key: ttl on Redis' clock; with an
-- injected clock, which does not move with Redis' own (that expires keys),
-- at least 10 minutes, past any test's run (the test deletes the key).
local function keep(i, ttl)
  if ARGV[i] then
    return math.max(ttl, 600000)
  end
  return ttl
end

