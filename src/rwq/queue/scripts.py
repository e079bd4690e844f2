"""The Lua scripts that make every queue transition atomic, each with its event.

Each script touches the keys of exactly one queue (one hash tag), so it runs on Redis Cluster.
Scripts take the queue's key-prefix ("tag") as KEYS[1] and build the other keys of that queue
from it; declaring the prefix routes the call to the right slot.
"""

from __future__ import annotations

from typing import Any

from redis.client import Pipeline
from redis.cluster import ClusterPipeline

# Shared Lua: server clock, event append and the pending score. Timestamps are epoch ms
# with microsecond fraction, built as strings so no precision is lost to Lua's number format.
_PRELUDE = r"""
local tag = KEYS[1]
local function clock()
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local text = t[1] .. string.format('%03d.%03d', math.floor(tonumber(t[2]) / 1000),
                                     tonumber(t[2]) % 1000)
  return ms, text
end
local now, now_text = clock()
local PRIORITY_BAND = 8796093022208
local function pending_score(priority, ms)
  return (9 - tonumber(priority)) * PRIORITY_BAND + ms
end
local function emit(maxlen, ...)
  redis.call('XADD', tag .. ':events', 'MAXLEN', '~', maxlen, '*', ...)
end
-- A job event: its fields, then the job's labels when it has any.
local function emit_job(maxlen, labels, ...)
  if labels and labels ~= '' then
    local args = {...}
    args[#args + 1] = 'labels'
    args[#args + 1] = labels
    redis.call('XADD', tag .. ':events', 'MAXLEN', '~', maxlen, '*', unpack(args))
  else
    redis.call('XADD', tag .. ':events', 'MAXLEN', '~', maxlen, '*', ...)
  end
end
local function max_retries(jk)
  local spec = redis.call('HGET', jk, 'spec')
  local ok, decoded = pcall(cjson.decode, spec or '{}')
  if ok and type(decoded) == 'table' then return tonumber(decoded['max_retries']) or 0 end
  return 0
end
-- Whether `worker` (its processing set) holds the job now, taking it out of the set if so.
-- With an attempt (`fence` not ''), only while the job's attempt is still that one.
local function held(processing, jk, id, fence)
  if fence == '' then
    return redis.call('ZREM', processing, id) == 1 and redis.call('EXISTS', jk) == 1
  end
  return redis.call('HGET', jk, 'attempts') == fence and redis.call('ZREM', processing, id) == 1
end
local function tick(kind, n)
  if n > 0 then
    local minute = math.floor(now / 60000)
    local key = tag .. ':tp:' .. minute
    redis.call('HINCRBY', key, kind .. ':' .. math.floor(now / 1000), n)
    redis.call('PEXPIRE', key, 7200000)
  end
end
"""

# KEYS[1]=tag. ARGV: maxlen, channel, queue, jobs. `jobs` holds one record per job separated
# by \x1e, each record's fields separated by \x1f: id, priority, tenant, run_at ('' = now),
# labels (JSON object or ''), spec (JSON: payload, max_retries, created_at, ...). One
# argument instead of six per job keeps the client's command packing off the hot path; the
# producer guarantees no field contains either separator (JSON is ASCII-escaped, which
# escapes control characters; ids and tenants are checked).
# ARGV[5] is '1' when some id was given by the caller: only then can one already exist
# (generated ids carry 56 random bits per millisecond), so only then is each id checked.
# Returns a list of 1 (added) / 0 (a job with that id already exists) per job.
ENQUEUE = (
    _PRELUDE
    + r"""
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
  if check and redis.call('EXISTS', jk) == 1 then
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
"""
)

# Move due scheduled jobs to pending, then take up to `count` pending jobs for a worker.
# KEYS[1]=tag. ARGV: worker, count, maxlen, queue.
# Returns {state, next_due_ms, {id, fields}, ...}; state is 'ok' or 'paused'.
DEQUEUE = (
    _PRELUDE
    + r"""
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
"""
)

