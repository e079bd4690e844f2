-- Remove dead-lettered jobs (after they were adopted elsewhere, or to delete them).
-- KEYS[1]=tag. ARGV: ids... Returns the number removed. Emits nothing: the caller's
-- purge or the adopting queue's requeue event describes what happened.
local n = 0
for i = 1, #ARGV do
  if redis.call('ZREM', tag .. ':dead', ARGV[i]) == 1 then
    redis.call('DEL', tag .. ':job:' .. ARGV[i])
    n = n + 1
  end
end
return n
