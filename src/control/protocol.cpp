#include "earshot/control/protocol.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <vector>

namespace earshot::control {

namespace json = boost::json;

namespace {

constexpr double neg_inf = -std::numeric_limits<double>::infinity();

struct Cmd {
    const char* name;
    Command cmd;
};
constexpr Cmd commands_table[] = {
    {"ping", Command::ping},
    {"commands", Command::commands},
    {"status", Command::status},
    {"subscribe", Command::subscribe},
    {"unsubscribe", Command::unsubscribe},
    {"set", Command::set},
    {"scene", Command::scene},
    {"reload", Command::reload},
    {"dim", Command::dim},
    {"panic", Command::panic},
    {"learn", Command::learn},
    {"guard", Command::guard},
};

bool is_id(const std::string& s) {
    if (s.empty() || s.size() > 32) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

bool is_scene_name(const std::string& s) {
    if (s.empty() || s.size() > 32) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    return true;
}

bool number(const json::value& v, double& out) {
    if (v.is_double())
        out = v.as_double();
    else if (v.is_int64())
        out = static_cast<double>(v.as_int64());
    else if (v.is_uint64())
        out = static_cast<double>(v.as_uint64());
    else
        return false;
    return std::isfinite(out);
}

// A SAX pass that finds the first key repeated within one object (Boost.JSON's DOM parser keeps the
// last one silently). Only run on text that already parsed, so it never sees malformed input.
struct DupFinder {
    static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
    std::vector<std::set<std::string>> keys; // one set per open object
    std::string key;                         // the key being read
    std::string dup;                         // the first duplicate found

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_array_begin(boost::system::error_code&) { return true; }
    bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&) {
        keys.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code&) {
        keys.pop_back();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&) {
        key.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, boost::system::error_code& ec) {
        key.append(s.data(), s.size());
        if (!keys.back().insert(key).second) {
            dup = key;
            ec = json::error::syntax; // stops the pass; the caller reports `dup`
            return false;
        }
        key.clear();
        return true;
    }
    bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_int64(int64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(uint64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_double(double, json::string_view, boost::system::error_code&) { return true; }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }
};

// The first key that occurs twice in one object of `line` ("" if none).
std::string duplicate_key(std::string_view line, const json::parse_options& po) {
    json::basic_parser<DupFinder> p(po);
    boost::system::error_code ec;
    p.write_some(false, line.data(), line.size(), ec);
    return p.handler().dup;
}

} // namespace

std::string clip_utf8(std::string_view s, std::size_t max_bytes) {
    if (s.size() <= max_bytes) return std::string(s);
    std::size_t n = max_bytes;
    // Back up over continuation bytes (10xxxxxx) so that no sequence is cut in two.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return std::string(s.substr(0, n)) + "...";
}

bool read_only(Command c, std::string_view scene_action) noexcept {
    switch (c) {
    case Command::ping:
    case Command::commands:
    case Command::status:
    case Command::subscribe:
    case Command::unsubscribe:
        return true;
    case Command::scene:
        return scene_action == "list";
    case Command::set:
    case Command::reload:
    case Command::dim:
    case Command::panic:
    case Command::learn:
    case Command::guard:
        return false;
    }
    return false;
}

const char* command_name(Command c) noexcept {
    for (const Cmd& e : commands_table)
        if (e.cmd == c) return e.name;
    return "?";
}

bool parse_request(std::string_view line, Request& out, ParseError& err) {
    out = Request{};
    err = ParseError{};
    if (line.size() > max_line) {
        err.code = code::line_too_long;
        err.message = "request longer than " + std::to_string(max_line) + " bytes";
        return false;
    }
    boost::system::error_code ec;
    json::parse_options po;
    po.max_depth = 16;
    json::value doc = json::parse(line, ec, {}, po);
    if (ec) {
        err.code = code::bad_json;
        err.message = "not valid JSON: " + ec.message();
        return false;
    }
    if (!doc.is_object()) {
        err.code = code::bad_request;
        err.message = "a request is a JSON object, e.g. {\"cmd\": \"status\"}";
        return false;
    }
    const json::object& o = doc.as_object();
    if (const json::value* id = o.if_contains("id")) {
        if (!(id->is_string() || id->is_int64() || id->is_uint64() || id->is_null()) ||
            (id->is_string() && id->as_string().size() > 64)) {
            err.code = code::bad_request;
            err.message = "\"id\" must be an integer or a string of at most 64 characters";
            return false;
        }
        out.id = *id;
        err.id = *id;
    }
    // {"cmd":"ping","cmd":"reload"} must not run a reload: a repeated key is an error, not "last wins".
    if (const std::string dup = duplicate_key(line, po); !dup.empty()) {
        err.code = code::bad_request;
        err.message = "duplicate key '" + clip_utf8(dup, 40) + "' (give each argument once)";
        if (dup == "id") err.id = nullptr; // which one would it be?
        return false;
    }
    auto bad = [&](const std::string& m) {
        err.code = code::bad_request;
        err.message = m;
        return false;
    };
    const json::value* cmdv = o.if_contains("cmd");
    if (!cmdv || !cmdv->is_string()) return bad("missing \"cmd\" (a string)");
    const std::string cmd(cmdv->as_string());
    bool found = false;
    for (const Cmd& e : commands_table)
        if (cmd == e.name) {
            out.cmd = e.cmd;
            found = true;
        }
    if (!found) {
        err.code = code::unknown_command;
        err.message = "unknown command '" + clip_utf8(cmd, 40) + "' (\"cmd\": \"commands\" lists them)";
        return false;
    }
    // Allowed keys per command: anything else is an error (typos never pass silently).
    auto only = [&](std::initializer_list<const char*> keys) {
        for (const auto& kv : o) {
            const std::string k(kv.key());
            if (k == "id" || k == "cmd") continue;
            bool ok = false;
            for (const char* a : keys) ok = ok || k == a;
            if (!ok) return bad("unknown argument '" + clip_utf8(k, 40) + "' for '" + cmd + "'");
        }
        return true;
    };
    auto str = [&](const char* key, std::string& dst, bool required) {
        const json::value* v = o.if_contains(key);
        if (!v) return !required ? true : bad(std::string("missing \"") + key + "\"");
        if (!v->is_string()) return bad(std::string("\"") + key + "\" must be a string");
        dst = std::string(v->as_string());
        return true;
    };
    switch (out.cmd) {
    case Command::ping:
    case Command::commands:
    case Command::status:
    case Command::unsubscribe:
    case Command::reload:
        return only({});
    case Command::subscribe: {
        if (!only({"rate_hz"})) return false;
        if (const json::value* r = o.if_contains("rate_hz")) {
            if (!number(*r, out.rate_hz) || out.rate_hz < 0.1 || out.rate_hz > 20)
                return bad("\"rate_hz\" must be a number in [0.1, 20]");
        }
        return true;
    }
    case Command::set: {
        if (!only({"musician", "input", "gain_db", "master_db", "pan", "mute"})) return false;
        if (!str("musician", out.musician, true)) return false;
        if (!is_id(out.musician)) return bad("\"musician\" is not an id ([a-z0-9_-], 1-32)");
        if (!str("input", out.input, false)) return false;
        if (o.if_contains("input") && !is_id(out.input))
            return bad("\"input\" is not an id ([a-z0-9_-], 1-32)");
        const bool master = o.if_contains("master_db") != nullptr;
        if (master && (o.if_contains("input") || o.if_contains("gain_db") || o.if_contains("pan") ||
                       o.if_contains("mute")))
            return bad("\"master_db\" goes alone (no input, gain_db, pan or mute)");
        if (!master && !o.if_contains("input"))
            return bad("give \"master_db\", or \"input\" with gain_db/pan/mute");
        const json::value* g = master ? o.if_contains("master_db") : o.if_contains("gain_db");
        if (g) {
            double db = 0;
            if (g->is_null() || (g->is_string() && (g->as_string() == "off" || g->as_string() == "-inf")))
                db = neg_inf;
            else if (!number(*g, db) || db < -90 || db > 12)
                return bad(std::string(master ? "\"master_db\"" : "\"gain_db\"") +
                           " must be a number in [-90, 12] dB, or \"off\"");
            out.gain_db = db;
        }
        if (const json::value* p = o.if_contains("pan")) {
            double v = 0;
            if (!number(*p, v) || v < -1 || v > 1) return bad("\"pan\" must be a number in [-1, 1]");
            out.pan = v;
        }
        if (const json::value* m = o.if_contains("mute")) {
            if (!m->is_bool()) return bad("\"mute\" must be true or false");
            out.mute = m->as_bool();
        }
        if (!master && !out.gain_db && !out.pan && !out.mute)
            return bad("nothing to set: give gain_db, pan or mute");
        return true;
    }
    case Command::scene: {
        if (!only({"action", "name"})) return false;
        std::string action;
        if (!str("action", action, true)) return false;
        if (action == "save")
            out.scene_action = SceneAction::save;
        else if (action == "recall")
            out.scene_action = SceneAction::recall;
        else if (action == "list")
            out.scene_action = SceneAction::list;
        else if (action == "delete")
            out.scene_action = SceneAction::remove;
        else
            return bad("\"action\" must be save, recall, list or delete");
        if (out.scene_action != SceneAction::list) {
            if (!str("name", out.scene, true)) return false;
            if (!is_scene_name(out.scene)) return bad("\"name\" must be [A-Za-z0-9_-], 1-32 characters");
        } else if (o.if_contains("name")) {
            return bad("\"list\" takes no name");
        }
        return true;
    }
    case Command::dim: {
        if (!only({"on", "db"})) return false;
        if (const json::value* v = o.if_contains("on")) {
            if (!v->is_bool()) return bad("\"on\" must be true or false");
            out.on = v->as_bool();
        }
        if (const json::value* d = o.if_contains("db")) {
            if (!number(*d, out.dim_db) || out.dim_db < -60 || out.dim_db > 0)
                return bad("\"db\" must be a number in [-60, 0]");
        }
        return true;
    }
    case Command::panic: {
        if (!only({"on"})) return false;
        if (const json::value* v = o.if_contains("on")) {
            if (!v->is_bool()) return bad("\"on\" must be true or false");
            out.on = v->as_bool();
        }
        return true;
    }
    case Command::guard: {
        if (!only({"musician", "action"})) return false;
        if (!str("musician", out.musician, true)) return false;
        if (!is_id(out.musician)) return bad("\"musician\" is not an id ([a-z0-9_-], 1-32)");
        std::string action;
        if (!str("action", action, true)) return false;
        if (action == "suspend")
            out.suspend = true;
        else if (action == "resume")
            out.suspend = false;
        else
            return bad("\"action\" must be suspend or resume");
        return true;
    }
    case Command::learn: {
        if (!only({"target", "forget"})) return false;
        if (!str("target", out.target, true)) return false;
        if (const json::value* f = o.if_contains("forget")) {
            if (!f->is_bool()) return bad("\"forget\" must be true or false");
            out.forget = f->as_bool();
        }
        return true;
    }
    }
    return bad("unhandled command");
}

std::string reply_ok(const json::value& id, json::value result) {
    json::object o;
    if (!id.is_null()) o["id"] = id;
    o["ok"] = true;
    o["result"] = std::move(result);
    return json::serialize(o);
}

std::string reply_error(const json::value& id, std::string_view c, std::string_view message) {
    json::object o;
    if (!id.is_null()) o["id"] = id;
    o["ok"] = false;
    json::object e;
    e["code"] = c;
    e["message"] = message;
    o["error"] = std::move(e);
    return json::serialize(o);
}

std::string event_line(std::string_view event, uint64_t seq, const json::value& data) {
    json::object o;
    o["event"] = event;
    o["seq"] = seq;
    o["data"] = data;
    return json::serialize(o);
}

std::string hello_line(std::string_view version, bool can_control) {
    json::object o;
    o["hello"] = "earshot";
    o["protocol"] = protocol_version;
    o["version"] = version;
    o["access"] = can_control ? "control" : "read";
    return json::serialize(o);
}

json::value db_json(double db) {
    if (!std::isfinite(db)) return nullptr;
    return std::round(db * 100.0) / 100.0;
}

} // namespace earshot::control
