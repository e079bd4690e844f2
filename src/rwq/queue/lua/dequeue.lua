-- Move due scheduled jobs to pending, then take up to `count` pending jobs for a worker.
-- KEYS[1]=tag. ARGV: worker, count, maxlen, queue, rate ('<count>/<period ms>' from the
-- worker's settings, or ''; a limit stored on the queue wins).
-- Returns {state, next_due_ms, {id, fields}, ...}; state is 'ok' or 'paused', or 'limited'
-- ({'limited', next_due_ms, reopens_ms}: the rate limit lets no job start before then).
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
-- Flow control: at most `limit` starts per `period` ms across all workers, counted in a
-- sliding window of the starts (one entry per started attempt).
local window, period = nil, nil
local rate = redis.call('GET', tag .. ':rate_limit') or ARGV[5] or ''
if rate ~= '' and rate ~= 'off' then
  local limit
  limit, period = string.match(rate, '^(%d+)/(%d+)$')
  if limit then
    limit, period, window = tonumber(limit), tonumber(period), tag .. ':rate_window'
    redis.call('ZREMRANGEBYSCORE', window, '-inf', now - period)
    local free = limit - redis.call('ZCARD', window)
    if free <= 0 then
      if redis.call('ZCARD', pending) == 0 then return out end
      local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
      return {'limited', next_due, tonumber(oldest[2]) + period}
    end
    count = math.min(count, free)
  end
end
local popped = redis.call('ZPOPMIN', pending, count)
local processing = tag .. ':processing:' .. worker
local starts = {}
for k = 1, #popped, 2 do
  local id = popped[k]
  local jk = tag .. ':job:' .. id
  if redis.call('EXISTS', jk) == 1 then
    local attempt = redis.call('HINCRBY', jk, 'attempts', 1)
    if window then starts[#starts + 1] = now; starts[#starts + 1] = id .. ':' .. attempt end
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
if #starts > 0 then
  redis.call('ZADD', window, unpack(starts))
  redis.call('PEXPIRE', window, period)
end
return out
