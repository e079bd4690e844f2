-- Move due scheduled jobs to pending, then take up to `count` pending jobs for a worker.
-- KEYS[1]=tag. ARGV: worker, count, maxlen, queue.
-- Returns {state, next_due_ms, {id, fields}, ...}; state is 'ok' or 'paused'.
local worker, count, maxlen, queue = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local pending, scheduled = tag .. ':pending', tag .. ':scheduled'
local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local jk = tag .. ':job:' .. id
  local prio = redis.call('HGET', jk, 'priority')
  redis.call('ZREM', scheduled, id)
  if prio then
    redis.call('HSET', jk, 'state', 'pending')
    redis.call('ZADD', pending, pending_score(prio, now), id)
  end
end
local nxt = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
local next_due = nxt[2] or ''
if redis.call('EXISTS', tag .. ':paused') == 1 then return {'paused', next_due} end
local out = {'ok', next_due}
if count <= 0 then return out end
local popped = redis.call('ZPOPMIN', pending, count)
local processing = tag .. ':processing:' .. worker
for k = 1, #popped, 2 do
  local id = popped[k]
  local jk = tag .. ':job:' .. id
  if redis.call('EXISTS', jk) == 1 then
    local attempt = redis.call('HINCRBY', jk, 'attempts', 1)
    redis.call('HSET', jk, 'state', 'processing', 'started_at', now_text, 'worker', worker)
    redis.call('ZADD', processing, now, id)
    local job = redis.call('HGETALL', jk)
    out[#out + 1] = {id, job}
    local enq, tenant, labels = nil, '', nil
    for f = 1, #job, 2 do
      local name = job[f]
      if name == 'enqueued_at' then enq = tonumber(job[f + 1])
      elseif name == 'tenant' then tenant = job[f + 1]
      elseif name == 'labels' then labels = job[f + 1] end
    end
    local wait = enq and string.format('%.3f', math.max(0, tonumber(now_text) - enq)) or ''
    emit_job(maxlen, labels, 'type', 'job.started', 'job_id', id, 'tenant', tenant,
             'attempt', attempt, 'worker', worker, 'wait_ms', wait)
  end
end
return out
