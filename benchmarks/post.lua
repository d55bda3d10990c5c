-- POSTs the body of the file named by WRK_BODY_FILE to the URL wrk is given, as JSON, and at
-- the end prints one line "WRK_JSON {...}" with the counts and latency percentiles (µs), so
-- the harness reads numbers rather than wrk's human-formatted text.
local body_file = assert(os.getenv("WRK_BODY_FILE"), "set WRK_BODY_FILE to the request body file")
local handle = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = handle:read("*a")
handle:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, errors.status,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
