// earshot::control protocol — the control socket's JSON-lines protocol, version 1
// (docs/control-protocol.md). Pure: parsing and formatting only, no I/O; fuzzed.
//
// One request per line, one JSON object each:
//   {"id": 7, "cmd": "set", "musician": "drums", "input": "click", "gain_db": -6}
// One reply per request, in the order of the requests, echoing "id" when given:
//   {"id": 7, "ok": true, "result": {...}}
//   {"id": 7, "ok": false, "error": {"code": "not_found", "message": "no musician 'drum'"}}
// Subscriptions add event lines: {"event": "status", "seq": 12, "data": {...}}.
//
// Thread contract: any thread; allocates.
#pragma once

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace earshot::control {

inline constexpr int protocol_version = 1;
/// Longest request line accepted (bytes, without the newline).
inline constexpr std::size_t max_line = 64 * 1024;

enum class Command {
    ping,
    commands,
    status,
    subscribe,
    unsubscribe,
    set,
    scene,
    reload,
    dim,
    panic,
    learn,
    guard,
};

/// Whether a command only reads (allowed to the read-only group).
bool read_only(Command c, std::string_view scene_action = {}) noexcept;
const char* command_name(Command c) noexcept;

enum class SceneAction { save, recall, list, remove };

struct Request {
    boost::json::value id; // null when absent
    Command cmd = Command::ping;
    // set
    std::string musician;
    std::string input;             // empty: the musician's master
    std::optional<double> gain_db; // -inf = off
    std::optional<double> pan;     // [-1, 1]
    std::optional<bool> mute;
    // scene
    SceneAction scene_action = SceneAction::list;
    std::string scene;
    // subscribe
    double rate_hz = 4;
    // dim / panic
    bool on = true;
    double dim_db = -20;
    // learn
    std::string target;
    bool forget = false; // learn: remove the learned bindings of `target` instead
    // guard: suspend (acknowledge) or resume the dose guard of `musician`
    bool suspend = true;
};

/// Error codes of the protocol.
namespace code {
inline constexpr const char* bad_json = "bad_json";
inline constexpr const char* bad_request = "bad_request";
inline constexpr const char* unknown_command = "unknown_command";
inline constexpr const char* permission_denied = "permission_denied";
inline constexpr const char* not_found = "not_found";
inline constexpr const char* line_too_long = "line_too_long";
inline constexpr const char* too_many_clients = "too_many_clients";
inline constexpr const char* idle_timeout = "idle_timeout";
inline constexpr const char* unavailable = "unavailable";
inline constexpr const char* invalid_config = "invalid_config";
inline constexpr const char* internal = "internal";
} // namespace code

struct ParseError {
    std::string code;
    std::string message;
    boost::json::value id; // the request's id if it could be read
};

/// Parses one request line. Returns false and fills `err` for anything malformed: not JSON, not an
/// object, a key given twice in one object, unknown command, missing or ill-typed arguments,
/// values out of range.
bool parse_request(std::string_view line, Request& out, ParseError& err);

/// Reply lines (without the newline).
std::string reply_ok(const boost::json::value& id, boost::json::value result);
std::string reply_error(const boost::json::value& id, std::string_view code, std::string_view message);
std::string event_line(std::string_view event, uint64_t seq, const boost::json::value& data);
/// The greeting sent on connect: {"hello":"earshot","protocol":1,"version":...,"access":"control"|"read"}.
std::string hello_line(std::string_view version, bool can_control);

/// `s` cut to at most `max_bytes` bytes (plus "..." when cut) at a UTF-8 character boundary, so
/// that a valid UTF-8 string stays valid (for names quoted in error messages).
std::string clip_utf8(std::string_view s, std::size_t max_bytes);

/// A dB value for JSON: a number, or null for -inf ("off").
boost::json::value db_json(double db);

} // namespace earshot::control
