-- FluxGate rate limits: decides, syncs or refunds the checks of one or more requests, each
-- request atomically (a batch of requests shares one call).
-- ARGV[1]: 'd' decide, 's' sync (apply deltas only), 'r' refund one unit.
-- ARGV[2]: the number of groups (requests); then per group: now in microseconds (or -1 for
-- Redis' own clock, TIME) and its number of keys.
-- Then 7 arguments per key: algorithm ('w' sliding window, 'g' GCRA), a, b
-- (window us and limit, or emission interval us and tolerance us), shadow ('1'),
-- the sender's window number, and the deltas for the previous and that window
-- (GCRA: units in the last one).
-- Replies 6 integers per key: code (0 skipped, 1 admitted, 2 refused, 3 shadow-refused),
-- remaining or retry (us), reset (us), then the stored state (e, p, c) or (t, 0, 0).
local op = ARGV[1]
local groups = tonumber(ARGV[2])
local base = 3 + 2 * groups
local clock = nil
local out = {}

local function wait(p, c, lim, w, el)
  if c < lim and p > 0 then
    local t = (w + 1) - math.ceil((lim - c) * w / p)
    if t < 0 then t = 0 end
    if t < w then return math.max(t - el, 1) end
  end
  local t = 0
  if c > 0 then t = math.max((w + 1) - math.ceil(lim * w / c), 0) end
  return w - el + t
end

local function group(first, last, now)
  local states, codes = {}, {}
  local refused = false
  for i = first, last do
    local o = base + (i - 1) * 7
    local algo, a, b = ARGV[o], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2])
    local shadow = ARGV[o + 3] == '1'
    local tag, dp, dc = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6])
    local code, x, y, s = 0, 0, 0, nil
    if algo == 'w' then
      local e = math.floor(now / a)
      local v = redis.call('HMGET', KEYS[i], 'e', 'p', 'c')
      local se, p, c = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
      if se == nil then p, c = 0, 0
      elseif se == e - 1 then p, c = c, 0
      elseif se > e then e = se
      elseif se ~= e then p, c = 0, 0 end
      if dp > 0 then if tag - 1 >= e then c = c + dp elseif tag - 1 == e - 1 then p = p + dp end end
      if dc > 0 then if tag >= e then c = c + dc elseif tag == e - 1 then p = p + dc end end
      if op == 'r' then c = math.max(c - 1, 0) end
      local el = now - e * a
      if el < 0 then el = 0 end
      if op == 'd' and not refused then
        if p * (a - el) + c * a < b * a then
          code, x, y = 1, math.max(b - (math.ceil(p * (a - el) / a) + c + 1), 0), a - el
        else
          code, x = 2, wait(p, c, b, a, el)
        end
      end
      s = {e, p, c}
    else
      local t = math.max(tonumber(redis.call('HGET', KEYS[i], 't')) or 0, now)
      if dc > 0 then t = t + dc * a end
      if op == 'r' then t = math.max(t - a, now) end
      if op == 'd' and not refused then
        local new = t + a
        if new - now <= b then
          code, x, y = 1, math.floor((now + b - new) / a), new - now
        else
          code, x = 2, new - b - now
        end
      end
      s = {t, 0, 0}
    end
    if code == 2 and shadow then code = 3 end
    if code == 2 then refused = true end
    codes[i], states[i] = {code, x, y}, s
  end

  for i = first, last do
    local o = base + (i - 1) * 7
    local algo, a = ARGV[o], tonumber(ARGV[o + 1])
    local r, s = codes[i], states[i]
    if r[1] == 1 and not refused then
      if algo == 'w' then s[3] = s[3] + 1 else s[1] = s[1] + a end
    end
    if algo == 'w' then
      redis.call('HSET', KEYS[i], 'e', s[1], 'p', s[2], 'c', s[3])
      redis.call('PEXPIRE', KEYS[i], math.ceil(2 * a / 1000) + 1000)
    elseif s[1] > now then
      redis.call('HSET', KEYS[i], 't', s[1])
      redis.call('PEXPIRE', KEYS[i], math.ceil((s[1] - now) / 1000) + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
    for _, v in ipairs(r) do out[#out + 1] = v end
    for _, v in ipairs(s) do out[#out + 1] = v end
  end
end

local k = 1
for g = 1, groups do
  local now, n = tonumber(ARGV[1 + 2 * g]), tonumber(ARGV[2 + 2 * g])
  if now < 0 then
    if clock == nil then
      local t = redis.call('TIME')
      clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = clock
  end
  group(k, k + n - 1, now)
  k = k + n
end
return out
