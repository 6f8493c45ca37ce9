-- echo64.lua: lets wrk (an HTTP load generator) drive a plain TCP echo server, for the
-- comparison in docs/wharf-load.md (run by bench/peers/compare.sh).
--
-- Each connection sends a fixed 64-byte message that is itself a valid HTTP response, so
-- its echo parses as one and wrk counts one exchange. Before the run wrk checks thread 0's
-- request with an HTTP *request* parser, so thread 0's first call hands it an ordinary GET;
-- every request actually sent is the 64-byte message. The request stays static (no global
-- request() function), so wrk runs its fast path with no Lua per message.
local msg = "HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n" .. string.rep("x", 25)
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

local calls = 0
setmetatable(wrk, {
   __newindex = function(t, k, v)
      if k ~= "request" then
         rawset(t, k, v)
         return
      end
      rawset(t, k, function()
         calls = calls + 1
         if calls == 1 and wrk.thread:get("id") == 0 then
            return v() -- the verification call: a real HTTP request
         end
         return msg
      end)
   end
})
rawset(wrk, "request", nil)
