-- Purge up to `limit` jobs from one of the queue's sets (pending, scheduled, dead) or the
-- completed history. KEYS[1]=tag. ARGV: maxlen, queue, target, limit.
-- Returns the number removed by this call; the caller loops until it returns 0.
local maxlen, queue, target, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = 0
if target == 'completed' then
  n = redis.call('LLEN', tag .. ':completed')
  redis.call('DEL', tag .. ':completed')
else
  local key = tag .. ':' .. target
  local ids = redis.call('ZRANGE', key, 0, limit - 1)
  for _, id in ipairs(ids) do
    local jk = tag .. ':job:' .. id
    local waiters = redis.call('HGET', jk, 'waiters')  -- clients waiting for it to end
    if waiters then wake(jk, id, waiters, 'deleted') end
    redis.call('DEL', jk)
  end
  if #ids > 0 then redis.call('ZREM', key, unpack(ids)) end
  n = #ids
end
if n > 0 then
  emit(maxlen, 'type', 'queue.purged', 'target', target, 'count', n)
  redis.call('HINCRBY', tag .. ':counters', 'purged', n)
end
return n
