//! The Lua scripts that write policies: each runs atomically in Redis.

use std::sync::LazyLock;

use redis::Script;

/// Writes policies and publishes each change, all or nothing.
///
/// `KEYS`: policies hash, versions hash. `ARGV`: channel, then `name, expected, json` per policy
/// (`expected` empty for "any version"). Every expected version is checked before anything is
/// written. An unchanged policy keeps its version and is not published.
/// Returns `{'ok', change, version, …}` or `{'conflict', name, current}`.
const APPLY: &str = r#"
local n = (#ARGV - 1) / 3
for i = 0, n - 1 do
  local name, expected = ARGV[2 + 3 * i], ARGV[3 + 3 * i]
  if expected ~= '' then
    local current = tonumber(redis.call('HGET', KEYS[2], name) or '0')
    if current ~= tonumber(expected) then
      return {'conflict', name, tostring(current)}
    end
  end
end
local out = {'ok'}
for i = 0, n - 1 do
  local name, json = ARGV[2 + 3 * i], ARGV[4 + 3 * i]
  local old = redis.call('HGET', KEYS[1], name)
  local current = tonumber(redis.call('HGET', KEYS[2], name) or '0')
  if old and old == '{"version":' .. current .. ',"policy":' .. json .. '}' then
    table.insert(out, 'unchanged')
    table.insert(out, tostring(current))
  else
    local version = redis.call('HINCRBY', KEYS[2], name, 1)
    redis.call('HSET', KEYS[1], name, '{"version":' .. version .. ',"policy":' .. json .. '}')
    redis.call('PUBLISH', ARGV[1],
      '{"name":' .. cjson.encode(name) .. ',"version":' .. version .. ',"policy":' .. json .. '}')
    table.insert(out, old and 'configured' or 'created')
    table.insert(out, tostring(version))
  end
end
return out
"#;

/// Deletes one policy, bumps its version and publishes the delete.
///
/// `KEYS`: policies hash, versions hash. `ARGV`: channel, name, expected version (or empty).
/// Returns `{'deleted', version}`, `{'absent', current}` or `{'conflict', current}`.
const DELETE: &str = r#"
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if ARGV[3] ~= '' and current ~= tonumber(ARGV[3]) then
  return {'conflict', tostring(current)}
end
if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then
  return {'absent', tostring(current)}
end
local version = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PUBLISH', ARGV[1],
  '{"name":' .. cjson.encode(ARGV[2]) .. ',"version":' .. version .. ',"deleted":true}')
return {'deleted', tostring(version)}
"#;

pub(super) static APPLY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPLY));
pub(super) static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE));
