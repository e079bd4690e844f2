-- Count a client in (delta '1') or out ('-1') of the clients waiting for a job to end, whom
-- the script that ends it wakes (the prelude's `wake`). KEYS[1]=tag. ARGV: id, delta.
-- Returns the job's state ('' = no such job). A job that has ended (completed, dead,
-- cancelled) is not waited for: the client reads it at once.
local jk = tag .. ':job:' .. ARGV[1]
local state = redis.call('HGET', jk, 'state')
if not state then return '' end
if ARGV[2] == '1' then
  if state ~= 'completed' and state ~= 'dead' and state ~= 'cancelled' then
    redis.call('HINCRBY', jk, 'waiters', 1)
  end
elseif tonumber(redis.call('HGET', jk, 'waiters') or '0') > 1 then
  redis.call('HINCRBY', jk, 'waiters', -1)
else
  redis.call('HDEL', jk, 'waiters')
end
return state
