-- Add a job moved here from another queue (its fields as given), unless it already exists.
-- KEYS[1]=tag. ARGV: maxlen, queue, channel, from_queue, id, field, value, ...
-- Returns 1 if added, 0 if present (a repeated move after a crash).
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
