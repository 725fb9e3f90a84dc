-- wrk script: POST realistic hotline contacts with bearer tokens, each with a different handle.
-- The harness fills in TOKENS (one caseworker's, or every caseworker's of the office: each request is
-- recorded by the next one in turn), PATH and DATES (recent days, none in the future) before running it.
local tokens = { {{TOKENS}} }
local path = "{{PATH}}"
local dates = { {{DATES}} }
local channels = { "phone", "telegram", "telegram", "signal", "whatsapp", "email", "referral", "in_person" }
local regions = { "chechnya", "chechnya", "chechnya", "dagestan", "ingushetia", "moscow", "st_petersburg", "russia_other", "abroad", "unknown" }
local risks = { "low", "medium", "medium", "high", "high", "immediate" }
local needs = { '["evacuation"]', '["evacuation","shelter"]', '["legal","documents"]', '["medical","psychological"]', '["shelter","financial"]', "[]" }
local words = { "called", "again", "from", "a", "borrowed", "phone", "asked", "about", "documents", "and", "safe",
  "place", "to", "stay", "family", "pressure", "continues", "relatives", "visited", "twice", "needs", "medical",
  "check", "after", "detention", "prefers", "contact", "after", "dark", "brother", "may", "be", "watching" }

local counter = 0
thread_id = 0  -- set per thread by setup() through thread:set
local threads = {}  -- only used in the main state

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end

local function pick(list)
  return list[math.random(#list)]
end

local function notes()
  local n = math.random(20, 80)
  local out = {}
  for i = 1, n do out[i] = pick(words) end
  return table.concat(out, " ")
end

request = function()
  counter = counter + 1
  local channel = pick(channels)
  local handle
  if channel == "phone" or channel == "whatsapp" or channel == "signal" then
    handle = string.format("+7 9%02d %03d-%02d-%02d", math.random(0, 99), math.random(0, 999), thread_id, counter % 100)
      .. string.format("%d", counter)
  else
    handle = string.format("@bench_%d_%d_%d", thread_id, counter, math.random(0, 999999))
  end
  local body = string.format(
    '{"received_on":"%s","channel":"%s","region":"%s","language":"ru","risk":"%s","needs":%s,' ..
    '"alias":"Caller %d-%d","handle":"%s","notes":"%s"}',
    pick(dates), channel, pick(regions), pick(risks), pick(needs), thread_id, counter, handle, notes())
  return wrk.format("POST", path, { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[counter % #tokens + 1] }, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeout_errors":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
