// earshot CLI: a client of earshotd's control socket (docs/control-protocol.md). Blocking I/O;
// used by `earshot status/set/scene/reload/dim/panic/learn/top`.
#pragma once

#include <boost/json/value.hpp>

#include <string>

namespace earshot::cli {

/// Where the socket is: --socket PATH, else $EARSHOT_SOCKET, else $EARSHOT_RUNTIME_DIR/control.sock,
/// else /run/earshot/control.sock.
std::string default_socket_path();

class ControlClient {
public:
    ControlClient() = default;
    ~ControlClient();
    ControlClient(const ControlClient&) = delete;
    ControlClient& operator=(const ControlClient&) = delete;

    /// Connects and reads the greeting. False with `err` (daemon not running, permission, ...).
    bool connect(const std::string& path, std::string& err);
    /// Sends one request object and waits for its reply (events in between are skipped).
    /// False with `err` when the connection fails; a protocol error is a reply with ok=false.
    bool request(const boost::json::object& req, boost::json::object& reply, std::string& err);
    /// Sends a request without waiting.
    bool send(const boost::json::object& req, std::string& err);
    /// Reads one line (reply or event), waiting at most timeout_ms (-1 = forever). 0 = timeout,
    /// 1 = a line, -1 = closed or error.
    int read_line(std::string& line, int timeout_ms);
    int fd() const noexcept { return _fd; }
    bool can_control() const noexcept { return _control; }

private:
    int _fd = -1;
    std::string _buf;
    bool _control = false;
    long _next_id = 1;
};

/// Prints a failed reply's error to stderr ("earshot: <code>: <message>").
void print_error(const boost::json::object& reply);

} // namespace earshot::cli
