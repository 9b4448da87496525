-- gmud.lua: a Wireshark / tshark dissector for gmud's wire protocol.
--
-- docs/PROTOCOL.md is the specification this follows: the framings of
-- section 2 (raw, line, fixed:N, length, gmud), the framing errors of
-- section 3, the JSON rules of section 4, the error packets of section 5,
-- the session modes of section 6 (the binary header of mode "on", the
-- welcome and the replies of mode "lecture") and TLS (section 8).
--
-- Nothing on the wire names the framing, the payload type or the session
-- mode, so they are preferences (Edit > Preferences > Protocols > GMUD, or
-- tshark -o gmud.NAME:VALUE); see contrib/wireshark/README.md.
--
-- Tested with Wireshark 4.0 (Lua 5.2).

local gmud = Proto("gmud", "gmud Message Framing")

---------------------------------------------------------------------------
-- Preferences
---------------------------------------------------------------------------

local FR_RAW, FR_LINE, FR_FIXED, FR_LENGTH, FR_GMUD = 0, 1, 2, 3, 4
local FRAMING_NAME = { [FR_RAW] = "RAW", [FR_LINE] = "LINE", [FR_FIXED] = "FIXED",
                       [FR_LENGTH] = "LEN", [FR_GMUD] = "GMUD" }
local PL_JSON, PL_TEXT = 0, 1
local SM_AUTO, SM_OFF, SM_LECTURE, SM_ON = 0, 1, 2, 3

gmud.prefs.port = Pref.range("TCP ports", "8222",
    "TCP ports gmud servers listen on (gmud-server --port; default 8222). A stream "
    .. "on these ports that begins with a TLS handshake is left to the TLS dissector "
    .. "(see 'Detect TLS'), and what it decrypts comes back here.", 65535)
gmud.prefs.tls_port = Pref.range("TLS-only TCP ports", "",
    "TCP ports where gmud always runs inside TLS (gmud-server --tls-port): handed "
    .. "to the TLS dissector at once, the decrypted bytes decoded as gmud.", 65535)
gmud.prefs.framing = Pref.enum("Framing", FR_GMUD,
    "The framing both ends were started with (--framing)", {
        { "raw", "raw: every TCP segment is one message", FR_RAW },
        { "line", "line: <DATA><DELIM>", FR_LINE },
        { "fixed", "fixed:N: <DATA><ZERO padding up to N>", FR_FIXED },
        { "length", "length: <LENGTH.2 LE><DATA>", FR_LENGTH },
        { "gmud", "gmud: <LABEL.4><LENGTH.2 LE><DATA>", FR_GMUD },
    }, false)
gmud.prefs.label = Pref.string("Label (gmud framing)", "GMUD",
    "The 4-byte packet label (--label)")
gmud.prefs.delim = Pref.string("Delimiter (line framing)", "\\n",
    "1 to 8 bytes, C escapes allowed, as gmud's --delim (\\n, \\r\\n, \\x00, ...)")
gmud.prefs.fixed_size = Pref.uint("Packet size (fixed framing)", 100,
    "N of fixed:N, every packet exactly N bytes (default 100)")
gmud.prefs.max_message = Pref.uint("Maximum message", 65535,
    "The receivers' largest payload (--max-message); a larger frame is too_long")
gmud.prefs.payload = Pref.enum("Payload type", PL_JSON,
    "The payload type (--payload)", {
        { "json", "json: every message one JSON object", PL_JSON },
        { "text", "text: any bytes", PL_TEXT },
    }, false)
gmud.prefs.session = Pref.enum("Session mode", SM_AUTO,
    "The session mode (--session). auto is the programs' default: on with gmud "
    .. "framing and json payloads, off otherwise", {
        { "auto", "auto: on for gmud framing with json, else off", SM_AUTO },
        { "off", "off: application messages only", SM_OFF },
        { "lecture", "lecture: welcome, then JSON replies with session_id and sequence_id", SM_LECTURE },
        { "on", "on: welcome, then a 16-byte session header on every packet", SM_ON },
    }, false)
gmud.prefs.detect_tls = Pref.bool("Detect TLS", true,
    "A stream on the gmud ports whose first bytes are a TLS handshake record is "
    .. "not gmud in the clear: leave it to the TLS dissector (set tls.keylog_file "
    .. "to decrypt it)")

---------------------------------------------------------------------------
-- Fields and expert infos
---------------------------------------------------------------------------

local f = {
    direction   = ProtoField.string("gmud.direction", "Direction"),
    frame       = ProtoField.none("gmud.frame", "Frame"),
    label       = ProtoField.string("gmud.label", "Label"),
    length      = ProtoField.uint16("gmud.length", "Length", base.DEC),
    delimiter   = ProtoField.bytes("gmud.delimiter", "Delimiter"),
    padding     = ProtoField.bytes("gmud.padding", "Zero padding"),
    payload     = ProtoField.bytes("gmud.payload", "Payload"),
    payload_len = ProtoField.uint32("gmud.payload_len", "Payload length", base.DEC),
    session_id  = ProtoField.uint64("gmud.session.id", "Session id", base.DEC),
    sequence    = ProtoField.uint64("gmud.session.sequence", "Sequence", base.DEC),
    data        = ProtoField.bytes("gmud.data", "Data"),
    text        = ProtoField.string("gmud.text", "Text"),
    welcome     = ProtoField.uint64("gmud.welcome.session_id", "Welcome: session id", base.DEC),
    lect_sid    = ProtoField.uint64("gmud.lecture.session_id", "session_id", base.DEC),
    lect_seq    = ProtoField.uint64("gmud.lecture.sequence_id", "sequence_id", base.DEC),
    lect_data   = ProtoField.string("gmud.lecture.data", "data"),
    err_code    = ProtoField.string("gmud.error.code", "Error code"),
    err_num     = ProtoField.int32("gmud.error.code_num", "Error code number", base.DEC),
    err_msg     = ProtoField.string("gmud.error.message", "Error sentence"),
    refused     = ProtoField.string("gmud.refused", "Refused as"),
    unframed    = ProtoField.bytes("gmud.unframed", "Unframed bytes"),
}
gmud.fields = { f.direction, f.frame, f.label, f.length, f.delimiter, f.padding,
                f.payload, f.payload_len, f.session_id, f.sequence, f.data, f.text,
                f.welcome, f.lect_sid, f.lect_seq, f.lect_data, f.err_code,
                f.err_num, f.err_msg, f.refused, f.unframed }