# Complete jobs a worker holds. KEYS[1]=tag. ARGV: worker, maxlen, queue, history, n,
# then per job: id, duration_ms, attempt. A job is held when it is in the worker's processing
# set and, when `attempt` is given (not ''), its attempt is still that one: a late result of
# an earlier attempt (a handler abandoned at its timeout) is refused even when the job runs
# again on the same worker. Returns 1 (completed) / 0 (not held: stale ack) per job.
COMPLETE = (
    _PRELUDE
    + r"""
local worker, maxlen, queue, history, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]),
                                          tonumber(ARGV[5])
local processing = tag .. ':processing:' .. worker
local out, done, i = {}, 0, 6
for j = 1, n do
  local id, duration, fence = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local jk = tag .. ':job:' .. id
  if held(processing, jk, id, fence) then
    redis.call('HSET', jk, 'state', 'completed', 'finished_at', now_text,
               'duration_ms', duration)
    local job = redis.call('HGETALL', jk)
    local record, tenant, attempt = {}, '', ''
    for f = 1, #job, 2 do record[job[f]] = job[f + 1] end
    record['id'] = id
    tenant, attempt = record['tenant'] or '', record['attempts'] or ''
    if history > 0 then redis.call('LPUSH', tag .. ':completed', cjson.encode(record)) end
    redis.call('DEL', jk)
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
"""
)

# Record failures of jobs a worker holds (as COMPLETE decides): retry with the given delay or
# dead-letter. KEYS[1]=tag. ARGV: worker, maxlen, queue, n, then per job:
#   id, duration_ms, error, traceback, delay_ms, permanent ('1'/'0'), attempt ('' = any),
#   timeout_ms ('' = not a timeout), stopped ('killed' / 'abandoned').
# A timeout emits `job.timed_out` before `job.failed`.
# Returns per job: 'retried', 'dead' or '' (not held: stale).
FAIL = (
    _PRELUDE
    + r"""
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
    local v = redis.call('HMGET', jk, 'attempts', 'tenant', 'labels')
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
"""
)

# Give back every job a worker holds on this queue (the worker died or is shutting down).
# The attempt stays counted; a job past its retries is dead-lettered.
# KEYS[1]=tag. ARGV: worker, maxlen, queue, channel, reason, error.
# Returns {requeued, dead}.
RELEASE = (
    _PRELUDE
    + r"""
local worker, maxlen, queue, channel, reason, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                                                    ARGV[5], ARGV[6]
local processing = tag .. ':processing:' .. worker
local pending = tag .. ':pending'
local ids = redis.call('ZRANGE', processing, 0, -1)
local requeued, dead = 0, 0
for _, id in ipairs(ids) do
  local jk = tag .. ':job:' .. id
  local v = redis.call('HMGET', jk, 'attempts', 'tenant', 'priority', 'enqueued_at', 'labels')
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
"""
)

# Requeue dead-lettered jobs of this queue back to its pending set.
# KEYS[1]=tag. ARGV: maxlen, queue, channel, reason, ids... Returns the number requeued.
REQUEUE_DEAD = (
    _PRELUDE
    + r"""
local maxlen, queue, channel, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dead, pending = tag .. ':dead', tag .. ':pending'
local n = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  local jk = tag .. ':job:' .. id
  if redis.call('ZREM', dead, id) == 1 and redis.call('EXISTS', jk) == 1 then
    local v = redis.call('HMGET', jk, 'priority', 'tenant', 'labels')
    redis.call('HSET', jk, 'state', 'pending', 'attempts', 0, 'enqueued_at', now_text)
    redis.call('HDEL', jk, 'dead_at', 'run_at', 'worker', 'started_at', 'finished_at',
               'duration_ms')
    redis.call('ZADD', pending, pending_score(v[1] or 5, now), id)
    emit_job(maxlen, v[3], 'type', 'job.requeued', 'job_id', id, 'tenant', v[2] or '',
             'reason', reason, 'from_queue', '')
    n = n + 1
  end
end
if n > 0 then
  redis.call('HINCRBY', tag .. ':counters', 'requeued', n)
  redis.call('PUBLISH', channel, queue)
end
return n
"""
)

