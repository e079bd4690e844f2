-- Complete jobs a worker holds. KEYS[1]=tag. ARGV: worker, maxlen, queue, history, n,
-- then per job: id, duration_ms, attempt, result (JSON, '' = none), result_error ('' = none),
-- ttl_ms. A job is held when it is in the worker's processing
-- set and, when `attempt` is given (not ''), its attempt is still that one: a late result of
-- an earlier attempt (a handler abandoned at its timeout) is refused even when the job runs
-- again on the same worker. A completed job's hash is kept `ttl_ms` with its result (findable
-- by id), deleted when it is 0; clients waiting for it are woken (`wake`).
-- Returns 1 (completed) / 0 (not held: stale ack) per job.
local worker, maxlen, queue, history, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]),
                                          tonumber(ARGV[5])
local processing = tag .. ':processing:' .. worker
local out, done, i = {}, 0, 6
for j = 1, n do
  local id, duration, fence = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local result, note, ttl = ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  i = i + 6
  local jk = tag .. ':job:' .. id
  if held(processing, jk, id, fence) then
    redis.call('HSET', jk, 'state', 'completed', 'finished_at', now_text,
               'duration_ms', duration)
    local job = redis.call('HGETALL', jk)
    local record, tenant, attempt = {}, '', ''
    for f = 1, #job, 2 do record[job[f]] = job[f + 1] end
    record['id'] = id
    tenant, attempt = record['tenant'] or '', record['attempts'] or ''
    local waiters = record['waiters']
    record['waiters'] = nil
    if history > 0 then redis.call('LPUSH', tag .. ':completed', cjson.encode(record)) end
    if waiters then wake(jk, id, waiters, 'completed') end
    if ttl > 0 then  -- kept, with its result (set after HGETALL: the history holds none)
      if result ~= '' then redis.call('HSET', jk, 'result', result) end
      if note ~= '' then redis.call('HSET', jk, 'result_error', note) end
      redis.call('PEXPIRE', jk, ttl)
    else
      redis.call('DEL', jk)
    end
    emit_job(maxlen, record['labels'], 'type', 'job.completed', 'job_id', id, 'tenant', tenant,
             'attempt', attempt, 'worker', worker, 'duration_ms', duration)
    done = done + 1
    out[j] = 1
  else
    out[j] = 0
  end
end
if done > 0 then
  redis.call('LTRIM', tag .. ':completed', 0, math.max(history, 1) - 1)
  redis.call('HINCRBY', tag .. ':counters', 'processed', done)
  tick('p', done)
end
return out
