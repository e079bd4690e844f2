-- Per-second counts of the last `seconds` seconds (for throughput charts).
-- KEYS[1]=tag. ARGV: seconds. Returns {now_s, processed..., failed...} oldest first.
local seconds = tonumber(ARGV[1])
local now_s = math.floor(now / 1000)
local first = now_s - seconds + 1
local p, f = {}, {}
for i = 1, seconds do p[i] = 0; f[i] = 0 end
for m = math.floor(first / 60), math.floor(now_s / 60) do
  local h = redis.call('HGETALL', tag .. ':tp:' .. m)
  for k = 1, #h, 2 do
    local kind, sec = string.match(h[k], '^(%a):(%d+)$')
    local idx = sec and (tonumber(sec) - first + 1)
    if idx and idx >= 1 and idx <= seconds then
      if kind == 'p' then p[idx] = tonumber(h[k + 1]) else f[idx] = tonumber(h[k + 1]) end
    end
  end
end
local out = {now_s}
for i = 1, seconds do out[#out + 1] = p[i] end
for i = 1, seconds do out[#out + 1] = f[i] end
return out
