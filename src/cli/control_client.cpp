#include "control_client.hpp"

#include "earshot/control/protocol.hpp"

#include <boost/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace earshot::cli {

namespace json = boost::json;

std::string default_socket_path() {
    if (const char* s = std::getenv("EARSHOT_SOCKET"); s && *s) return s;
    if (const char* d = std::getenv("EARSHOT_RUNTIME_DIR"); d && *d) return std::string(d) + "/control.sock";
    return "/run/earshot/control.sock";
}

ControlClient::~ControlClient() {
    if (_fd >= 0) ::close(_fd);
}

bool ControlClient::connect(const std::string& path, std::string& err) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        err = path + ": path too long";
        return false;
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    _fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (_fd < 0 || ::connect(_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        err = "cannot connect to " + path + ": " + std::strerror(errno) +
              (errno == ENOENT || errno == ECONNREFUSED ? " (is earshotd running? --socket PATH)" : "") +
              (errno == EACCES ? " (not in the socket's group: control.group / control.read_group)" : "");
        return false;
    }
    std::string hello;
    if (read_line(hello, 5000) != 1) {
        err = "no greeting from " + path;
        return false;
    }
    boost::system::error_code ec;
    json::value v = json::parse(hello, ec);
    if (ec || !v.is_object()) {
        err = "unexpected greeting: " + hello.substr(0, 200);
        return false;
    }
    const json::object& o = v.as_object();
    if (o.if_contains("ok") && o.at("ok").is_bool() && !o.at("ok").as_bool()) {
        const json::value* e = o.if_contains("error");
        err = e && e->is_object() && e->as_object().if_contains("message")
                  ? std::string(e->as_object().at("message").as_string())
                  : "refused";
        return false;
    }
    // One protocol version per release: a daemon speaking another is refused, not misread.
    const json::value* proto = o.if_contains("protocol");
    if (!o.if_contains("hello") || !proto || !proto->is_int64() ||
        proto->as_int64() != control::protocol_version) {
        err = path + " speaks control protocol " + (proto ? json::serialize(*proto) : std::string("(none)")) +
              "; this earshot speaks protocol " + std::to_string(control::protocol_version) +
              ": use the earshot that came with the running earshotd";
        return false;
    }
    _control = o.if_contains("access") && o.at("access") == "control";
    return true;
}

bool ControlClient::send(const json::object& req, std::string& err) {
    std::string line = json::serialize(req) + "\n";
    std::size_t off = 0;
    while (off < line.size()) {
        const ssize_t w = ::send(_fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            err = std::string("send: ") + std::strerror(errno);
            return false;
        }
        off += static_cast<std::size_t>(w);
    }
    return true;
}

int ControlClient::read_line(std::string& line, int timeout_ms) {
    for (;;) {
        const auto nl = _buf.find('\n');
        if (nl != std::string::npos) {
            line = _buf.substr(0, nl);
            _buf.erase(0, nl + 1);
            return 1;
        }
        pollfd p{_fd, POLLIN, 0};
        const int r = ::poll(&p, 1, timeout_ms);
        if (r == 0) return 0;
        if (r < 0) {
            if (errno == EINTR) return 0;
            return -1;
        }
        char b[65536];
        const ssize_t n = ::recv(_fd, b, sizeof b, 0);
        if (n <= 0) return -1;
        _buf.append(b, static_cast<std::size_t>(n));
    }
}

bool ControlClient::request(const json::object& req0, json::object& reply, std::string& err) {
    json::object req = req0;
    const long id = _next_id++;
    req["id"] = id;
    if (!send(req, err)) return false;
    for (;;) {
        std::string line;
        const int r = read_line(line, 30000);
        if (r == 0) {
            err = "no reply within 30 s";
            return false;
        }
        if (r < 0) {
            err = "the daemon closed the connection";
            return false;
        }
        boost::system::error_code ec;
        json::value v = json::parse(line, ec);
        if (ec || !v.is_object()) continue;
        json::object& o = v.as_object();
        if (o.if_contains("event")) continue;
        if (const json::value* rid = o.if_contains("id"); rid && rid->is_int64() && rid->as_int64() != id)
            continue;
        reply = std::move(o);
        return true;
    }
}

void print_error(const json::object& reply) {
    const json::value* e = reply.if_contains("error");
    if (!e || !e->is_object()) {
        std::fprintf(stderr, "earshot: the request failed\n");
        return;
    }
    const json::object& eo = e->as_object();
    std::fprintf(
        stderr, "earshot: %s: %s\n",
        eo.if_contains("code") && eo.at("code").is_string() ? eo.at("code").as_string().c_str() : "error",
        eo.if_contains("message") && eo.at("message").is_string() ? eo.at("message").as_string().c_str()
                                                                  : "");
}

} // namespace earshot::cli
