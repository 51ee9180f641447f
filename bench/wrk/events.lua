-- wrk script: POST events batches with fresh ids and a fresh Idempotency-Key per request.
--
-- Configured through environment variables (bench/compare.py sets them):
--   BENCH_BODIES  body templates (files), separated by ';'; each "__CEID__" in a template is
--                 replaced by a new UUID v4 for every request (bench/bodies.py writes them)
--   BENCH_TOKEN   Bearer token (from POST /auth/oauth2/token before the run)
--   BENCH_PATH    request path, default /v1/events
--   BENCH_NONCE   a number that makes this run's ids differ from any other run's
--   BENCH_OUT     file that receives the summary as one JSON object (also printed)
--
-- Ids are UUID v4 in canonical form (version nibble 4, variant 8):
--   NNNNNNNN-TTTT-4III-8KKK-CCCCCCCCCCCC
--   nonce    thread event index, kind (0 event, 1 Idempotency-Key), request counter
-- so every id of a run is distinct without any randomness in the hot path.

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

local function split(s, marker)
   local parts, pos = {}, 1
   while true do
      local a, b = string.find(s, marker, pos, true)
      if not a then
         parts[#parts + 1] = string.sub(s, pos)
         return parts
      end
      parts[#parts + 1] = string.sub(s, pos, a - 1)
      pos = b + 1
   end
end

local templates = {}
local headers = {}
local nonce = 0
local counter = 0
local buf = {}
statuses = {}

function init(args)
   nonce = tonumber(os.getenv("BENCH_NONCE") or "0") % 4294967296
   for path in string.gmatch(os.getenv("BENCH_BODIES") or "", "[^;]+") do
      local f = assert(io.open(path, "rb"))
      templates[#templates + 1] = split(f:read("*a"), "__CEID__")
      f:close()
   end
   assert(#templates > 0, "BENCH_BODIES names no body file")
   wrk.method = "POST"
   wrk.path = os.getenv("BENCH_PATH") or "/v1/events"
   headers["Content-Type"] = "application/json"
   headers["Charset"] = "utf-8"
   headers["Rokt-Version"] = "2020-05-21"
   headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "none")
end

local function id(kind, index)
   return string.format("%08x-%04x-4%03x-8%03x-%012x", nonce, tid, index, kind, counter)
end

function request()
   counter = counter + 1
   local parts = templates[(counter % #templates) + 1]
   local n = #parts
   buf[1] = parts[1]
   for i = 2, n do
      buf[2 * i - 2] = id(0, i - 2)
      buf[2 * i - 1] = parts[i]
   end
   for i = 2 * n, #buf do
      buf[i] = nil
   end
   headers["Idempotency-Key"] = id(1, 0)
   return wrk.format(nil, nil, headers, table.concat(buf))
end

function response(status, hdrs, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts = {}
   for _, t in ipairs(threads) do
      local st = t:get("statuses")
      if st then
         for code, n in pairs(st) do
            counts[code] = (counts[code] or 0) + n
         end
      end
   end
   local parts = {}
   for code, n in pairs(counts) do
      parts[#parts + 1] = string.format('"%d":%d', code, n)
   end
   local e = summary.errors
   local out = string.format(
      '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"statuses":{%s}}',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), table.concat(parts, ","))
   io.write("BENCH_JSON " .. out .. "\n")
   local path = os.getenv("BENCH_OUT")
   if path and path ~= "" then
      local f = assert(io.open(path, "w"))
      f:write(out)
      f:close()
   end
end
