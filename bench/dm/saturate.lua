-- wrk script: POST turns round-robin over pre-created calls sat-<thread>-<n>, so a
-- call never has two turns in flight. Argument: calls per thread.
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  calls = tonumber(args[1])
  sent = 0
end

function request()
  local call = sent % calls
  local turn = math.floor(sent / calls)
  sent = sent + 1
  local path = "/v1/calls/sat-" .. tid .. "-" .. call .. "/turns"
  local body = '{"turn_id":"t' .. turn .. '","text":"Меня зовут Мария"}'
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("turns/s %.0f, non-2xx %d, errors %d\n",
    summary.requests / (summary.duration / 1e6), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