local ei = {
    bad_label = ProtoExpert.new("gmud.expert.bad_label", "Wrong packet label (bad_label)",
                                expert.group.MALFORMED, expert.severity.ERROR),
    too_long = ProtoExpert.new("gmud.expert.too_long", "Frame over the maximum message (too_long)",
                               expert.group.MALFORMED, expert.severity.ERROR),
    out_of_sync = ProtoExpert.new("gmud.expert.out_of_sync",
                                  "Bytes after a framing error, refused (out_of_sync)",
                                  expert.group.MALFORMED, expert.severity.WARN),
    incomplete = ProtoExpert.new("gmud.expert.incomplete",
                                 "Frame continues beyond these bytes (reassembly unavailable)",
                                 expert.group.REASSEMBLE, expert.severity.WARN),
    bad_payload = ProtoExpert.new("gmud.expert.bad_payload",
                                  "Payload refused by a json receiver",
                                  expert.group.MALFORMED, expert.severity.ERROR),
    error_packet = ProtoExpert.new("gmud.expert.error_packet", "gmud error packet",
                                   expert.group.RESPONSE_CODE, expert.severity.WARN),
    session = ProtoExpert.new("gmud.expert.session", "Session check fails",
                              expert.group.SECURITY, expert.severity.WARN),
    no_header = ProtoExpert.new("gmud.expert.no_header",
                                "Looks like a message without a session header (a peer in mode off?)",
                                expert.group.PROTOCOL, expert.severity.NOTE),
    not_welcomed = ProtoExpert.new("gmud.expert.not_welcomed",
                                   "The server's first packet is not a welcome (not_welcomed)",
                                   expert.group.PROTOCOL, expert.severity.WARN),
    welcome = ProtoExpert.new("gmud.expert.welcome", "Session welcome",
                              expert.group.SEQUENCE, expert.severity.CHAT),
}
gmud.experts = { ei.bad_label, ei.too_long, ei.out_of_sync, ei.incomplete, ei.bad_payload,
                 ei.error_packet, ei.session, ei.no_header, ei.not_welcomed, ei.welcome }

-- GMUD_ERRORS of include/gmud/error.h: the numbers behind error names.
local ERROR_CODES = {
    invalid = -1, no_memory = -2, too_long = -3, bad_label = -4, truncated = -5,
    out_of_sync = -6, unencodable = -7, bad_json = -8, bad_utf8 = -9, not_object = -10,
    too_deep = -11, too_many_keys = -12, string_too_long = -13, duplicate_key = -14,
    io = -15, timeout = -16, closed = -17, slow_consumer = -18, server_full = -19,
    bad_session = -20, replayed = -21, skipped = -22, seq_exhausted = -23,
    not_welcomed = -24, missing_field = -25, bad_field = -26, rate_limited = -27,
    addr_limited = -28, rate_dropped = -29, tls = -30, tls_required = -31, proxy = -32,
}

local json_dissector = nil    -- Wireshark's own "json", looked up on first use
local f_tcp_stream = Field.new("tcp.stream")

---------------------------------------------------------------------------
-- Configuration derived from the preferences
---------------------------------------------------------------------------

-- C escapes as gmud's --delim takes them: \n \r \t \0 \\ \xHH \NNN ...
local SIMPLE_ESCAPES = { n = "\n", r = "\r", t = "\t", a = "\a", b = "\b", f = "\f",
                         v = "\v", e = "\27", ["\\"] = "\\", ["'"] = "'", ['"'] = '"',
                         ["?"] = "?" }
