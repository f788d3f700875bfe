-- accept.lua: queue a batch of routed alerts and ack their stream entries, in one call.
--
-- KEYS[1]  the notifier's `recent` key. Declared so that a cluster client routes the call to the
--          notifier's slot; every key used here shares its hash tag (services/notify/keys.py).
-- ARGV[1]  JSON, services.notify.payloads.AcceptArgv:
--            keys             key templates by name (services/notify/keys.py), filled in with
--                             string.format; no key name is spelled here
--            now, now_iso     the time, as a score and as ISO 8601 (for history events)
--            retention        seconds the alerts, their history and their messages are kept
--            dedup_retention  seconds a subscription remembers that it took an alert
--            stream, group, ack
--                             the entries to XACK once all is stored (ack is empty when the
--                             caller acks itself: the stream is on another cluster slot)
--            items            one per alert: alert_id; argv, the index in ARGV of the alert's
--                             JSON; routes, one per subscription that wants it:
--                               subscription, silence (absent: none), window (re-alert window in
--                               seconds, 0: none), dedup_key, bucket, due (when a message opened
--                               now is sent), channels: [{channel, new_delivery}] (new_delivery:
--                               the id a new message takes if none is open for the bucket)
-- ARGV[2..] each alert's JSON as it came (never escaped inside ARGV[1])
--
-- For each alert: store it (alert:<id>), note its arrival in `recent` the first time; then for
-- each route, in order:
--   a subscription that took this alert before (accepted:<id>:<sub>) drops it as a repeat,
--     unless channels gave up on it (gave-up:<id>:<sub>, a replayed dead letter): then it is
--     queued again for those channels only;
--   a silence records it as silenced (and counts it for the silence);
--   a case (dedup key) seen within the re-alert window is recorded as deduplicated;
--   otherwise it joins the open message of its (subscription, channel, bucket), opening one
--     (due at `due` on the channel's schedule) if there is none.
-- Every decision is a history event of the alert.
--
-- Returns JSON, services.notify.payloads.AcceptCounts:
--   {queued, silenced, deduplicated, repeated, routed_nowhere}: counts of (alert, subscription)
--   pairs, and of new alerts that no subscription wanted.

local args = cjson.decode(ARGV[1])
local templates = args.keys

local function key(name, ...)
  local template = templates[name]
  if not template then error('accept.lua: no key template named ' .. name) end
  return string.format(template, ...)
end

local counts = {queued = 0, silenced = 0, deduplicated = 0, repeated = 0, routed_nowhere = 0}

local function add_history(alert_id, event)
  event.at = args.now_iso
  local history = key('history', alert_id)
  redis.call('RPUSH', history, cjson.encode(event))
  redis.call('EXPIRE', history, args.retention)
end

for _, item in ipairs(args.items) do
  local alert_id = item.alert_id
  local alert_key = key('alert', alert_id)
  local new_alert = redis.call('EXISTS', alert_key) == 0
  redis.call('SET', alert_key, ARGV[item.argv], 'EX', args.retention)
  if new_alert then
    redis.call('ZADD', key('recent'), args.now, alert_id)
    if #item.routes == 0 then
      add_history(alert_id, {event = 'routed nowhere'})
      counts.routed_nowhere = counts.routed_nowhere + 1
    end
  end
  for _, route in ipairs(item.routes) do
    local subscription = route.subscription
    local channels = route.channels
    local first_take = redis.call('SET', key('accepted', alert_id, subscription), args.now_iso,
      'NX', 'EX', args.dedup_retention)
    if not first_take then
      -- Taken before: a repeat, unless a channel gave up on it (dead-lettered, now replayed):
      -- then it is queued again for those channels only, never for one that had it.
      local gave_up = key('gave_up', alert_id, subscription)
      local again = {}
      for _, channel in ipairs(route.channels) do
        if redis.call('SREM', gave_up, channel.channel) == 1 then table.insert(again, channel) end
      end
      channels = again
    end
    if #channels == 0 then
      counts.repeated = counts.repeated + 1
    elseif route.silence then
      redis.call('HINCRBY', key('silenced'), route.silence, 1)
      add_history(alert_id, {event = 'silenced', subscription = subscription, detail = route.silence})
      counts.silenced = counts.silenced + 1
    else
      local window_key = key('dedup', subscription, route.dedup_key)
      local opened_by = false
      if route.window > 0 and first_take then opened_by = redis.call('GET', window_key) end
      if opened_by and opened_by ~= alert_id then
        add_history(alert_id, {event = 'deduplicated', subscription = subscription,
          detail = 'same case as ' .. opened_by})
        counts.deduplicated = counts.deduplicated + 1
      else
        if route.window > 0 then redis.call('SET', window_key, alert_id, 'EX', route.window) end
        for _, channel in ipairs(channels) do
          local open_key = key('open', subscription, channel.channel, route.bucket)
          local delivery_id = redis.call('GET', open_key)
          if not delivery_id then
            delivery_id = channel.new_delivery
            redis.call('SET', open_key, delivery_id)
            redis.call('HSET', key('delivery', delivery_id), 'subscription', subscription,
              'channel', channel.channel, 'bucket', route.bucket, 'open_key', open_key,
              'state', 'open', 'attempts', 0, 'created', args.now_iso, 'due', route.due)
            redis.call('ZADD', key('due', channel.channel), route.due, delivery_id)
          end
          redis.call('RPUSH', key('delivery_alerts', delivery_id), alert_id)
          add_history(alert_id, {event = 'queued', subscription = subscription,
            channel = channel.channel, delivery = delivery_id})
        end
        counts.queued = counts.queued + 1
      end
    end
  end
end
if #args.ack > 0 then redis.call('XACK', args.stream, args.group, unpack(args.ack)) end
redis.call('ZREMRANGEBYSCORE', key('recent'), '-inf', args.now - args.retention)
return cjson.encode(counts)
