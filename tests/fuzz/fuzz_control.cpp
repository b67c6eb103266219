// libFuzzer target: the control socket's request parser and reply formatter
// (src/control/protocol.cpp). Every input line must either parse into a request or produce an error
// with a code; formatting the reply must not throw.
#include "earshot/control/protocol.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

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
            (void)reply_ok(r.id, boost::json::object{{"cmd", command_name(r.cmd)}});
        } else {
            if (e.code.empty()) __builtin_trap();
            (void)reply_error(e.id, e.code, e.message);
        }
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    return 0;
}
