-- claim.lua: lease the due messages of one channel for sending, with all a sender needs.
--
-- KEYS[1]  due:<channel>, the channel's schedule (sorted set: delivery id -> when due). Every
--          other key used here shares its hash tag (services/notify/keys.py).
-- ARGV[1]  JSON, services.notify.payloads.ClaimArgv:
--            keys       key templates by name (services/notify/keys.py), filled in with
--                       string.format; no key name is spelled here
--            now        the time (a score of the schedule)
--            lease      seconds a claimed message is kept from other senders
--            max_units  how many sends to fill
--            limits     subscription -> how many messages one send of it may carry (absent: 1)
--            flying     delivery ids this sender is still sending: never taken again here, even
--                       when their lease ran out
--            scan       how many due entries to look at, at most
--
-- Takes due messages in schedule order into sends ("units") of one subscription each, up to
-- max_units sends of up to limits[subscription] messages (messages of one subscription due at
-- once, a backlog, go out as one send). Each message taken is leased (its score becomes
-- now + lease, so it comes back if the sender dies), marked `sending`, its attempts counted, and
-- closed to new alerts (its open:<...> key deleted). A scheduled message whose record is gone
-- (past the retention) is dropped from the schedule.
--
-- Returns an array, decoded by services.notify.payloads.decode_claim:
--   [1]  JSON: [{subscription, messages: [{id, attempts, alerts: [alert id, ...]}]}] (cjson
--        encodes an empty array as {}: no units, or a message without alert ids)
--   [2]  every silence: the silences hash as HGETALL gives it (id, JSON, id, JSON, ...), to be
--        checked again right before the send
--   [3]  when the first message of the schedule is due (after this claim: past when more were
--        due than taken), or '' when the schedule is empty
--   [4..] alert id, alert JSON, alert id, alert JSON, ...: each claimed alert whose JSON is still
--        stored, once (replies of their own: never escaped inside [1])

local args = cjson.decode(ARGV[1])
local templates = args.keys
local schedule = KEYS[1]

local function key(name, ...)
  local template = templates[name]
  if not template then error('claim.lua: no key template named ' .. name) end
  return string.format(template, ...)
end

local in_flight = {}
for _, delivery_id in ipairs(args.flying) do in_flight[delivery_id] = true end

local units, filling, unit_count = {}, {}, 0  -- filling: subscription -> its unit being filled
local bodies, fetched = {}, {}
local due_now = redis.call('ZRANGEBYSCORE', schedule, '-inf', args.now, 'LIMIT', 0, args.scan)
for _, delivery_id in ipairs(due_now) do
  if not in_flight[delivery_id] then
    local delivery = key('delivery', delivery_id)
    local subscription = redis.call('HGET', delivery, 'subscription')
    if not subscription then
      redis.call('ZREM', schedule, delivery_id)  -- its record is gone (past the retention)
    else
      local unit = filling[subscription]
      if unit == nil or #unit.messages >= (args.limits[subscription] or 1) then
        unit = nil
        if unit_count < args.max_units then
          unit_count = unit_count + 1
          unit = {subscription = subscription, messages = {}}
          units[unit_count] = unit
          filling[subscription] = unit
        end
      end
      if unit then
        local open_key = redis.call('HGET', delivery, 'open_key')
        if open_key and redis.call('GET', open_key) == delivery_id then redis.call('DEL', open_key) end
        redis.call('ZADD', schedule, string.format('%.17g', args.now + args.lease), delivery_id)
        redis.call('HSET', delivery, 'state', 'sending')
        local attempts = redis.call('HINCRBY', delivery, 'attempts', 1)
        local alert_ids = redis.call('LRANGE', key('delivery_alerts', delivery_id), 0, -1)
        table.insert(unit.messages, {id = delivery_id, attempts = attempts, alerts = alert_ids})
        for _, alert_id in ipairs(alert_ids) do
          if not fetched[alert_id] then
            fetched[alert_id] = true
            local body = redis.call('GET', key('alert', alert_id))
            if body then
              bodies[#bodies + 1] = alert_id
              bodies[#bodies + 1] = body
            end
          end
        end
      end
    end
  end
end
-- The silences, checked again right before the send, and when the next message is due (a
-- sender with nothing to send sleeps until then), read in the same call.
local first = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
local reply = {cjson.encode(units), redis.call('HGETALL', key('silences')), first[2] or ''}
for _, body in ipairs(bodies) do reply[#reply + 1] = body end
return reply
