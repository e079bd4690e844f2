-- Fire one tick of a periodic job. KEYS[1]=tag. ARGV: maxlen, channel, queue, name, rev
-- (the definition the caller computed the tick from), due (the next_ms the caller read),
-- tick (epoch ms), next (the first tick after now), missed (earlier ticks this one stands
-- for), mode ('fire', or 'skip' to pass the tick without a job).
-- Each tick fires once whoever calls and however often: a tick at or before the schedule's
-- last_tick is refused, and the job's id is `<name>:<tick>`. The job is enqueued as
-- enqueue.lua would (pending now), then `schedule.fired` follows `job.enqueued`.
-- Returns {'fired', job_id} | {'skipped', ''} | {'done', last_job} (fired already) |
-- {'changed', ''} (the definition or its next_ms changed since the caller read them:
-- read again) | {'gone', ''} (removed).
local maxlen, channel, queue, name, rev = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local due, tick_text, nxt, missed, mode = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local tick = tonumber(tick_text)
local sk = tag .. ':schedule:' .. name
local s = redis.call('HMGET', sk, 'rev', 'last_tick', 'last_job', 'priority', 'tenant',
                     'labels', 'job_spec', 'next_ms')
if not s[1] then return {'gone', ''} end
if s[1] ~= rev or s[8] ~= due then return {'changed', ''} end
if s[2] and tonumber(s[2]) >= tick then  -- fired already: only move its next tick on
  redis.call('HSET', sk, 'next_ms', nxt)
  return {'done', s[3] or ''}
end
if mode == 'skip' then
  redis.call('HSET', sk, 'last_tick', tick_text, 'next_ms', nxt)
  redis.call('HINCRBY', sk, 'skipped', 1 + tonumber(missed))
  return {'skipped', ''}
end
local id = name .. ':' .. tick_text
local jk = tag .. ':job:' .. id
if redis.call('EXISTS', jk) == 0 then
  local prio, tenant, labels = s[4], s[5] or '', s[6] or ''
  local pending = tag .. ':pending'
  local was_empty = redis.call('ZCARD', pending) == 0
  redis.call('HSET', jk, 'spec', s[7] .. ',"created_at":' .. now_text .. '}',
             'priority', prio, 'state', 'pending', 'enqueued_at', now_text)
  local fields = {'type', 'job.enqueued', 'job_id', id}
  if tenant ~= '' then
    redis.call('HSET', jk, 'tenant', tenant)
    fields[#fields + 1] = 'tenant'
    fields[#fields + 1] = tenant
  end
  if labels ~= '' then redis.call('HSET', jk, 'labels', labels) end
  fields[#fields + 1] = 'priority'
  fields[#fields + 1] = prio
  redis.call('ZADD', pending, pending_score(prio, now), id)
  emit_job(maxlen, labels, unpack(fields))
  redis.call('HINCRBY', tag .. ':counters', 'enqueued', 1)
  if was_empty then redis.call('PUBLISH', channel, queue) end
end
redis.call('HSET', sk, 'last_tick', tick_text, 'next_ms', nxt, 'last_job', id,
           'last_fired_ms', string.format('%d', now))
redis.call('HINCRBY', sk, 'fired', 1)
emit(maxlen, 'type', 'schedule.fired', 'schedule', name, 'job_id', id, 'tick', tick_text,
     'late_ms', string.format('%d', math.max(0, now - tick)), 'missed', missed)
return {'fired', id}
