-- FluxGate rate limits: decides, syncs or refunds the checks of one or more requests, each
-- request atomically (a batch of requests shares one call).
-- ARGV[1]: 'd' decide, 's' sync (apply deltas only), 'r' refund one unit, 'c' charge one unit
-- (a late answer reconciled with the fallback's decision).
-- ARGV[2]: the number of groups (requests); then per group: now in microseconds (or -1 for
-- Redis' own clock, TIME) and its number of keys.
-- Then 7 arguments per key: algorithm ('w' sliding window, 'g' GCRA), a, b
-- (window us and limit, or emission interval us and tolerance us), shadow ('1'),
-- the sender's window number, and the deltas for the previous and that window
-- (GCRA: units in the last one).
-- Replies 6 integers per key: code (0 skipped, 1 admitted, 2 refused, 3 shadow-refused),
-- remaining or retry (us), reset (us), then the stored state (e, p, c) or (t, 0, 0).
-- Each key is one string written with SET ... PX: three little-endian doubles e, p, c (sliding
-- window: window number, previous and current counts), or the decimal t (GCRA: arrival, us).
-- Redis runs Lua slowly next to a command: one GET and one SET per key, TIME once, no closure
-- or table per key.
local call, floor, ceil, max, ARGV, KEYS = redis.call, math.floor, math.ceil, math.max, ARGV, KEYS
local op = ARGV[1]
local groups = tonumber(ARGV[2])
local base = 3 + 2 * groups
local clock = nil
local out = {}

local function wait(p, c, lim, w, el)
  if c < lim and p > 0 then
    local t = (w + 1) - ceil((lim - c) * w / p)
    if t < 0 then t = 0 end
    if t < w then return max(t - el, 1) end
  end
  local t = 0
  if c > 0 then t = max((w + 1) - ceil(lim * w / c), 0) end
  return w - el + t
end

local first = 1
for g = 1, groups do
  local now, last = tonumber(ARGV[1 + 2 * g]), first + tonumber(ARGV[2 + 2 * g]) - 1
  if now < 0 then
    if clock == nil then
      local t = call('TIME')
      clock = t[1] * 1000000 + t[2]
    end
    now = clock
  end
  -- Decide each key into out[j+1..j+6]; a refusal (not shadow) admits none of the group.
  local refused = false
  for i = first, last do
    local o, j = base + (i - 1) * 7, (i - 1) * 6
    local a, b, dc = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 6])
    local code, x, y, s1, s2, s3 = 0, 0, 0, 0, 0, 0
    local v = call('GET', KEYS[i])
    if ARGV[o] == 'w' then
      local e, p, c, se = floor(now / a), 0, 0, nil
      if v and #v == 24 then se, p, c = struct.unpack('<ddd', v) end
      if se == nil then p, c = 0, 0
      elseif se == e - 1 then p, c = c, 0
      elseif se > e then e = se
      elseif se ~= e then p, c = 0, 0 end
      if dc > 0 or ARGV[o + 5] ~= '0' then
        local tag, dp = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5])
        if dp > 0 then if tag - 1 >= e then c = c + dp elseif tag == e then p = p + dp end end
        if dc > 0 then if tag >= e then c = c + dc elseif tag == e - 1 then p = p + dc end end
      end
      if op == 'r' then c = max(c - 1, 0) elseif op == 'c' then c = c + 1 end
      local el = now - e * a
      if el < 0 then el = 0 end
      if op == 'd' and not refused then
        if p * (a - el) + c * a < b * a then
          code, x, y = 1, max(b - (ceil(p * (a - el) / a) + c + 1), 0), a - el
        else
          code, x = 2, wait(p, c, b, a, el)
        end
      end
      s1, s2, s3 = e, p, c
    else
      local t = max(tonumber(v) or 0, now)
      if dc > 0 then t = t + dc * a end
      if op == 'r' then t = max(t - a, now) elseif op == 'c' then t = t + a end
      if op == 'd' and not refused then
        local new = t + a
        if new - now <= b then
          code, x, y = 1, floor((now + b - new) / a), new - now
        else
          code, x = 2, new - b - now
        end
      end
      s1 = t
    end
    if code == 2 then
      if ARGV[o + 3] == '1' then code = 3 else refused = true end
    end
    out[j + 1], out[j + 2], out[j + 3], out[j + 4], out[j + 5], out[j + 6] = code, x, y, s1, s2, s3
  end
  -- Store each key's new state, counting the admissions that stand.
  for i = first, last do
    local o, j = base + (i - 1) * 7, (i - 1) * 6
    local a = tonumber(ARGV[o + 1])
    local admit = out[j + 1] == 1 and not refused
    if ARGV[o] == 'w' then
      if admit then out[j + 6] = out[j + 6] + 1 end
      local state = struct.pack('<ddd', out[j + 4], out[j + 5], out[j + 6])
      call('SET', KEYS[i], state, 'PX', ceil(2 * a / 1000) + 1000)
    else
      if admit then out[j + 4] = out[j + 4] + a end
      local t = out[j + 4]
      if t > now then
        call('SET', KEYS[i], t, 'PX', ceil((t - now) / 1000) + 1000)
      else
        call('DEL', KEYS[i])
      end
    end
  end
  first = last + 1
end
return out
