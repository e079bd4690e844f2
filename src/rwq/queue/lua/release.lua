-- Give back every job a worker holds on this queue (the worker died or is shutting down).
-- The attempt stays counted; a job past its retries is dead-lettered.
-- KEYS[1]=tag. ARGV: worker, maxlen, queue, channel, reason, error.
-- Returns {requeued, dead}.
local worker, maxlen, queue, channel, reason, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                                                    ARGV[5], ARGV[6]
local processing = tag .. ':processing:' .. worker
local pending = tag .. ':pending'
local ids = redis.call('ZRANGE', processing, 0, -1)
local requeued, dead = 0, 0
for _, id in ipairs(ids) do
  local jk = tag .. ':job:' .. id
  local v = redis.call('HMGET', jk, 'attempts', 'tenant', 'priority', 'enqueued_at', 'labels',
                       'waiters')
  if v[1] then
    local attempt, retries, tenant = tonumber(v[1]) or 0, max_retries(jk), v[2] or ''
    -- A graceful shutdown hands back jobs it never ran: their attempt does not count.
    if reason == 'shutdown' then
      attempt = redis.call('HINCRBY', jk, 'attempts', -1)
    end
    if reason ~= 'shutdown' and attempt > retries then
      redis.call('HSET', jk, 'state', 'dead', 'dead_at', now_text, 'error', err)
      redis.call('ZADD', tag .. ':dead', now, id)
      emit_job(maxlen, v[5], 'type', 'job.dead_lettered', 'job_id', id,
               'tenant', tenant, 'attempt', attempt, 'error', err)
      if v[6] then wake(jk, id, v[6], 'dead') end
      dead = dead + 1
    else
      redis.call('HSET', jk, 'state', 'pending')
      if err ~= '' then redis.call('HSET', jk, 'error', err) end
      -- Back to its old place in line (its enqueue time), not behind jobs enqueued later.
      local since = math.floor(tonumber(v[4]) or now)
      redis.call('ZADD', pending, pending_score(v[3] or 5, since), id)
      emit_job(maxlen, v[5], 'type', 'job.requeued', 'job_id', id, 'tenant', tenant,
               'reason', reason, 'from_queue', '')
      requeued = requeued + 1
    end
  end
end
redis.call('DEL', processing)
if dead > 0 then redis.call('HINCRBY', tag .. ':counters', 'dead', dead) end
if requeued > 0 then
  redis.call('HINCRBY', tag .. ':counters', 'requeued', requeued)
  redis.call('PUBLISH', channel, queue)
end
return {requeued, dead}
