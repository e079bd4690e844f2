-- Cancel a job that is queued (pending, scheduled) or running. KEYS[1]=tag.
-- ARGV: maxlen, queue, channel, id, keep_ms.
-- The job leaves its set at once and never runs again: state `cancelled`, its hash kept for
-- `keep_ms`, its unique key released, a `job.cancelled` event (`state`: what it was), the
-- clients waiting for it woken (`wake`). A
-- running job also leaves its worker's processing set (its late result is a stale ack) and
-- the worker is told on `channel` (JSON {queue, job_id, worker}) to stop its handler.
-- Returns {'ok', was, worker} or, when there is nothing to cancel, {state}: the
-- job's state (`dead`, `cancelled`, ...) or 'unknown' (no such job).
local maxlen, queue, channel, id, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jk = tag .. ':job:' .. id
local v = redis.call('HMGET', jk, 'state', 'tenant', 'labels', 'attempts', 'worker',
                     'unique_key', 'waiters')
if not v[1] then return {'unknown'} end
local was, worker = nil, ''
if redis.call('ZREM', tag .. ':pending', id) == 1 then
  was = 'pending'
elseif redis.call('ZREM', tag .. ':scheduled', id) == 1 then
  was = 'scheduled'
elseif v[1] == 'processing' and v[5]
    and redis.call('ZREM', tag .. ':processing:' .. v[5], id) == 1 then
  was, worker = 'processing', v[5]
else
  return {v[1]}
end
redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', now_text)
if v[7] then wake(jk, id, v[7], 'cancelled') end
redis.call('PEXPIRE', jk, keep)
if v[6] and v[6] ~= '' and redis.call('GET', tag .. ':unique:' .. v[6]) == id then
  redis.call('DEL', tag .. ':unique:' .. v[6])
end
if worker ~= '' then
  emit_job(maxlen, v[3], 'type', 'job.cancelled', 'job_id', id, 'tenant', v[2] or '',
           'attempt', v[4] or 0, 'state', was, 'worker', worker)
  redis.call('PUBLISH', channel,
             cjson.encode({queue = queue, job_id = id, worker = worker}))
else
  emit_job(maxlen, v[3], 'type', 'job.cancelled', 'job_id', id, 'tenant', v[2] or '',
           'attempt', v[4] or 0, 'state', was)
end
redis.call('HINCRBY', tag .. ':counters', 'cancelled', 1)
return {'ok', was, worker}
