-- http-check.lua - the same script for wrk and wharf-load (bench/peers/compare-lua.sh): a
-- request() that returns the bytes of a GET made once in init(), and a response() that
-- checks the status (wharf-load counts a false as script_rejected; wrk ignores the value).
-- Both generators call into Lua twice per request and hand response() the headers and
-- the body.
local req

function init(args)
  req = wrk.format("GET", "/index.html")
end

function request()
  return req
end

function response(status, headers, body)
  if status ~= 200 then
    return false
  end
end
