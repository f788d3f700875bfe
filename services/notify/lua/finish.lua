-- finish.lua: record what became of the messages of one send, right after it.
--
-- KEYS[1]  due:<channel> of the first record's channel. Declared so that a cluster client routes
--          the call to the notifier's slot; every key used here shares its hash tag
--          (services/notify/keys.py).
-- ARGV[1]  JSON, services.notify.payloads.FinishArgv:
--            keys       key templates by name (services/notify/keys.py), filled in with
--                       string.format; no key name is spelled here
--            retention  seconds finished messages and histories are kept
--            at         the time, ISO 8601
--            ms         how long the send took (absent: not measured)
--            records    one per message of the send, in order:
--              id, channel, subscription, attempt
--              outcome    sent | failed (to be retried) | dead (given up) | silenced (these
--                         alerts of the message were held back by a silence)
--              error      the reason ('' for none); for `silenced` the silence's id
--              alerts     [{alert_id, rule_id, report_id, dead_letter}]: the alerts it carried;
--                         dead_letter, only with dead_stream: the fields of the alert's dead
--                         letter as a flat list (field, value, ...)
--              retry_at, retry_iso
--                         when to send it again (failed only; absent: not again)
--              dead_stream
--                         the stream to dead-letter its alerts to (dead only; absent: the caller
--                         wrote them itself, the stream being on another cluster slot)
--              instead    dead because its channel is gone: the subscription's channels now, so
--                         that a replay queues it for those that never had it (absent: none)
--
-- A `silenced` record takes its alerts out of the message (a retry will not carry them), counts
-- them for the silence and records a history event each; a message left with no alerts is
-- `silenced` and off the schedule. Any other record sets the message's state (`retry` for
-- failed), puts it back on the schedule at retry_at or takes it off (then it expires after the
-- retention), and for each alert appends a history event and an entry to the deliveries stream;
-- when dead, remembers the channels that gave up on the alert (gave-up:<id>:<sub>) for a replay
-- and adds its dead letter to dead_stream.
--
-- Returns the number of records.

local args = cjson.decode(ARGV[1])
local templates = args.keys

local function key(name, ...)
  local template = templates[name]
  if not template then error('finish.lua: no key template named ' .. name) end
  return string.format(template, ...)
end

local function add_history(alert_id, event)
  local history = key('history', alert_id)
  redis.call('RPUSH', history, cjson.encode(event))
  redis.call('EXPIRE', history, args.retention)
end

for _, record in ipairs(args.records) do
  local delivery = key('delivery', record.id)
  local delivery_alerts = key('delivery_alerts', record.id)
  local schedule = key('due', record.channel)
  if record.outcome == 'silenced' then
    -- A silence holds these alerts of the message: out of it (a retry will not carry them),
    -- counted for the silence; the rest of the message is recorded by its send's own record.
    local silence = record.error
    for _, alert in ipairs(record.alerts) do
      redis.call('LREM', delivery_alerts, 0, alert.alert_id)
      redis.call('HINCRBY', key('silenced'), silence, 1)
      add_history(alert.alert_id, {at = args.at, event = 'silenced', subscription = record.subscription,
        channel = record.channel, delivery = record.id, detail = silence})
    end
    if redis.call('LLEN', delivery_alerts) == 0 then
      redis.call('HSET', delivery, 'state', 'silenced', 'updated', args.at)
      redis.call('ZREM', schedule, record.id)
      redis.call('EXPIRE', delivery, args.retention)
    end
  else
    local state = record.outcome
    if state == 'failed' then state = 'retry' end
    redis.call('HSET', delivery, 'state', state, 'updated', args.at, 'last_error', record.error)
    if record.outcome == 'sent' then redis.call('HSET', delivery, 'sent_at', args.at) end
    if record.retry_at then
      local score = string.format('%.17g', record.retry_at)
      redis.call('HSET', delivery, 'due', score)
      redis.call('ZADD', schedule, score, record.id)
    else
      redis.call('ZREM', schedule, record.id)
      redis.call('EXPIRE', delivery, args.retention)
      redis.call('EXPIRE', delivery_alerts, args.retention)
    end
    for _, alert in ipairs(record.alerts) do
      local event = {at = args.at, event = record.outcome, subscription = record.subscription,
                     channel = record.channel, delivery = record.id, attempt = record.attempt}
      if record.error ~= '' then event.detail = record.error end
      if record.retry_iso then event.retry_at = record.retry_iso end
      if args.ms then event.ms = args.ms end
      add_history(alert.alert_id, event)
      redis.call('XADD', key('deliveries'), 'MAXLEN', '~', 100000, '*',
        'alert_id', alert.alert_id, 'rule_id', alert.rule_id, 'report_id', alert.report_id,
        'subscription', record.subscription, 'channel', record.channel, 'delivery', record.id,
        'attempt', string.format('%d', record.attempt), 'outcome', record.outcome,
        'error', record.error, 'at', args.at)
      if record.outcome == 'dead' then
        -- Remembered so that a replay of this dead letter queues it again for this channel, or,
        -- when this channel is gone, for the subscription's channels now that never had it.
        local gave_up = key('gave_up', alert.alert_id, record.subscription)
        redis.call('SADD', gave_up, record.channel)
        if record.instead then
          local had = {}
          for _, entry in ipairs(redis.call('LRANGE', key('history', alert.alert_id), 0, -1)) do
            local ok, past = pcall(cjson.decode, entry)
            if ok and past.channel and past.subscription == record.subscription then
              had[past.channel] = true
            end
          end
          for _, channel in ipairs(record.instead) do
            if not had[channel] then redis.call('SADD', gave_up, channel) end
          end
        end
        redis.call('EXPIRE', gave_up, args.retention)
      end
      if record.dead_stream then
        -- The dead letter's fields come built (services.notify.outbox.Outbox.dead_letter).
        redis.call('XADD', record.dead_stream, '*', unpack(alert.dead_letter))
      end
    end
  end
end
return #args.records
