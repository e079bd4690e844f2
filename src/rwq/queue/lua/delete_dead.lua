-- Delete chosen dead letters permanently, in one step. KEYS[1]=tag. ARGV: maxlen, ids...
-- Ids that are not dead letters of this queue are skipped. Emits `queue.purged` (target
-- `dead`) when it removed any. Returns the number removed.
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
