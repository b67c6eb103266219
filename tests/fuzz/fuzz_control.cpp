// libFuzzer target: the control socket's request parser and reply formatter
// (src/control/protocol.cpp). Every input line must either parse into a request or produce an error
// with a code; every reply line built from it (with the request's own strings echoed, as the
// daemon's replies do) must be one valid JSON object that parses back to itself, carries the
// request's id, and has no newline in it (the protocol is one object per line).
#include "earshot/control/protocol.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

void check_line(const std::string& line, const boost::json::value& id) {
    if (line.find('\n') != std::string::npos) __builtin_trap();
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) __builtin_trap();
    if (boost::json::serialize(v) != line) __builtin_trap();
    const boost::json::value* got = v.as_object().if_contains("id");
    if (id.is_null() ? got != nullptr : (!got || *got != id)) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace earshot::control;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // The server splits on newlines: feed each line as it would.
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t nl = text.find('\n', start);
        const std::string_view line =
            text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        Request r;
        ParseError e;
        if (parse_request(line, r, e)) {
            (void)read_only(r.cmd, r.scene_action == SceneAction::list ? "list" : "change");
            boost::json::object res{
                {"cmd", command_name(r.cmd)},
                {"musician", r.musician},
                {"input", r.input},
                {"scene", r.scene},
                {"target", r.target},
                {"gain_db", r.gain_db ? db_json(*r.gain_db) : boost::json::value(nullptr)}};
            check_line(reply_ok(r.id, res), r.id);
            // Error replies quote names from the request (clipped like the daemon's messages).
            check_line(reply_error(r.id, code::not_found, "no target '" + clip_utf8(r.target, 40) + "'"),
                       r.id);
            check_line(event_line("status", 1, res), nullptr);
        } else {
            if (e.code.empty() || e.message.empty()) __builtin_trap();
            check_line(reply_error(e.id, e.code, e.message), e.id);
        }
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    return 0;
}