# Add a job moved here from another queue (its fields as given), unless it already exists.
# KEYS[1]=tag. ARGV: maxlen, queue, channel, from_queue, id, field, value, ...
# Returns 1 if added, 0 if present (a repeated move after a crash).
ADOPT = (
    _PRELUDE
    + r"""
local maxlen, queue, channel, from_queue, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jk = tag .. ':job:' .. id
if redis.call('EXISTS', jk) == 1 then return 0 end
local f = {}
for i = 6, #ARGV do f[#f + 1] = ARGV[i] end
redis.call('HSET', jk, unpack(f))
redis.call('HSET', jk, 'state', 'pending', 'attempts', 0, 'enqueued_at', now_text)
redis.call('HDEL', jk, 'dead_at', 'run_at', 'worker', 'started_at', 'finished_at',
           'duration_ms')
local v = redis.call('HMGET', jk, 'priority', 'tenant', 'labels')
redis.call('ZADD', tag .. ':pending', pending_score(v[1] or 5, now), id)
emit_job(maxlen, v[3], 'type', 'job.requeued', 'job_id', id, 'tenant', v[2] or '',
         'reason', 'dead_letter', 'from_queue', from_queue)
redis.call('HINCRBY', tag .. ':counters', 'requeued', 1)
redis.call('PUBLISH', channel, queue)
return 1
"""
)

# Remove dead-lettered jobs (after they were adopted elsewhere, or to delete them).
# KEYS[1]=tag. ARGV: ids... Returns the number removed. Emits nothing: the caller's
# purge or the adopting queue's requeue event describes what happened.
DROP_DEAD = (
    _PRELUDE
    + r"""
local n = 0
for i = 1, #ARGV do
  if redis.call('ZREM', tag .. ':dead', ARGV[i]) == 1 then
    redis.call('DEL', tag .. ':job:' .. ARGV[i])
    n = n + 1
  end
end
return n
"""
)

# Delete chosen dead letters permanently, in one step. KEYS[1]=tag. ARGV: maxlen, ids...
# Ids that are not dead letters of this queue are skipped. Emits `queue.purged` (target
# `dead`) when it removed any. Returns the number removed.
DELETE_DEAD = (
    _PRELUDE
    + r"""
local n = 0
for i = 2, #ARGV do
  if redis.call('ZREM', tag .. ':dead', ARGV[i]) == 1 then
    redis.call('DEL', tag .. ':job:' .. ARGV[i])
    n = n + 1
  end
end
if n > 0 then
  emit(ARGV[1], 'type', 'queue.purged', 'target', 'dead', 'count', n)
  redis.call('HINCRBY', tag .. ':counters', 'purged', n)
end
return n
"""
)

# Purge up to `limit` jobs from one of the queue's sets (pending, scheduled, dead) or the
# completed history. KEYS[1]=tag. ARGV: maxlen, queue, target, limit.
# Returns the number removed by this call; the caller loops until it returns 0.
PURGE = (
    _PRELUDE
    + r"""
local maxlen, queue, target, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = 0
if target == 'completed' then
  n = redis.call('LLEN', tag .. ':completed')
  redis.call('DEL', tag .. ':completed')
else
  local key = tag .. ':' .. target
  local ids = redis.call('ZRANGE', key, 0, limit - 1)
  for _, id in ipairs(ids) do redis.call('DEL', tag .. ':job:' .. id) end
  if #ids > 0 then redis.call('ZREM', key, unpack(ids)) end
  n = #ids
end
if n > 0 then
  emit(maxlen, 'type', 'queue.purged', 'target', target, 'count', n)
  redis.call('HINCRBY', tag .. ':counters', 'purged', n)
end
return n
"""
)

# Pause or resume. KEYS[1]=tag. ARGV: maxlen, queue, channel, 'pause'|'resume'.
# Returns 1 if the state changed.
PAUSE = (
    _PRELUDE
    + r"""
local maxlen, queue, channel, action = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = tag .. ':paused'
if action == 'pause' then
  if redis.call('SET', key, now_text, 'NX') then
    emit(maxlen, 'type', 'queue.paused')
    return 1
  end
  return 0
end
if redis.call('DEL', key) == 1 then
  emit(maxlen, 'type', 'queue.resumed')
  redis.call('PUBLISH', channel, queue)
  return 1
end
return 0
"""
)

