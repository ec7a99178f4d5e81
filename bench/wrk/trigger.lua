-- wrk script for the trigger benchmark: each connection posts a trigger with a conf,
-- then waits, so that N connections offer about 200 requests per second in all
-- (wrk -c N, with SETLIST_WRK_DELAY_MS a little under N * 5 ms).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SETLIST_API_TOKEN")
wrk.body = '{"conf": {"source": "wrk"}}'

local pause = tonumber(os.getenv("SETLIST_WRK_DELAY_MS") or "50")

function delay()
  return pause
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
  io.write(string.format("p50_us: %d\np95_us: %d\np99_us: %d\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
