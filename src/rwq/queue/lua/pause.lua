-- Pause or resume. KEYS[1]=tag. ARGV: maxlen, queue, channel, 'pause'|'resume'.
-- Returns 1 if the state changed.
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