# A consistent snapshot of one queue. KEYS[1]=tag. ARGV: worker ids...
# Returns {pending, scheduled, dead, processing, paused, oldest_enqueued_ms, now_ms,
#          throughput_1m, failed_1m, counters_flat}.
STATS = (
    _PRELUDE
    + r"""
local pending = tag .. ':pending'
local processing = 0
for i = 1, #ARGV do
  processing = processing + redis.call('ZCARD', tag .. ':processing:' .. ARGV[i])
end
local oldest = ''
for band = 0, 9 do
  local lo = band * PRIORITY_BAND
  local first = redis.call('ZRANGEBYSCORE', pending, lo, '(' .. (lo + PRIORITY_BAND),
                           'WITHSCORES', 'LIMIT', 0, 1)
  if first[2] then
    local ms = tonumber(first[2]) - lo
    if oldest == '' or ms < oldest then oldest = ms end
  end
end
local since = math.floor(now / 1000) - 60
local done, failed = 0, 0
local minute = math.floor(now / 60000)
for m = minute - 1, minute do
  local h = redis.call('HGETALL', tag .. ':tp:' .. m)
  for f = 1, #h, 2 do
    local kind, sec = string.match(h[f], '^(%a):(%d+)$')
    if sec and tonumber(sec) > since then
      local count = tonumber(h[f + 1])
      if kind == 'p' then done = done + count else failed = failed + count end
    end
  end
end
return {redis.call('ZCARD', pending), redis.call('ZCARD', tag .. ':scheduled'),
        redis.call('ZCARD', tag .. ':dead'), processing,
        redis.call('EXISTS', tag .. ':paused'), tostring(oldest), tostring(now), done, failed,
        redis.call('HGETALL', tag .. ':counters')}
"""
)

# Per-second counts of the last `seconds` seconds (for throughput charts).
# KEYS[1]=tag. ARGV: seconds. Returns {now_s, processed..., failed...} oldest first.
THROUGHPUT = (
    _PRELUDE
    + r"""
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
"""
)

ALL: dict[str, str] = {
    "enqueue": ENQUEUE,
    "dequeue": DEQUEUE,
    "complete": COMPLETE,
    "fail": FAIL,
    "release": RELEASE,
    "requeue_dead": REQUEUE_DEAD,
    "adopt": ADOPT,
    "drop_dead": DROP_DEAD,
    "delete_dead": DELETE_DEAD,
    "purge": PURGE,
    "pause": PAUSE,
    "stats": STATS,
    "throughput": THROUGHPUT,
}


class _Script:
    """One registered script.

    Called on a client it is redis-py's ``EVALSHA`` with ``EVAL`` fallback. Queued on a
    pipeline it is a bare ``EVALSHA``: redis-py would otherwise ask ``SCRIPT EXISTS`` before
    every such pipeline, an extra round trip on the hot path; :meth:`Broker.execute` loads the
    scripts and runs the pipeline again if the server answers ``NOSCRIPT``. In a cluster
    pipeline, where redis-py refuses EVALSHA, it is sent as ``EVAL`` (the server reuses its
    compiled copy).
    """

    def __init__(self, script: Any) -> None:
        self._script = script

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        pipe: Any = client
        if isinstance(client, ClusterPipeline):
            return pipe.execute_command("EVAL", self._script.script, len(keys), *keys, *args)
        if isinstance(client, Pipeline):
            return pipe.execute_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        return self._script(keys=keys, args=args, client=client)

    @property
    def source(self) -> str:
        return str(self._script.script)


class Scripts:
    """The queue scripts registered on one client (``EVALSHA`` with ``EVAL`` fallback)."""

    def __init__(self, client: Any) -> None:
        self._scripts = {name: _Script(client.register_script(src)) for name, src in ALL.items()}

    def load(self, client: Any) -> None:
        """Load every script on the server (on a cluster: on every primary)."""
        for script in self._scripts.values():
            client.script_load(script.source)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._scripts[name]
        except KeyError:
            raise AttributeError(name) from None
