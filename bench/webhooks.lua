-- wrk script for bench/webhooks.py. Arguments after `--`: mode, then for mode "webhooks" the
-- file of pre-signed deliveries (svix-id, timestamp, signature, body: tab-separated, one a line),
-- and the number of wrk threads. The acknowledged event ids go to the file $BENCH_ACKED.
-- Thread i of n sends lines i, i+n, i+2n, ... once each, so no event is sent twice.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  sent, overflow, duplicates, other = 0, 0, 0, 0
  acked = {}
  requests = {}
  healthz = wrk.format("GET", "/healthz")
  if mode ~= "webhooks" then
    return
  end
  local nthreads = tonumber(args[3])
  local line_no = 0
  for line in io.lines(args[2]) do
    if line_no % nthreads == id then
      local svix_id, timestamp, signature, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/webhooks/seam/", {
        ["svix-id"] = svix_id,
        ["svix-timestamp"] = timestamp,
        ["svix-signature"] = signature,
        ["Content-Type"] = "application/json",
      }, body)
    end
    line_no = line_no + 1
  end
end

function request()
  if mode ~= "webhooks" then
    return healthz
  end
  sent = sent + 1
  local r = requests[sent]
  if r == nil then
    -- Out of pre-signed events: the run was longer than planned; counted, never a resend.
    overflow = overflow + 1
    return healthz
  end
  return r
end

function response(status, headers, body)
  if mode ~= "webhooks" then
    return
  end
  if status == 200 then
    local event_id, recorded = body:match('"event_id": "([^"]*)", "recorded": (%a+)')
    if recorded == "true" then
      acked[#acked + 1] = event_id
    elseif recorded == "false" then
      duplicates = duplicates + 1
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local totals = { sent = 0, overflow = 0, duplicates = 0, other = 0 }
  local out = nil
  -- done() runs in wrk's main Lua state: what init() set lives in the threads' states.
  if threads[1]:get("mode") == "webhooks" then
    out = io.open(os.getenv("BENCH_ACKED"), "w")
  end
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
    if out then
      for _, event_id in ipairs(thread:get("acked")) do
        out:write(event_id, "\n")
      end
    end
  end
  if out then
    out:close()
  end
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p99_us": %d, "sent": %d, "overflow": %d, "duplicates": %d, '
      .. '"rejected": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99),
    totals.sent, totals.overflow, totals.duplicates, totals.other
  ))
end
