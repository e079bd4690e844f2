-- Shared by every queue script: the server clock, event appends, the pending score.
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
-- Wake the clients waiting for a job to end (`rwq job wait`, `JobHandle.result`): each
-- counted itself in the job's `waiters` field (script `watch`) before it blocked on the job's
-- `done:<id>` list; one token each, the job's final state, pushed in the same script as the
-- transition, so no wake-up is missed. Called only when `waiters` is set: no cost otherwise.
local function wake(jk, id, waiters, state)
  local n = math.min(tonumber(waiters) or 0, 10000)
  if n > 0 then
    local key = tag .. ':done:' .. id
    local tokens = {}
    for k = 1, math.min(n, 100) do tokens[k] = state end
    while n > 0 do
      redis.call('RPUSH', key, unpack(tokens, 1, math.min(n, 100)))
      n = n - 100
    end
    redis.call('PEXPIRE', key, 60000)  -- tokens of waiters that gave up meanwhile
  end
  redis.call('HDEL', jk, 'waiters')
end