local function c_unescape(s)
    local out, i = {}, 1
    while i <= #s do
        local c = s:sub(i, i)
        if c ~= "\\" or i == #s then
            out[#out + 1] = c
            i = i + 1
        else
            local n = s:sub(i + 1, i + 1)
            if SIMPLE_ESCAPES[n] then
                out[#out + 1] = SIMPLE_ESCAPES[n]
                i = i + 2
            elseif n == "x" then
                local hex = s:match("^%x%x?", i + 2)
                if hex then
                    out[#out + 1] = string.char(tonumber(hex, 16))
                    i = i + 2 + #hex
                else
                    out[#out + 1] = "x"
                    i = i + 2
                end
            else
                local oct = s:match("^[0-7][0-7]?[0-7]?", i + 1)
                if oct then
                    out[#out + 1] = string.char(tonumber(oct, 8) % 256)
                    i = i + 1 + #oct
                else
                    out[#out + 1] = n
                    i = i + 2
                end
            end
        end
    end
    return table.concat(out)
end

local function parse_ports(s)
    local list = {}
    for part in tostring(s or ""):gmatch("[^,%s]+") do
        local a, b = part:match("^(%d+)%-(%d+)$")
        if a then
            list[#list + 1] = { tonumber(a), tonumber(b) }
        elseif part:match("^%d+$") then
            list[#list + 1] = { tonumber(part), tonumber(part) }
        end
    end
    return list
end

local function in_ports(list, port)
    for _, r in ipairs(list) do
        if port >= r[1] and port <= r[2] then return true end
    end
    return false
end

local cfg = nil

local function make_cfg()
    local p = gmud.prefs
    local c = {
        framing = p.framing, payload = p.payload,
        max = p.max_message > 0 and p.max_message or 65535,
        fixed = p.fixed_size > 0 and p.fixed_size or 100,
        label = p.label, delim = c_unescape(p.delim),
        ports = parse_ports(p.port), tls_ports = parse_ports(p.tls_port),
        detect_tls = p.detect_tls,
    }
    if #c.label ~= 4 then c.label = "GMUD" end        -- the label is exactly 4 bytes
    if #c.delim < 1 or #c.delim > 8 then c.delim = "\n" end
    local mode = p.session
    if mode == SM_AUTO then
        mode = (c.framing == FR_GMUD and c.payload == PL_JSON) and SM_ON or SM_OFF
    end
    -- Mode on needs a framing that carries any bytes (PROTOCOL.md 6): the
    -- programs refuse it with raw and line, so those never carry a header.
    if mode == SM_ON and (c.framing == FR_RAW or c.framing == FR_LINE) then mode = SM_OFF end
    if mode == SM_LECTURE and c.framing == FR_RAW then mode = SM_OFF end
    c.session = mode
    return c
end

---------------------------------------------------------------------------
-- Port registration
---------------------------------------------------------------------------

local registered = { port = "", tls_port = "" }

local function register_ports()
    local tcp_table = DissectorTable.get("tcp.port")
    local tls_table = DissectorTable.get("tls.port")
    local tls_handle = Dissector.get("tls")
    if registered.port ~= "" then
        tcp_table:remove(registered.port, gmud)
        tls_table:remove(registered.port, gmud)
    end
    if registered.tls_port ~= "" then
        tcp_table:remove(registered.tls_port, tls_handle)
        tls_table:remove(registered.tls_port, gmud)
    end
    registered.port = tostring(gmud.prefs.port or "")
    registered.tls_port = tostring(gmud.prefs.tls_port or "")
    if registered.port ~= "" then
        tcp_table:add(registered.port, gmud)
        tls_table:add(registered.port, gmud)    -- what TLS decrypts on these ports
    end
    if registered.tls_port ~= "" then
        tcp_table:add(registered.tls_port, tls_handle)
        tls_table:add(registered.tls_port, gmud)
    end
end

function gmud.prefs_changed()
    cfg = make_cfg()
    register_ports()
end

---------------------------------------------------------------------------
-- UTF-8 and JSON, under the rules of PROTOCOL.md section 4
---------------------------------------------------------------------------

-- The offset (0-based) of the first byte that is not valid UTF-8 (no
-- overlong forms, no encoded surrogates, nothing above U+10FFFF), or nil.
local function utf8_bad_at(s)
    local i, n = 1, #s
    local byte = string.byte
    while i <= n do
        local b = byte(s, i)
        if b < 0x80 then
            i = i + 1
        else
            local need, lo, hi
            if b >= 0xC2 and b <= 0xDF then need, lo, hi = 1, 0x80, 0xBF
            elseif b == 0xE0 then need, lo, hi = 2, 0xA0, 0xBF
            elseif (b >= 0xE1 and b <= 0xEC) or b == 0xEE or b == 0xEF then need, lo, hi = 2, 0x80, 0xBF
            elseif b == 0xED then need, lo, hi = 2, 0x80, 0x9F
            elseif b == 0xF0 then need, lo, hi = 3, 0x90, 0xBF
            elseif b >= 0xF1 and b <= 0xF3 then need, lo, hi = 3, 0x80, 0xBF
            elseif b == 0xF4 then need, lo, hi = 3, 0x80, 0x8F
            else return i - 1 end
            local c = byte(s, i + 1)
            if c == nil or c < lo or c > hi then return i - 1 end
            for k = 2, need do
                c = byte(s, i + k)
                if c == nil or c < 0x80 or c > 0xBF then return i - 1 end
            end
            i = i + need + 1
        end
    end
    return nil
end

local JSON_MAX_DEPTH, JSON_MAX_KEYS, JSON_MAX_STRING = 32, 1024, 65535

-- The bounds of section 4 in one pass over the bytes, before any parsing:
-- nesting, keys (one ':' per key in any JSON that parses), string size as
-- sent, and no NUL byte outside a string.
local function json_bounds(s)
    local byte = string.byte
    local depth, keys, i, n = 0, 0, 1, #s
    while i <= n do
        local b = byte(s, i)
        if b == 0x22 then
            local start = i
            i = i + 1
            while i <= n and byte(s, i) ~= 0x22 do
                i = i + (byte(s, i) == 0x5C and 2 or 1)
            end
            local body = math.min(i, n + 1) - start - 1
            if body > JSON_MAX_STRING then
                return "string_too_long", start - 1,
                       string.format("a string of %d bytes, over the maximum of %d", body, JSON_MAX_STRING)
            end
        elseif b == 0x7B or b == 0x5B then
            depth = depth + 1
            if depth > JSON_MAX_DEPTH then
                return "too_deep", i - 1, string.format("nested deeper than %d levels", JSON_MAX_DEPTH)
            end
        elseif b == 0x7D or b == 0x5D then
            if depth > 0 then depth = depth - 1 end
        elseif b == 0x3A then
            keys = keys + 1
            if keys > JSON_MAX_KEYS then
                return "too_many_keys", i - 1, string.format("more than %d object keys", JSON_MAX_KEYS)
            end
        elseif b == 0 then
            return "bad_json", i - 1, "a NUL byte outside a string"
        end
        i = i + 1
    end
    return nil
end

local function utf8_char(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then
        return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
    end
    if cp < 0x10000 then
        return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
                           0x80 + cp % 0x40)
    end
    return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
                       0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local INT64_MAX, INT64_MIN_ABS = "9223372036854775807", "9223372036854775808"

-- A recursive-descent parser for one JSON text (RFC 8259). On success it
-- returns a value description: { kind = "object", members = { {key, value}, ...},
-- byname = {...} } for objects; kind "array", "string" (.str, decoded),
-- "integer" (.text), "number" (.text), "true", "false" or "null". On failure
-- it returns nil, the error name, the 0-based byte offset and a sentence.
local function json_parse(s)
    local bname, boff, bwhy = json_bounds(s)
    if bname then return nil, bname, boff, bwhy end
    local byte, sub = string.byte, string.sub
    local n = #s
    local pos = 1
    local function fail(name, at, why) error({ name = name, at = at - 1, why = why }, 0) end
    local function ws()
        while pos <= n do
            local b = byte(s, pos)
            if b == 0x20 or b == 0x09 or b == 0x0A or b == 0x0D then pos = pos + 1 else break end
        end
    end
    local value
    local function hex4(at)
        local h = sub(s, at, at + 3)
        if not h:match("^%x%x%x%x$") then fail("bad_json", at, "\\u not followed by four hex digits") end
        return tonumber(h, 16)
    end
    local function str()
        local start = pos
        pos = pos + 1                                   -- the opening quote
        local out = {}
        while true do
            if pos > n then fail("bad_json", start, "unterminated string") end
            local b = byte(s, pos)
            if b == 0x22 then pos = pos + 1; break end
            if b < 0x20 then fail("bad_json", pos, "control character in a string") end
            if b == 0x5C then
                local e = sub(s, pos + 1, pos + 1)
                local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                                  n = "\n", r = "\r", t = "\t" })[e]
                if simple then
                    out[#out + 1] = simple
                    pos = pos + 2
                elseif e == "u" then
                    local cp = hex4(pos + 2)
                    local at = pos
                    pos = pos + 6
                    if cp == 0 then fail("bad_json", at, "\\u0000 in a string") end
                    if cp >= 0xDC00 and cp <= 0xDFFF then
                        fail("bad_json", at, "unpaired low surrogate escape")
                    end
                    if cp >= 0xD800 and cp <= 0xDBFF then
                        if sub(s, pos, pos + 1) ~= "\\u" then
                            fail("bad_json", at, "unpaired high surrogate escape")
                        end
                        local lo = hex4(pos + 2)
                        if lo < 0xDC00 or lo > 0xDFFF then
                            fail("bad_json", at, "unpaired high surrogate escape")
                        end
                        pos = pos + 6
                        cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
                    end
                    out[#out + 1] = utf8_char(cp)
                else
                    fail("bad_json", pos, "invalid escape in a string")
                end
            else
                local run = pos
                while pos <= n do
                    local c = byte(s, pos)
                    if c == 0x22 or c == 0x5C or c < 0x20 then break end
                    pos = pos + 1
                end
                out[#out + 1] = sub(s, run, pos - 1)
            end
        end
        return { kind = "string", str = table.concat(out) }
    end
    local function num()
        -- The grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?
        local start = pos
        local int = s:match("^-?(0)", pos) or s:match("^-?([1-9]%d*)", pos)
        if not int then fail("bad_json", start, "invalid number") end
        local p = start + (byte(s, start) == 0x2D and 1 or 0) + #int
        if int == "0" and s:match("^%d", p) then fail("bad_json", start, "leading zero in a number") end
        local frac = s:match("^%.(%d*)", p)
        local isint = true
        if frac then
            if frac == "" then fail("bad_json", p, "digits expected after '.'") end
            p = p + 1 + #frac
            isint = false
        end
        local exp = s:match("^[eE][-+]?(%d*)", p)
        if exp then
            local full = s:match("^[eE][-+]?%d*", p)
            if exp == "" then fail("bad_json", p, "digits expected in the exponent") end
            p = p + #full
            isint = false
        end
        local text = sub(s, start, p - 1)
        pos = p
        if isint then
            local neg = byte(text, 1) == 0x2D
            local limit = neg and INT64_MIN_ABS or INT64_MAX
            if #int > #limit or (#int == #limit and int > limit) then
                fail("bad_json", start, "integer out of the 64-bit range")
            end
            return { kind = "integer", text = text, neg = neg, digits = int }
        end
        local v = tonumber(text)
        if v == nil or v == math.huge or v == -math.huge or v ~= v then
            fail("bad_json", start, "number out of range")
        end
        return { kind = "number", text = text }
    end
    value = function()
        ws()
        if pos > n then fail("bad_json", pos, "a value expected, the end found") end
        local b = byte(s, pos)
        if b == 0x7B then
            pos = pos + 1
            local obj = { kind = "object", members = {}, byname = {} }
            ws()
            if byte(s, pos) == 0x7D then pos = pos + 1; return obj end
            while true do
                ws()
                if byte(s, pos) ~= 0x22 then fail("bad_json", pos, "string or '}' expected") end
                local keyat = pos
                local k = str().str
                if obj.byname[k] ~= nil then fail("duplicate_key", keyat, "duplicate key \"" .. k .. "\"") end
                ws()
                if byte(s, pos) ~= 0x3A then fail("bad_json", pos, "':' expected") end
                pos = pos + 1
                local v = value()
                obj.members[#obj.members + 1] = { k, v }
                obj.byname[k] = v
                ws()
                local c = byte(s, pos)
                if c == 0x2C then pos = pos + 1
                elseif c == 0x7D then pos = pos + 1; return obj
                else fail("bad_json", pos, "',' or '}' expected") end
            end
        elseif b == 0x5B then
            pos = pos + 1
            local arr = { kind = "array", items = {} }
            ws()
            if byte(s, pos) == 0x5D then pos = pos + 1; return arr end
            while true do
                arr.items[#arr.items + 1] = value()
                ws()
                local c = byte(s, pos)
                if c == 0x2C then pos = pos + 1
                elseif c == 0x5D then pos = pos + 1; return arr
                else fail("bad_json", pos, "',' or ']' expected") end
            end
        elseif b == 0x22 then
            return str()
        elseif b == 0x2D or (b >= 0x30 and b <= 0x39) then
            return num()
        else
            for _, lit in ipairs({ "true", "false", "null" }) do
                if sub(s, pos, pos + #lit - 1) == lit then
                    pos = pos + #lit
                    return { kind = lit }
                end
            end
            fail("bad_json", pos, "invalid token")
        end
    end
    local ok, res = pcall(function()
        local v = value()
        ws()
        if pos <= n then fail("bad_json", pos, "end of text expected") end
        return v
    end)
    if ok then return res end
    if type(res) == "table" then return nil, res.name, res.at, res.why end
    return nil, "bad_json", 0, tostring(res)
end

-- A payload as a json receiver takes it: nil and the error, or the object.
local function json_message(s)
    local bad = utf8_bad_at(s)
    if bad then return nil, "bad_utf8", bad, "not valid UTF-8" end
    local v, name, at, why = json_parse(s)
    if not v then return nil, name, at, why end
    if v.kind ~= "object" then return nil, "not_object", 0, "the top-level value is not an object" end
    return v
end

-- An error packet (PROTOCOL.md 5): an object with exactly the two string
-- members "error" and "code". Returns code, sentence.
local function json_error_packet(obj)
    if obj == nil or obj.kind ~= "object" or #obj.members ~= 2 then return nil end
    local e, c = obj.byname["error"], obj.byname["code"]
    if e and c and e.kind == "string" and c.kind == "string" then return c.str, e.str end
    return nil
end

-- A text error packet: "error <name>: <sentence>", name 1 to 39 bytes.
local function text_error_packet(s)
    if #s <= 6 or s:sub(1, 6) ~= "error " then return nil end
    local colon = s:find(":", 7, true)
    if colon == nil or colon == 7 or colon - 7 >= 40 then return nil end
    local sentence = s:sub(colon + 1):gsub("^ ", "")
    return s:sub(7, colon - 1), sentence
end

local function is_welcome(obj)
    if obj == nil or obj.kind ~= "object" then return nil end
    local sid, seq = obj.byname["session_id"], obj.byname["sequence_id"]
    if not (sid and seq and sid.kind == "integer" and seq.kind == "integer") then return nil end
    if sid.neg or seq.text ~= "0" then return nil end
    if sid.digits == "0" or #sid.digits > 16 or (#sid.digits == 16 and sid.digits > "9007199254740991") then
        return nil
    end
    return sid.digits
end

local function dec_uint64(digits)
    local v = UInt64(0)
    for i = 1, #digits do
        v = v * 10 + (string.byte(digits, i) - 48)
    end
    return v
end

---------------------------------------------------------------------------
-- Per-connection state
---------------------------------------------------------------------------

-- Session checks need what came before (the welcome's id, the sequence
-- expected next). It is worked out once, on the first pass in frame
-- order, and kept per message so that later dissections (clicking a
-- packet, tshark -2) show the same verdicts.
local streams, verdicts = {}, {}

function gmud.init()
    streams, verdicts = {}, {}
    cfg = make_cfg()
end

local function stream_key(pinfo)
    local fi = f_tcp_stream()
    if fi then return "tcp" .. tostring(fi.value) end
    local a = tostring(pinfo.src) .. ":" .. pinfo.src_port
    local b = tostring(pinfo.dst) .. ":" .. pinfo.dst_port
    if a > b then a, b = b, a end
    return a .. "-" .. b
end

local function get_stream(key)
    local st = streams[key]
    if not st then
        local function dir() return { msgs = 0, broken = nil, next_seq = nil,
                                      data_sent = 0, lect_next = 1 } end
        st = { sid = nil, dirs = { [true] = dir(), [false] = dir() } }
        streams[key] = st
    end
    return st
end

-- Is this packet going to the server? The server's port is the one in the
-- port preferences; under Decode As, the port the table matched.
local function to_server(pinfo)
    local c = cfg
    local d = in_ports(c.ports, pinfo.dst_port) or in_ports(c.tls_ports, pinfo.dst_port)
    local s = in_ports(c.ports, pinfo.src_port) or in_ports(c.tls_ports, pinfo.src_port)
    if d ~= s then return d end
    if pinfo.match_uint and pinfo.match_uint ~= 0 and pinfo.src_port ~= pinfo.dst_port then
        return pinfo.dst_port == pinfo.match_uint
    end
    return pinfo.dst_port < pinfo.src_port
end

local function looks_like_tls(tvb)
    -- A TLS handshake record: 16 03 0x LL LL, then ClientHello (1) or ServerHello (2).
    if tvb:len() < 6 then return false end
    local b0, b1, b2 = tvb(0, 1):uint(), tvb(1, 1):uint(), tvb(2, 1):uint()
    local rlen, ht = tvb(3, 2):uint(), tvb(5, 1):uint()
    return b0 == 0x16 and b1 == 0x03 and b2 <= 0x04 and rlen > 0 and rlen <= 18432
           and (ht == 1 or ht == 2)
end

---------------------------------------------------------------------------
-- Display helpers
---------------------------------------------------------------------------

local function printable(s, max)
    max = max or 48
    local cut = #s > max
    if cut then s = s:sub(1, max) end
    s = s:gsub("[%z\1-\31\127-\255]", ".")
    return cut and (s .. "...") or s
end

local function hexbytes(s)
    return (s:gsub(".", function(c) return string.format("%02x ", c:byte()) end):gsub(" $", ""))
end

local function add_error_fields(tree, range, code, sentence)
    tree:add(f.err_code, range, code)
    if ERROR_CODES[code] then tree:add(f.err_num, range, ERROR_CODES[code]) end
    tree:add(f.err_msg, range, sentence)
end

---------------------------------------------------------------------------
-- One message
---------------------------------------------------------------------------

-- Dissects the payload of one frame: tvb(po, pl) is the payload as the
-- framing delivers it (for fixed:N the whole N bytes, padding included).
-- Returns a short summary for the Info column.
local function dissect_payload(tvb, po, pl, pinfo, tree, ctx)
    local c = cfg
    local mode = c.session
    local toS = ctx.to_server
    local st, ds = ctx.stream, ctx.dir
    local raw = pl > 0 and tvb:raw(po, pl) or ""
    local info = {}

    -- fixed:N: strip the zero padding, after the header in mode on.
    local function strip(from)
        local k = #raw
        while k > from and raw:byte(k) == 0 do k = k - 1 end
        return k
    end

    -- In mode on, the server's first packet carries no header (the welcome,
    -- or a refusal in its place): a JSON object at the very start.
    local whole_text = raw
    if c.framing == FR_FIXED then whole_text = raw:sub(1, strip(0)) end
    local whole_obj = nil
    if mode ~= SM_OFF then whole_obj = json_message(whole_text) end

    -- The verdict's key: the frame, the direction, where the message is in
    -- this tvb, and its sequence bytes (TLS may hand over several records
    -- of one frame, each in a tvb of its own starting at 0).
    local key = table.concat({ pinfo.number, toS and "c" or "s", po, pl,
                               #raw > 15 and hexbytes(raw:sub(9, 16)) or "" }, "/")
    local a = verdicts[key]
    if a == nil or not pinfo.visited then
        a = {}
        a.index = ds.msgs
        ds.msgs = ds.msgs + 1
        if mode == SM_ON then
            if not toS and a.index == 0 and whole_obj then
                a.bare = true
                local wsid = is_welcome(whole_obj)
                if wsid then
                    a.welcome = wsid
                    st.sid = dec_uint64(wsid)
                    ds.next_seq = UInt64(1)
                elseif json_error_packet(whole_obj) then
                    a.refusal = true
                else
                    a.not_welcomed = true
                end
            elseif #raw < 16 then
                a.refused = "missing_field"
                a.why = string.format("payload of %d bytes, shorter than the 16-byte session header", #raw)
            else
                local sid = tvb(po, 8):le_uint64()
                local seq = tvb(po + 8, 8):le_uint64()
                if st.sid == nil then st.sid = sid end          -- capture began after the welcome
                if ds.next_seq == nil then ds.next_seq = seq end
                if tostring(sid) ~= tostring(st.sid) then
                    a.refused = "bad_session"
                    a.why = "session id " .. tostring(sid) .. ", the connection's is " .. tostring(st.sid)
                elseif seq < ds.next_seq then
                    a.refused = "replayed"
                    a.why = "expected sequence " .. tostring(ds.next_seq) .. ", got " .. tostring(seq)
                elseif seq > ds.next_seq then
                    a.refused = "skipped"
                    a.why = "expected sequence " .. tostring(ds.next_seq) .. ", got " .. tostring(seq)
                else
                    ds.next_seq = ds.next_seq + 1
                end
                a.hint_bare = whole_obj ~= nil
            end
        elseif mode == SM_LECTURE then
            local sdir = st.dirs[false]
            if not toS then
                local wsid = a.index == 0 and is_welcome(whole_obj)
                if wsid then
                    a.welcome = wsid
                    st.sid = dec_uint64(wsid)
                elseif a.index == 0 and not json_error_packet(whole_obj) then
                    a.not_welcomed = true
                    sdir.data_sent = sdir.data_sent + 1
                elseif not json_error_packet(whole_obj) then
                    sdir.data_sent = sdir.data_sent + 1
                end
            else
                -- A reply: checked once it parses (a reply that does not is bad JSON).
                local v, name = json_message(whole_text)
                if v == nil and name == "not_object" then
                    a.refused = "not_object"
                    a.why = "the reply is JSON but not an object"
                elseif v then
                    local sid, seq = v.byname["session_id"], v.byname["sequence_id"]
                    if sid == nil or seq == nil then
                        a.refused = "missing_field"
                        a.why = (sid == nil and "session_id" or "sequence_id") .. " is absent"
                    elseif sid.kind ~= "integer" or sid.neg or seq.kind ~= "integer" or seq.neg then
                        a.refused = "bad_field"
                        a.why = ((sid.kind ~= "integer" or sid.neg) and "session_id" or "sequence_id")
                                .. " is not an integer >= 0"
                    else
                        local usid, useq = dec_uint64(sid.digits), dec_uint64(seq.digits)
                        if st.sid == nil then st.sid = usid end
                        local nxt = UInt64(ds.lect_next)
                        if tostring(usid) ~= tostring(st.sid) then
                            a.refused = "bad_session"
                            a.why = "session_id " .. tostring(usid) .. ", the connection's is " .. tostring(st.sid)
                        elseif useq < nxt then
                            a.refused = "replayed"
                            a.why = "expected sequence_id " .. tostring(nxt) .. ", got " .. tostring(useq)
                        elseif useq > nxt or useq > UInt64(sdir.data_sent) then
                            a.refused = "skipped"
                            a.why = "expected sequence_id " .. tostring(nxt) .. " (" .. sdir.data_sent
                                    .. " data packets sent), got " .. tostring(useq)
                        else
                            ds.lect_next = ds.lect_next + 1
                        end
                    end
                end
            end
        end
        verdicts[key] = a
    end

    -- The session header, then the application's data.
    local dofs, dlen = po, pl
    if mode == SM_ON and not a.bare and pl >= 16 then
        tree:add_le(f.session_id, tvb(po, 8))
        tree:add_le(f.sequence, tvb(po + 8, 8))
        info[#info + 1] = "sess=" .. tostring(tvb(po, 8):le_uint64())
                          .. " seq=" .. tostring(tvb(po + 8, 8):le_uint64())
        dofs, dlen = po + 16, pl - 16
    end
    if c.framing == FR_FIXED then
        local k = strip(dofs - po)
        local padlen = pl - k
        dlen = k - (dofs - po)
        if padlen > 0 then tree:add(f.padding, tvb(po + k, padlen)) end
    end
    if a.refused then
        local it = tree:add(f.refused, tvb(po, math.max(pl, 0)), a.refused)
        it:add_proto_expert_info(ei.session, a.refused .. ": " .. a.why)
        info[#info + 1] = "[REFUSED " .. a.refused .. "]"
        if a.hint_bare then it:add_proto_expert_info(ei.no_header) end
    end
    if mode == SM_ON and a.refused == "missing_field" then
        dlen = 0
        if pl > 0 then tree:add(f.data, tvb(po, pl)) end
    end

    local data = dlen > 0 and tvb:raw(dofs, dlen) or ""
    local drange = dlen > 0 and tvb(dofs, dlen) or tvb(po, 0)
    if dlen > 0 then
        tree:add(f.data, drange)
    end

    -- The data as JSON (what the payload type or the session mode needs),
    -- or as text.
    local obj, jname, jat, jwhy
    local want_json = c.payload == PL_JSON or a.bare or a.welcome or mode == SM_LECTURE
    if want_json then
        obj, jname, jat, jwhy = json_message(data)
    elseif data:byte(1) == 0x7B then
        obj = json_message(data)                      -- text that happens to be JSON
    end
    if utf8_bad_at(data) == nil then
        tree:add(f.text, drange, data)
    end
    if obj and dlen > 0 then
        if json_dissector == nil then json_dissector = Dissector.get("json") end
        json_dissector:call(drange:tvb(), pinfo, tree)
    elseif want_json and jname and not a.refused then
        -- (a packet the session check refused is dropped unparsed)
        local it = tree:add(f.refused, drange, jname)
        it:add_proto_expert_info(ei.bad_payload, string.format("%s at byte %d of the data: %s",
                                                               jname, jat, jwhy))
        info[#info + 1] = "[BAD " .. jname .. "]"
    end

    if a.welcome then
        local it = tree:add(f.welcome, drange, dec_uint64(a.welcome))
        it:add_proto_expert_info(ei.welcome, "welcome: session " .. a.welcome)
        info[#info + 1] = "welcome session=" .. a.welcome
    elseif a.not_welcomed then
        tree:add_proto_expert_info(ei.not_welcomed)
        info[#info + 1] = "[not a welcome]"
    end
    if mode == SM_LECTURE and obj then
        local sid, seq, dat = obj.byname["session_id"], obj.byname["sequence_id"], obj.byname["data"]
        if sid and sid.kind == "integer" and not sid.neg then
            tree:add(f.lect_sid, drange, dec_uint64(sid.digits))
        end
        if seq and seq.kind == "integer" and not seq.neg then
            tree:add(f.lect_seq, drange, dec_uint64(seq.digits))
            if toS then info[#info + 1] = "sequence_id=" .. seq.digits end
        end
        if dat and dat.kind == "string" then tree:add(f.lect_data, drange, dat.str) end
    end

    -- Error packets (PROTOCOL.md 5).
    local ecode, esent = json_error_packet(obj)
    if not ecode and c.payload == PL_TEXT then ecode, esent = text_error_packet(data) end
    if ecode then
        add_error_fields(tree, drange, ecode, esent)
        local num = ERROR_CODES[ecode]
        tree:add_proto_expert_info(ei.error_packet, "error packet " .. ecode
                                   .. (num and (" (" .. num .. ")") or "") .. ": " .. esent)
        info[#info + 1] = "[ERROR " .. ecode .. (num and (" " .. num) or "") .. "]"
    end

    if not a.welcome and data ~= "" then
        info[#info + 1] = printable(data)
    end
    return table.concat(info, " ")
end

---------------------------------------------------------------------------
-- Framing
---------------------------------------------------------------------------

-- Finds the next frame at offset. Returns one of
--   { need = n }  (n more bytes, or DESEGMENT_ONE_MORE_SEGMENT)
--   { total = n, hlen = h, plen = p, tlen = t }  header, payload, trailer sizes
--   { err = name, len = n, why = sentence }  a framing error over n bytes
local function next_frame(tvb, offset)
    local c = cfg
    local avail = tvb:len() - offset
    if c.framing == FR_GMUD then
        local label = c.label
        local have = math.min(avail, 4)
        local got = tvb:raw(offset, have)
        for i = 1, have do
            if got:byte(i) ~= label:byte(i) then
                return { err = "bad_label", len = have, why = string.format(
                    "bad packet label: expected %s (\"%s\"), got %s", hexbytes(label),
                    printable(label), hexbytes(got)) }
            end
        end
        if avail < 6 then return { need = DESEGMENT_ONE_MORE_SEGMENT } end
        local len = tvb(offset + 4, 2):le_uint()
        if len > c.max then
            return { err = "too_long", len = 6, why = string.format(
                "length %d, over the maximum message of %d", len, c.max) }
        end
        if avail < 6 + len then return { need = 6 + len - avail } end
        return { total = 6 + len, hlen = 6, plen = len, tlen = 0 }
    elseif c.framing == FR_LENGTH then
        if avail < 2 then return { need = DESEGMENT_ONE_MORE_SEGMENT } end
        local len = tvb(offset, 2):le_uint()
        if len > c.max then
            return { err = "too_long", len = 2, why = string.format(
                "length %d, over the maximum message of %d", len, c.max) }
        end
        if avail < 2 + len then return { need = 2 + len - avail } end
        return { total = 2 + len, hlen = 2, plen = len, tlen = 0 }
    elseif c.framing == FR_LINE then
        local d = c.delim
        -- Look in a window that doubles, so that many short lines in one
        -- segment do not each copy up to the maximum.
        local limit = math.min(avail, c.max + 2 * #d)
        local win, at = math.min(limit, 256), nil
        while true do
            at = tvb:raw(offset, win):find(d, 1, true)
            if at or win == limit then break end
            win = math.min(limit, win * 2)
        end
        if at then
            local plen = at - 1
            if plen > c.max then
                return { err = "too_long", len = plen, why = string.format(
                    "a line of %d bytes, over the maximum message of %d", plen, c.max) }
            end
            return { total = plen + #d, hlen = 0, plen = plen, tlen = #d }
        end
        if avail > c.max + #d - 1 then
            return { err = "too_long", len = avail, why = string.format(
                "more than %d bytes with no delimiter", c.max) }
        end
        return { need = DESEGMENT_ONE_MORE_SEGMENT }
    elseif c.framing == FR_FIXED then
        if avail < c.fixed then return { need = c.fixed - avail } end
        return { total = c.fixed, hlen = 0, plen = c.fixed, tlen = 0 }
    else -- raw: what one read returned, cut at the maximum
        local len = math.min(avail, c.max)
        return { total = len, hlen = 0, plen = len, tlen = 0 }
    end
end

function gmud.dissector(tvb, pinfo, tree)
    if cfg == nil then cfg = make_cfg() end
    local c = cfg
    local len = tvb:len()
    if len == 0 then return 0 end
    -- TLS on a gmud port: not ours in the clear. Refusing the bytes lets TCP
    -- try its heuristics, and TLS takes the conversation; what it decrypts
    -- comes back through the "tls.port" table.
    if c.detect_tls and looks_like_tls(tvb) then return 0 end

    local toS = to_server(pinfo)
    local st = get_stream(stream_key(pinfo))
    local ds = st.dirs[toS]
    local ctx = { to_server = toS, stream = st, dir = ds }
    local dirtext = toS and "client to server" or "server to client"

    -- The protocol's tree item is made with the first thing to show: a
    -- segment that only begins a frame is left to TCP's reassembly, bare.
    local root_item = nil
    local function root()
        if root_item == nil then
            pinfo.cols.protocol = "GMUD"
            root_item = tree:add(gmud, tvb(), "gmud Message Framing, " .. dirtext)
            root_item:add(f.direction, tvb(0, 0), dirtext):set_generated()
        end
        return root_item
    end
    local summaries = {}

    -- A stream that has had a framing error is out of sync for good
    -- (PROTOCOL.md 3): a receiver refuses everything after it.
    if ds.broken and pinfo.number > ds.broken then
        local it = root():add(f.unframed, tvb())
        it:add_proto_expert_info(ei.out_of_sync, string.format(
            "%d bytes after the framing error in frame %d: refused (out_of_sync)", len, ds.broken))
        summaries[#summaries + 1] = string.format("[out_of_sync] %d bytes", len)
        pinfo.cols.info = (toS and "C>S " or "S>C ") .. table.concat(summaries, "; ")
        return len
    end

    local offset = 0
    while offset < len do
        local fr = next_frame(tvb, offset)
        if fr.need then
            if pinfo.can_desegment > 0 then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = fr.need
                break
            end
            local it = root():add(f.unframed, tvb(offset))
            it:add_proto_expert_info(ei.incomplete)
            summaries[#summaries + 1] = "[incomplete frame]"
            offset = len
            break
        end
        if fr.err then
            local n = math.max(fr.len, 1)
            local sub = root():add(f.frame, tvb(offset, n))
            sub:set_text(FRAMING_NAME[c.framing] .. " frame refused: " .. fr.err)
            local ei_ = fr.err == "bad_label" and ei.bad_label or ei.too_long
            if c.framing == FR_GMUD then
                sub:add(f.label, tvb(offset, math.min(4, len - offset)))
                if fr.err == "too_long" then sub:add_le(f.length, tvb(offset + 4, 2)) end
            elseif c.framing == FR_LENGTH then
                sub:add_le(f.length, tvb(offset, 2))
            end
            local it = sub:add(f.refused, tvb(offset, n), fr.err)
            it:add_proto_expert_info(ei_, fr.err .. " (" .. ERROR_CODES[fr.err] .. "): " .. fr.why)
            if offset + n < len then
                root():add(f.unframed, tvb(offset + n)):add_proto_expert_info(ei.out_of_sync,
                    string.format("%d bytes after the framing error: refused (out_of_sync)", len - offset - n))
            end
            summaries[#summaries + 1] = "[" .. fr.err .. "] " .. printable(tvb:raw(offset, math.min(len - offset, 16)), 16)
            if not pinfo.visited then
                ds.broken = pinfo.number
            end
            offset = len
            break
        end
        local sub = root():add(f.frame, tvb(offset, fr.total))
        local po = offset + fr.hlen
        if c.framing == FR_GMUD then
            sub:add(f.label, tvb(offset, 4))
            sub:add_le(f.length, tvb(offset + 4, 2))
        elseif c.framing == FR_LENGTH then
            sub:add_le(f.length, tvb(offset, 2))
        end
        if fr.plen > 0 then sub:add(f.payload, tvb(po, fr.plen)) end
        sub:add(f.payload_len, tvb(po, fr.plen), fr.plen):set_generated()
        local s = dissect_payload(tvb, po, fr.plen, pinfo, sub, ctx)
        if fr.tlen > 0 then sub:add(f.delimiter, tvb(po + fr.plen, fr.tlen)) end
        local head = FRAMING_NAME[c.framing] .. " len=" .. fr.plen
        sub:set_text(string.format("%s frame, %d bytes: %s", FRAMING_NAME[c.framing], fr.total, s))
        summaries[#summaries + 1] = head .. (s ~= "" and (" " .. s) or "")
        offset = offset + fr.total
    end

    if #summaries > 0 then
        local text = (toS and "C>S " or "S>C ") .. table.concat(summaries, "; ")
        -- TLS may hand over several records of one frame, one call each:
        -- add to what an earlier call of this frame wrote.
        local prev = tostring(pinfo.cols.info)
        if prev:sub(1, 4) == text:sub(1, 4) and prev:find(" len=", 1, true) then
            text = prev .. "; " .. table.concat(summaries, "; ")
        end
        pinfo.cols.info = text
    end
    if root_item then
        pinfo.cols.protocol = "GMUD"     -- the json dissector has written its own
    end
    return len
end

-- Registration: the ports now; again whenever the preferences change.
cfg = make_cfg()
register_ports()
DissectorTable.get("tcp.port"):add_for_decode_as(gmud)
DissectorTable.get("tls.port"):add_for_decode_as(gmud)
