-- A consistent snapshot of one queue. KEYS[1]=tag. ARGV: worker ids...
-- Returns {pending, scheduled, dead, processing, paused, oldest_enqueued_ms, now_ms,
--          throughput_1m, failed_1m, counters_flat}.
local pending = tag .. ':pending'
local processing = 0
for i = 1, #ARGV do
  processing = processing + redis.call('ZCARD', tag .. ':processing:' .. ARGV[i])
end
local oldest = ''
for band = 0, 9 do
  local lo = band * PRIORITY_BAND
  local first = redis.call('ZRANGEBYSCORE', pending, lo, '(' .. (lo + PRIORITY_BAND),
                           'WITHSCORES', 'LIMIT', 0, 1)
  if first[2] then
    local ms = tonumber(first[2]) - lo
    if oldest == '' or ms < oldest then oldest = ms end
  end
end
local since = math.floor(now / 1000) - 60
local done, failed = 0, 0
local minute = math.floor(now / 60000)
for m = minute - 1, minute do
  local h = redis.call('HGETALL', tag .. ':tp:' .. m)
  for f = 1, #h, 2 do
    local kind, sec = string.match(h[f], '^(%a):(%d+)$')
    if sec and tonumber(sec) > since then
      local count = tonumber(h[f + 1])
      if kind == 'p' then done = done + count else failed = failed + count end
    end
  end
end
return {redis.call('ZCARD', pending), redis.call('ZCARD', tag .. ':scheduled'),
        redis.call('ZCARD', tag .. ':dead'), processing,
        redis.call('EXISTS', tag .. ':paused'), tostring(oldest), tostring(now), done, failed,
        redis.call('HGETALL', tag .. ':counters')}
