-- Store a running job's progress and announce it. KEYS[1]=tag.
-- ARGV: worker, maxlen, id, attempt, fraction, message, event_interval_ms.
-- Only while `worker` holds the job at `attempt` (a cancelled or timed-out run reports
-- nothing). Every report is stored (`progress`, `progress_message`, `progress_attempt`,
-- `progress_at`); a `job.progress` event is added when none was in the last
-- `event_interval_ms`, and for the first report of 1. Returns 1 if stored, 0 if not held.
local worker, maxlen, id, attempt, fraction, message, interval =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local jk = tag .. ':job:' .. id
if not redis.call('ZSCORE', tag .. ':processing:' .. worker, id) then return 0 end
local v = redis.call('HMGET', jk, 'attempts', 'tenant', 'labels', 'progress_evented_at',
                     'progress_evented', 'progress_attempt')
if v[1] ~= attempt then return 0 end
if v[6] ~= attempt then v[4], v[5] = nil, nil end  -- what an earlier attempt announced
redis.call('HSET', jk, 'progress', fraction, 'progress_message', message,
           'progress_attempt', attempt, 'progress_at', now_text)
local last = tonumber(v[4])
local finished = tonumber(fraction) >= 1 and tonumber(v[5] or 0) < 1
if finished or not last or now - last >= interval then
  redis.call('HSET', jk, 'progress_evented_at', now, 'progress_evented', fraction)
  emit_job(maxlen, v[3], 'type', 'job.progress', 'job_id', id, 'tenant', v[2] or '',
           'attempt', attempt, 'worker', worker, 'progress', fraction, 'message', message)
end
return 1
