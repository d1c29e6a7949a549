-- wrk script of the load benchmark (benches/load.rs runs it; see that file's doc comment).
--
-- Every request is a POST of the batch fixture given as the first argument (a compact JSON array
-- of events) with every "eventId" value replaced by a UUID-shaped id that is unique across the
-- whole benchmark run:
--
--     NNNNNNNN-IIII-TTTT-8EEE-CCCCCCCCCCCC
--     run nonce, wrk invocation, wrk thread, event index in the batch, request counter (hex)
--
-- The ids all have the same length, so every request has the same Content-Length. The request is
-- built once per thread as constant pieces with the ten counter slots between them; per request
-- only the counter is formatted and the pieces concatenated (cheap: the generator shares the
-- machine's cores with the servers it measures).
--
-- Arguments (after `--` on wrk's command line):
--   1 fixture path   2 request path   3 token for the Authorization header ("-" for none)
--   4 run nonce (0 to 2^32-1)   5 invocation number (0 to 65535)
--
-- `done` prints one line, LOAD_RESULT key=value ..., that benches/load.rs parses. wrk counts a
-- status above 399 in errors.status: the receiver answers nothing but 200, 4xx and 5xx, so
-- requests - errors.status is the number of 200 responses.

local next_thread = 0

function setup(thread)
   thread:set("thread_index", next_thread)
   next_thread = next_thread + 1
end

local pieces = {}
local slots = {}
local counter = 0

function init(args)
   local fixture, path, token = args[1], args[2], args[3]
   local nonce, invocation = tonumber(args[4]), tonumber(args[5])
   assert(fixture and path and token and nonce and invocation, "usage: wrk ... -- FIXTURE PATH TOKEN NONCE INVOCATION")
   local file = assert(io.open(fixture, "rb"))
   local template = file:read("*a")
   file:close()
   template = template:gsub("%s+$", "")

   -- Split the template around every eventId value: constant text, counter slot, ...
   local body = {}
   local marker = '"eventId":"'
   local position, index = 1, 0
   while true do
      local start, stop = template:find(marker, position, true)
      if not start then break end
      local close = assert(template:find('"', stop + 1, true), "unterminated eventId")
      local prefix = string.format("%08x-%04x-%04x-8%03x-", nonce, invocation, thread_index, index)
      body[#body + 1] = template:sub(position, stop) .. prefix
      body[#body + 1] = false -- the counter goes here
      position = close
      index = index + 1
   end
   assert(index > 0, "no eventId in the fixture")
   body[#body + 1] = template:sub(position)

   -- Body length with a 12-digit counter in every slot.
   local length = 0
   for _, piece in ipairs(body) do
      length = length + (piece and #piece or 12)
   end
   local host = wrk.host or "127.0.0.1"
   if wrk.port then host = host .. ":" .. wrk.port end
   local head = "POST " .. path .. " HTTP/1.1\r\nHost: " .. host .. "\r\n"
   if token ~= "-" then head = head .. "Authorization: " .. token .. "\r\n" end
   head = head .. "Content-Type: application/json\r\nContent-Length: " .. length .. "\r\n\r\n"

   pieces[1] = head
   for _, piece in ipairs(body) do
      pieces[#pieces + 1] = piece or ""
      if not piece then slots[#slots + 1] = #pieces end
   end
end

function request()
   local id = string.format("%012x", counter)
   counter = counter + 1
   for i = 1, #slots do
      pieces[slots[i]] = id
   end
   return table.concat(pieces)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "LOAD_RESULT requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50.0), latency:percentile(99.0), latency.max))
end
