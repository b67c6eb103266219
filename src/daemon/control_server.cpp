#include "earshot/daemon/control_server.hpp"

#include "earshot/daemon/log.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <istream>
#include <set>
#include <vector>

namespace earshot::daemon {

namespace asio = boost::asio;
namespace json = boost::json;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t max_queued = 1 << 20;         // a client that reads nothing is dropped here
constexpr std::size_t max_queued_events = 64 << 10; // events are skipped above this

bool group_id(const std::string& name, gid_t& out) {
    if (name.empty()) return false;
    std::vector<char> buf(16384);
    group g{};
    group* res = nullptr;
    if (getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &res) != 0 || !res) return false;
    out = g.gr_gid;
    return true;
}

// Whether user `uid` is in group `gid` (primary or supplementary).
bool in_group(uid_t uid, gid_t gid) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* res = nullptr;
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) != 0 || !res) return false;
    if (pw.pw_gid == gid) return true;
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<std::size_t>(n));
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) return false;
    }
    for (int i = 0; i < n; ++i)
        if (groups[static_cast<std::size_t>(i)] == gid) return true;
    return false;
}

} // namespace

struct ControlServer::Impl {
    asio::io_context& io;
    ControlHandler& handler;
    std::string version;
    std::unique_ptr<local::acceptor> acceptor;
    std::string path;
    config::Control cfg;
    bool have_control_gid = false, have_read_gid = false;
    gid_t control_gid = 0, read_gid = 0;
    std::set<std::shared_ptr<Session>> sessions;
    ControlStats st;
    uint64_t seq = 0;

    Impl(asio::io_context& i, ControlHandler& h, std::string v) : io(i), handler(h), version(std::move(v)) {}
    void accept();
    // 0 = refused, 1 = read only, 2 = control
    int access_for(uid_t uid) const {
        if (uid == 0 || uid == ::geteuid()) return 2;
        if (have_control_gid && in_group(uid, control_gid)) return 2;
        if (!have_control_gid && in_group(uid, ::getegid())) return 2;
        if (have_read_gid && in_group(uid, read_gid)) return 1;
        return 0;
    }
};

struct ControlServer::Session : std::enable_shared_from_this<ControlServer::Session> {
    Impl& srv;
    local::socket sock;
    asio::streambuf in{control::max_line + 1};
    std::deque<std::string> out;
    std::size_t queued = 0;
    bool writing = false;
    bool closing = false; // close once the queue is written
    bool closed = false;
    uid_t uid = static_cast<uid_t>(-1);
    int access = 0;
    double rate_hz = 0; // subscription, 0 = none
    Clock::time_point next_event{};

    Session(Impl& s, local::socket so) : srv(s), sock(std::move(so)) {}

