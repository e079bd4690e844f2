-- KEYS[1]=tag. ARGV: maxlen, channel, queue, jobs. `jobs` holds one record per job separated
-- by \x1e, each record's fields separated by \x1f: id, priority, tenant, run_at ('' = now),
-- labels (JSON object or ''), spec (JSON: payload, max_retries, created_at, ...). One
-- argument instead of six per job keeps the client's command packing off the hot path; the
-- producer guarantees no field contains either separator (JSON is ASCII-escaped, which
-- escapes control characters; ids and tenants are checked).
-- ARGV[5] is '1' when some id was given by the caller: only then can one already exist
-- (generated ids carry 56 random bits per millisecond), so only then is each id checked.
-- Returns a list of 1 (added) / 0 (a job with that id already exists) per job.
local maxlen, channel, queue, data, check = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local pending, scheduled = tag .. ':pending', tag .. ':scheduled'
local ready = {}
local jobs, events = tag .. ':job:', tag .. ':events'
local find, sub = string.find, string.sub
local was_empty = redis.call('ZCARD', pending) == 0
local added, added_now, out, pos, size = 0, 0, {}, 1, #data
while pos <= size do
  local stop = find(data, '\30', pos, true) or (size + 1)
  local a = find(data, '\31', pos, true)
  local b = find(data, '\31', a + 1, true)
  local c = find(data, '\31', b + 1, true)
  local d = find(data, '\31', c + 1, true)
  local e = find(data, '\31', d + 1, true)
  local id, prio, tenant = sub(data, pos, a - 1), sub(data, a + 1, b - 1), sub(data, b + 1, c - 1)
  local run_at, spec = sub(data, c + 1, d - 1), sub(data, e + 1, stop - 1)
  local labels = e > d + 1 and sub(data, d + 1, e - 1) or ''
  pos = stop + 1
  local jk = jobs .. id
  local taken = check and redis.call('EXISTS', jk) == 1
  -- A completed job kept for its result (setting result_ttl) does not hold its id: a new
  -- job of that id replaces it, as when completed jobs were deleted at once.
  if taken and redis.call('HGET', jk, 'state') == 'completed' then
    redis.call('DEL', jk)
    taken = false
  end
  if taken then
    out[#out + 1] = 0
  elseif run_at ~= '' and tonumber(run_at) > now then
    redis.call('HSET', jk, 'spec', spec, 'priority', prio, 'tenant', tenant,
               'state', 'scheduled', 'enqueued_at', now_text, 'run_at', run_at)
    if labels ~= '' then redis.call('HSET', jk, 'labels', labels) end
    redis.call('ZADD', scheduled, run_at, id)
    emit_job(maxlen, labels, 'type', 'job.enqueued', 'job_id', id, 'tenant', tenant,
             'priority', prio, 'run_at', run_at)
    added = added + 1
    out[#out + 1] = 1
  else
    ready[#ready + 1] = pending_score(prio, now)
    ready[#ready + 1] = id
    if tenant == '' and labels == '' then  -- the common case: fewer arguments per command
      redis.call('HSET', jk, 'spec', spec, 'priority', prio, 'state', 'pending',
                 'enqueued_at', now_text)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'job.enqueued',
                 'job_id', id, 'priority', prio)
    elseif tenant == '' then
      redis.call('HSET', jk, 'spec', spec, 'priority', prio, 'labels', labels,
                 'state', 'pending', 'enqueued_at', now_text)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'job.enqueued',
                 'job_id', id, 'priority', prio, 'labels', labels)
    elseif labels == '' then
      redis.call('HSET', jk, 'spec', spec, 'priority', prio, 'tenant', tenant,
                 'state', 'pending', 'enqueued_at', now_text)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'job.enqueued',
                 'job_id', id, 'tenant', tenant, 'priority', prio)
    else
      redis.call('HSET', jk, 'spec', spec, 'priority', prio, 'tenant', tenant,
                 'labels', labels, 'state', 'pending', 'enqueued_at', now_text)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'job.enqueued',
                 'job_id', id, 'tenant', tenant, 'priority', prio, 'labels', labels)
    end
    added, added_now = added + 1, added_now + 1
    out[#out + 1] = 1
  end
end
if #ready > 0 then redis.call('ZADD', pending, unpack(ready)) end
if added > 0 then redis.call('HINCRBY', tag .. ':counters', 'enqueued', added) end
if was_empty and added_now > 0 then redis.call('PUBLISH', channel, queue) end
return out
