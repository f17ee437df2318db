-- wrk script for the broker's load benchmark (scripts/bench-broker runs it against
-- `cargo run --release -p agentiam-broker --example load_target`). Two modes, chosen by the
-- first script argument:
--
--   wrk ... -s benches/broker_load.lua http://HOST:PORT/oauth2/token -- issue BODIES_FILE THREADS
--     POSTs one token request body per request, each line of BODIES_FILE at most once: thread k
--     (0-based, THREADS in all, the same number as wrk's -t) sends lines k+1, k+1+THREADS, ...
--     so threads never share a body. Every body carries a single-use client assertion; when a
--     thread runs out of lines it sends its last body again (a replay the broker refuses with
--     401), and counts it.
--
--   wrk ... -s benches/broker_load.lua http://HOST:PORT/oauth2/introspect -- introspect BODY_FILE ADMIN_SECRET
--     POSTs the same body (`token=<jwt>`) every time, with the administrator's bearer token.
--
-- Responses other than 200 are counted by status; done() prints them, the first such body,
-- and one machine-readable line starting with "bench:".

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local form = "application/x-www-form-urlencoded"
local mode, file, step, last, fixed

non200 = 0
replayed = 0
statuses = {}
first_error = nil

local function take()
  local line = file:read("*l")
  for _ = 2, step do
    file:read("*l")
  end
  return line
end

function init(args)
  mode = args[1]
  if mode == "issue" then
    file = assert(io.open(assert(args[2], "issue: the bodies file is missing"), "r"))
    step = tonumber(args[3])
    assert(step and step >= 1, "issue: the thread count (wrk's -t) is missing")
    assert(id < step, "issue: more wrk threads than the thread count given to the script")
    for _ = 1, id do
      file:read("*l")
    end
  elseif mode == "introspect" then
    local f = assert(io.open(assert(args[2], "introspect: the body file is missing"), "r"))
    local body = f:read("*a")
    f:close()
    local secret = assert(args[3], "introspect: the admin secret is missing")
    fixed = wrk.format("POST", nil, {
      ["Content-Type"] = form,
      ["Authorization"] = "Bearer " .. secret,
    }, body)
  else
    error("the first script argument must be issue or introspect, not " .. tostring(mode))
  end
end

function request()
  if fixed then
    return fixed
  end
  local body = take()
  if body and body ~= "" then
    last = body
  else
    replayed = replayed + 1
    body = last
  end
  return wrk.format("POST", nil, { ["Content-Type"] = form }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    statuses[status] = (statuses[status] or 0) + 1
    if not first_error then
      first_error = string.sub(tostring(body), 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total, replays, by_status, sample = 0, 0, {}, nil
  for _, thread in ipairs(threads) do
    total = total + thread:get("non200")
    replays = replays + thread:get("replayed")
    for status, n in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + n
    end
    sample = sample or thread:get("first_error")
  end
  local parts = {}
  for status, n in pairs(by_status) do
    table.insert(parts, string.format("%s=%d", status, n))
  end
  table.sort(parts)
  io.write(string.format("Non-200 responses: %d%s\n", total,
    #parts > 0 and (" (" .. table.concat(parts, " ") .. ")") or ""))
  if replays > 0 then
    io.write(string.format("Bodies replayed (bodies file exhausted): %d\n", replays))
  end
  if sample then
    io.write("First non-200 body: " .. sample .. "\n")
  end
  local e = summary.errors
  io.write(string.format(
    "bench: requests=%d duration_us=%d non200=%d replayed=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, total, replays,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