    void start() {
        ucred cr{};
        socklen_t len = sizeof cr;
        if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) uid = cr.uid;
        access = srv.access_for(uid);
        if (access == 0) {
            ++srv.st.refused;
            send(control::reply_error(nullptr, control::code::permission_denied,
                                      "uid " + std::to_string(uid) + " may not use this socket"),
                 true);
            closing = true;
            return;
        }
        send(control::hello_line(srv.version, access == 2), true);
        read();
    }

    void read() {
        auto self = shared_from_this();
        asio::async_read_until(sock, in, '\n', [self](const boost::system::error_code& ec, std::size_t n) {
            self->on_read(ec, n);
        });
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        if (closed) return;
        if (ec == asio::error::not_found) {
            ++srv.st.errors;
            send(control::reply_error(nullptr, control::code::line_too_long,
                                      "request line longer than " + std::to_string(control::max_line) +
                                          " bytes; closing"),
                 true);
            closing = true;
            maybe_close();
            return;
        }
        if (ec) {
            shutdown();
            return;
        }
        std::string line(asio::buffers_begin(in.data()),
                         asio::buffers_begin(in.data()) + static_cast<long>(n));
        in.consume(n);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        if (!line.empty()) handle(line);
        if (!closed && !closing) read();
    }

    void handle(const std::string& line) {
        ++srv.st.requests;
        control::Request r;
        control::ParseError pe;
        if (!control::parse_request(line, r, pe)) {
            ++srv.st.errors;
            send(control::reply_error(pe.id, pe.code, pe.message), true);
            return;
        }
        const char* action = r.scene_action == control::SceneAction::list ? "list" : "change";
        if (!control::read_only(r.cmd, r.cmd == control::Command::scene ? action : "") && access < 2) {
            ++srv.st.errors;
            send(control::reply_error(r.id, control::code::permission_denied,
                                      std::string("'") + control::command_name(r.cmd) +
                                          "' changes the mix: uid " + std::to_string(uid) +
                                          " may only read (not in control.group)"),
                 true);
            return;
        }
        switch (r.cmd) {
        case control::Command::ping: {
            json::object o;
            o["pong"] = true;
            send(control::reply_ok(r.id, std::move(o)), true);
            return;
        }
        case control::Command::commands: {
            json::array a;
            for (auto c : {control::Command::ping, control::Command::commands, control::Command::status,
                           control::Command::subscribe, control::Command::unsubscribe, control::Command::set,
                           control::Command::scene, control::Command::reload, control::Command::dim,
                           control::Command::panic, control::Command::learn, control::Command::guard}) {
                json::object e;
                e["cmd"] = control::command_name(c);
                e["read_only"] = control::read_only(c, c == control::Command::scene ? "list" : "");
                a.push_back(std::move(e));
            }
            json::object o;
            o["protocol"] = control::protocol_version;
            o["commands"] = std::move(a);
            o["access"] = access == 2 ? "control" : "read";
            send(control::reply_ok(r.id, std::move(o)), true);
            return;
        }
        case control::Command::subscribe: {
            rate_hz = r.rate_hz;
            next_event = Clock::now();
            json::object o;
            o["rate_hz"] = rate_hz;
            o["event"] = "status";
            send(control::reply_ok(r.id, std::move(o)), true);
            return;
        }
        case control::Command::unsubscribe: {
            rate_hz = 0;
            send(control::reply_ok(r.id, json::object{}), true);
            return;
        }
        default:
            break;
        }
        try {
            std::weak_ptr<Session> weak = shared_from_this();
            const ControlHandler::Reply later = [weak](const std::string& reply) {
                if (auto self = weak.lock()) self->send(reply, true);
            };
            std::string reply = srv.handler.handle(r, uid, later);
            if (!reply.empty()) send(std::move(reply), true);
        } catch (const std::exception& e) {
            ++srv.st.errors;
            send(control::reply_error(r.id, control::code::internal, e.what()), true);
        }
    }

    // Queues a line. Replies are always queued (a client that never reads is disconnected at
    // max_queued); events are skipped when the client is behind.
    bool send(std::string line, bool reply) {
        if (closed) return false;
        if (!reply && queued > max_queued_events) {
            ++srv.st.events_dropped;
            return false;
        }
        if (queued + line.size() > max_queued) {
            ++srv.st.slow_disconnects;
            log::warn_limited("control-slow",
                              "control socket: uid %u does not read its replies; disconnected",
                              static_cast<unsigned>(uid));
            shutdown();
            return false;
        }
        line += '\n';
        queued += line.size();
        out.push_back(std::move(line));
        write();
        return true;
    }

    void write() {
        if (writing || out.empty() || closed) return;
        writing = true;
        auto self = shared_from_this();
        asio::async_write(sock, asio::buffer(out.front()),
                          [self](const boost::system::error_code& ec, std::size_t) {
                              self->writing = false;
                              if (ec) {
                                  self->shutdown();
                                  return;
                              }
                              self->queued -= self->out.front().size();
                              self->out.pop_front();
                              self->write();
                              self->maybe_close();
                          });
    }

    void maybe_close() {
        if (closing && out.empty() && !writing) shutdown();
    }

    void shutdown() {
        if (closed) return;
        closed = true;
        boost::system::error_code ec;
        sock.shutdown(local::socket::shutdown_both, ec);
        sock.close(ec);
        srv.sessions.erase(shared_from_this());
    }
};

