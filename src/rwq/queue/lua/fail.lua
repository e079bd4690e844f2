-- Record failures of jobs a worker holds (as COMPLETE decides): retry with the given delay or
-- dead-letter. KEYS[1]=tag. ARGV: worker, maxlen, queue, n, then per job:
--   id, duration_ms, error, traceback, delay_ms, permanent ('1'/'0'), attempt ('' = any),
--   timeout_ms ('' = not a timeout), stopped ('killed' / 'abandoned' / 'cancelled').
-- A timeout emits `job.timed_out` before `job.failed`.
-- Returns per job: 'retried', 'dead' or '' (not held: stale).
local worker, maxlen, queue, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local processing = tag .. ':processing:' .. worker
local out, failed, retried, dead, timed_out, i = {}, 0, 0, 0, 0, 5
for j = 1, n do
  local id, duration, err, tb, delay, permanent =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), ARGV[i + 5]
  local fence, timeout, stopped = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  i = i + 9
  local jk = tag .. ':job:' .. id
  if held(processing, jk, id, fence) then
    local v = redis.call('HMGET', jk, 'attempts', 'tenant', 'labels', 'waiters')
    local attempt, retries, tenant = tonumber(v[1]) or 0, max_retries(jk), v[2] or ''
    local labels = v[3]
    redis.call('HSET', jk, 'error', err, 'traceback', tb, 'finished_at', now_text,
               'duration_ms', duration)
    if timeout ~= '' then
      emit_job(maxlen, labels, 'type', 'job.timed_out', 'job_id', id, 'tenant', tenant,
               'attempt', attempt, 'worker', worker, 'timeout_ms', timeout,
               'handler', stopped)
      timed_out = timed_out + 1
    end
    emit_job(maxlen, labels, 'type', 'job.failed', 'job_id', id, 'tenant', tenant,
             'attempt', attempt, 'worker', worker, 'duration_ms', duration, 'error', err)
    failed = failed + 1
    if permanent ~= '1' and attempt <= retries then
      local run_at = now + delay
      redis.call('HSET', jk, 'state', 'scheduled', 'run_at', run_at)
      redis.call('ZADD', tag .. ':scheduled', run_at, id)
      emit_job(maxlen, labels, 'type', 'job.retried', 'job_id', id, 'tenant', tenant,
               'attempt', attempt, 'run_at', run_at)
      retried = retried + 1
      out[j] = 'retried'
    else
      redis.call('HSET', jk, 'state', 'dead', 'dead_at', now_text)
      redis.call('ZADD', tag .. ':dead', now, id)
      emit_job(maxlen, labels, 'type', 'job.dead_lettered', 'job_id', id,
               'tenant', tenant, 'attempt', attempt, 'error', err)
      if v[4] then wake(jk, id, v[4], 'dead') end
      dead = dead + 1
      out[j] = 'dead'
    end
  else
    out[j] = ''
  end
end
local c = tag .. ':counters'
if failed > 0 then redis.call('HINCRBY', c, 'failed', failed); tick('f', failed) end
if retried > 0 then redis.call('HINCRBY', c, 'retried', retried) end
if dead > 0 then redis.call('HINCRBY', c, 'dead', dead) end
if timed_out > 0 then redis.call('HINCRBY', c, 'timed_out', timed_out) end
return out
