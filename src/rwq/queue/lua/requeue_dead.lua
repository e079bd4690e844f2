-- Requeue dead-lettered jobs of this queue back to its pending set.
-- KEYS[1]=tag. ARGV: maxlen, queue, channel, reason, ids... Returns the number requeued.
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