void ControlServer::Impl::accept() {
    if (!acceptor) return;
    acceptor->async_accept([this](const boost::system::error_code& ec, local::socket s) {
        if (ec == asio::error::operation_aborted || !acceptor) return;
        if (!ec) {
            ++st.accepted;
            auto sess = std::make_shared<Session>(*this, std::move(s));
            if (static_cast<int>(sessions.size()) >= cfg.max_clients) {
                ++st.refused;
                // Best effort, non-blocking: tell it why, then close.
                const std::string msg = control::reply_error(nullptr, control::code::too_many_clients,
                                                             "too many clients (control.max_clients = " +
                                                                 std::to_string(cfg.max_clients) + ")") +
                                        "\n";
                [[maybe_unused]] const ssize_t w =
                    ::send(sess->sock.native_handle(), msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
                boost::system::error_code e2;
                sess->sock.close(e2);
            } else {
                sessions.insert(sess);
                sess->start();
                sess->maybe_close();
            }
        } else {
            log::warn_limited("control-accept", "control socket: accept: %s", ec.message().c_str());
        }
        accept();
    });
}

ControlServer::ControlServer(asio::io_context& io, ControlHandler& handler, std::string version)
    : _p(std::make_unique<Impl>(io, handler, std::move(version))) {}

ControlServer::~ControlServer() {
    close();
}

bool ControlServer::open(const std::string& path, const config::Control& cfg, std::string& err) {
    Impl& s = *_p;
    close();
    s.cfg = cfg;
    s.have_control_gid = false;
    s.have_read_gid = false;
    if (!cfg.group.empty()) {
        if (!group_id(cfg.group, s.control_gid)) {
            err = "control.group: no such group '" + cfg.group + "'";
            return false;
        }
        s.have_control_gid = true;
    }
    if (!cfg.read_group.empty()) {
        if (!group_id(cfg.read_group, s.read_gid)) {
            err = "control.read_group: no such group '" + cfg.read_group + "'";
            return false;
        }
        s.have_read_gid = true;
    }
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
        err = path + ": path too long for a Unix socket";
        return false;
    }
    ::unlink(path.c_str()); // a stale socket of an earlier run
    try {
        s.acceptor = std::make_unique<local::acceptor>(s.io);
        s.acceptor->open(local());
        s.acceptor->bind(local::endpoint(path));
        s.acceptor->listen(128);
    } catch (const std::exception& e) {
        err = path + ": " + e.what();
        s.acceptor.reset();
        return false;
    }
    // The unit's UMask would leave the socket without group write: set the mode explicitly.
    const gid_t owner = s.have_read_gid ? s.read_gid : s.have_control_gid ? s.control_gid : ::getegid();
    if (::chown(path.c_str(), static_cast<uid_t>(-1), owner) != 0 || ::chmod(path.c_str(), 0660) != 0) {
        err = path + ": cannot set group/mode: " + std::strerror(errno);
        s.acceptor.reset();
        ::unlink(path.c_str());
        return false;
    }
    s.path = path;
    s.accept();
    return true;
}

void ControlServer::close() {
    Impl& s = *_p;
    if (s.acceptor) {
        boost::system::error_code ec;
        s.acceptor->close(ec);
        s.acceptor.reset();
    }
    auto copy = s.sessions;
    for (const auto& sess : copy) sess->shutdown();
    s.sessions.clear();
    if (!s.path.empty()) ::unlink(s.path.c_str());
    s.path.clear();
}

void ControlServer::publish() {
    Impl& s = *_p;
    const auto now = Clock::now();
    bool any = false;
    for (const auto& sess : s.sessions)
        if (sess->rate_hz > 0 && !sess->closed && now >= sess->next_event) any = true;
    if (!any) return;
    const json::value data = s.handler.status_json();
    ++s.seq;
    const std::string line = control::event_line("status", s.seq, data);
    auto copy = s.sessions; // send() may drop a session
    for (const auto& sess : copy) {
        if (sess->rate_hz <= 0 || sess->closed || now < sess->next_event) continue;
        sess->next_event = now + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(1.0 / sess->rate_hz));
        sess->send(line, false);
    }
}

ControlStats ControlServer::stats() const {
    ControlStats st = _p->st;
    st.clients = _p->sessions.size();
    return st;
}

} // namespace earshot::daemon
