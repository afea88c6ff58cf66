-- bench/lua/churn.lua: an allocation-heavy Lua program for the suite
-- (bench/suite.py): tables of records built and dropped, strings made by
-- concatenation and formatting, closures; the collector frees it all.
-- usage: lua5.4 churn.lua [SCALE]; prints a checksum that must not depend
-- on the allocator.
local scale = tonumber(arg[1]) or 1
local sum = 0
for round = 1, 12 * scale do
  local recs = {}
  for i = 1, 40000 do
    local name = "rec-" .. i .. "-" .. round
    recs[i] = {id = i, name = name, tags = {i % 7, i % 11, i % 13},
               f = function(x) return x + i end}
  end
  local index = {}
  for i = 1, #recs, 3 do
    local r = recs[i]
    index[r.name] = r
    recs[i] = nil
  end
  local parts = {}
  for name, r in pairs(index) do
    parts[#parts + 1] = string.format("%s:%d", name, r.f(r.tags[2]))
    if #parts > 500 then
      sum = sum + #table.concat(parts, ",")
      parts = {}
    end
  end
  sum = sum + #table.concat(parts, ",")
end
print(sum)
