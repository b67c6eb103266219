#include "earshot/daemon/control_server.hpp"

#include "earshot/daemon/log.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <vector>

namespace earshot::daemon {

namespace asio = boost::asio;
namespace json = boost::json;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

namespace {

// Per client: requests are not read while more than this waits to be written to it ...
constexpr std::size_t pause_bytes = 64 << 10;
// ... and status events are skipped (counted) above it.
constexpr std::size_t event_skip_bytes = 64 << 10;
// A safety net only: with the pause above a client's queue holds at most one reply more.
constexpr std::size_t max_queued = 1 << 20;
// All clients together: above this nobody's requests are read and events are skipped.
constexpr std::size_t global_budget = 8 << 20;
// Fairness per tick (publish()): requests per client, and the time all requests may take.
constexpr int per_tick_requests = 8;
constexpr auto tick_budget = std::chrono::milliseconds(10);
// A connection without a subscription or a pending reply that sends nothing is closed after this;
// one whose queued output does not move for as long is disconnected as stalled.
constexpr auto idle_timeout = std::chrono::seconds(60);
constexpr auto stall_timeout = std::chrono::seconds(60);
constexpr std::size_t read_chunk = 4096;
// Root and the daemon's own user may go this far beyond control.max_clients (emergency access).
constexpr int emergency_slots = 4;

int reserved_slots(int max_clients) {
    return max_clients <= 2 ? 0 : std::max(2, max_clients / 16);
}
int reader_per_uid(int max_clients) {
    return std::max(1, (max_clients - reserved_slots(max_clients)) / 4);
}

bool group_id(const std::string& name, gid_t& out) {
    if (name.empty()) return false;
    std::vector<char> buf(16384);
    group g{};
    group* res = nullptr;
    if (getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &res) != 0 || !res) return false;
    out = g.gr_gid;
    return true;
}

std::string user_name(uid_t uid) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* res = nullptr;
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res) return pw.pw_name;
    return "uid " + std::to_string(uid);
}

// Whether user `uid` is in group `gid` according to the user database (primary or supplementary).
// Only for peers whose groups the kernel could not give (no SO_PEERGROUPS).
bool in_group_db(uid_t uid, gid_t gid) {
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

// Whether this process may chown a file to `gid` (root, or a member of it).
bool may_chown_to(gid_t gid) {
    if (::geteuid() == 0 || ::getegid() == gid) return true;
    const int n = ::getgroups(0, nullptr);
    if (n <= 0) return false;
    std::vector<gid_t> g(static_cast<std::size_t>(n));
    const int m = ::getgroups(n, g.data());
    return m > 0 && std::find(g.begin(), g.begin() + m, gid) != g.begin() + m;
}

// The peer of a connected Unix socket, as the kernel recorded it at connect().
struct PeerCred {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups; // supplementary groups (SO_PEERGROUPS)
    bool groups_known = false;

    bool member(gid_t g) const {
        if (gid == g) return true;
        if (groups_known) return std::find(groups.begin(), groups.end(), g) != groups.end();
        return in_group_db(uid, g); // fallback: the user database (may block on a slow NSS)
    }
};

bool peer_cred(int fd, PeerCred& p) {
    ucred cr{};
    socklen_t len = sizeof cr;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return false;
    p.uid = cr.uid;
    p.gid = cr.gid;
#ifdef SO_PEERGROUPS
    std::vector<gid_t> g(64);
    for (int attempt = 0; attempt < 3; ++attempt) {
        socklen_t gl = static_cast<socklen_t>(g.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g.data(), &gl) == 0) {
            g.resize(gl / sizeof(gid_t));
            p.groups = std::move(g);
            p.groups_known = true;
            break;
        }
        if (errno != ERANGE) break; // ENOPROTOOPT: a kernel before 4.13
        g.resize(gl / sizeof(gid_t) + 1);
    }
#endif
    return true;
}

// Whether something listens on the Unix socket `path` (a live daemon): connect without blocking.
bool socket_answers(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    const int r = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    const int e = errno;
    ::close(fd);
    if (r == 0) return true;
    // EAGAIN: it listens, its backlog is full. EACCES/EPERM: it is not ours to judge: leave it.
    return e == EAGAIN || e == EINPROGRESS || e == EACCES || e == EPERM;
}

std::string dir_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// Every connection needs a file descriptor: raise the soft limit if control.max_clients needs it.
void raise_nofile(int max_clients) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    const rlim_t need = static_cast<rlim_t>(max_clients + emergency_slots + 128);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : std::min(rl.rlim_max, need);
        if (::setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log::warn("control.max_clients = %d needs %llu file descriptors, the limit is %llu (LimitNOFILE= in "
                  "the unit): connections beyond it wait",
                  max_clients, static_cast<unsigned long long>(need),
                  static_cast<unsigned long long>(rl.rlim_cur));
}

// Members of `gid` must be able to reach the socket: its directory needs search permission for
// them. A directory of ours gets o+x (listing stays closed); one of someone else is reported.
void make_reachable(const std::string& dir, gid_t gid, const std::string& group) {
    struct stat d {};
    if (::stat(dir.c_str(), &d) != 0) return;
    const bool ok = (d.st_mode & S_IXOTH) || (d.st_gid == gid && (d.st_mode & S_IXGRP));
    if (ok) return;
    if (d.st_uid == ::geteuid() && ::chmod(dir.c_str(), (d.st_mode & 07777) | S_IXOTH) == 0) {
        log::notice("%s: mode now %04o, so that members of group '%s' can reach the control socket "
                    "(others may traverse, not list)",
                    dir.c_str(), static_cast<unsigned>((d.st_mode & 07777) | S_IXOTH), group.c_str());
        return;
    }
    log::warn("%s (mode %04o) is not searchable by group '%s': its members cannot reach the control "
              "socket (RuntimeDirectoryMode=0711)",
              dir.c_str(), static_cast<unsigned>(d.st_mode & 07777), group.c_str());
}

// control.group and control.read_group as group ids.
struct Gids {
    bool have_control = false, have_read = false;
    gid_t control = 0, read = 0;
};
bool resolve(const config::Control& c, Gids& out, std::string& err) {
    Gids g;
    g.have_control = !c.group.empty();
    g.have_read = !c.read_group.empty();
    if (g.have_control && !group_id(c.group, g.control)) {
        err = "control.group: no such group '" + c.group + "'";
        return false;
    }
    if (g.have_read && !group_id(c.read_group, g.read)) {
        err = "control.read_group: no such group '" + c.read_group + "'";
        return false;
    }
    out = g;
    return true;
}

// A file has one group: with both groups set the socket belongs to read_group, and control.group
// gets the same rw through a POSIX ACL (group:<control>:rw-, mask rw-), so that an engineer who is
// not also in the read group can connect. False with errno when the file system has no ACLs.
bool set_control_acl(const std::string& path, const Gids& g) {
    if (!(g.have_read && g.have_control) || g.read == g.control) {
        if (::removexattr(path.c_str(), "system.posix_acl_access") != 0 && errno != ENODATA &&
            errno != ENOTSUP)
            return false;
        return true;
    }
    struct Entry {
        uint16_t tag, perm;
        uint32_t id;
    };
    static_assert(sizeof(Entry) == 8);
    constexpr uint16_t user_obj = 0x01, group_obj = 0x04, named_group = 0x08, mask = 0x10, other = 0x20,
                       rw = 6;
    constexpr uint32_t undefined = static_cast<uint32_t>(-1);
    // The kernel's format (linux/posix_acl_xattr.h): a version, then the entries sorted by tag.
    const Entry e[] = {{user_obj, rw, undefined},
                       {group_obj, rw, undefined},
                       {named_group, rw, static_cast<uint32_t>(g.control)},
                       {mask, rw, undefined},
                       {other, 0, undefined}};
    std::array<char, 4 + sizeof e> buf{};
    const uint32_t version = 2;
    std::memcpy(buf.data(), &version, 4);
    std::memcpy(buf.data() + 4, e, sizeof e);
    return ::setxattr(path.c_str(), "system.posix_acl_access", buf.data(), buf.size(), 0) == 0;
}

std::string group_label(const config::Control& c) {
    return !c.read_group.empty() ? c.read_group : !c.group.empty() ? c.group : "(the daemon's group)";
}

} // namespace

struct ControlServer::Impl {
    asio::io_context& io;
    ControlHandler& handler;
    std::string version;
    std::unique_ptr<local::acceptor> acceptor;
    asio::steady_timer accept_timer;
    Clock::duration accept_backoff{};
    std::string path;
    struct stat sock_stat {}; // the socket file we made (close() removes only that one)
    int dir_lock = -1;
    config::Control cfg;
    Gids gids;
    std::set<std::shared_ptr<Session>> sessions;
    std::deque<std::weak_ptr<Session>> parked; // waiting for the next tick, first in line first
    ControlStats st;
    uint64_t seq = 0, next_session = 1;
    std::size_t queued_total = 0;
    Clock::duration tick_used{};
    bool status_valid = false;
    json::value status_cache;
    std::size_t freed = 0;    // bytes released by clients since the last trim
    bool closing_all = false; // close(): pending deferred requests die with the daemon
    Clock::time_point last_trim{};

    Impl(asio::io_context& i, ControlHandler& h, std::string v)
        : io(i), handler(h), version(std::move(v)), accept_timer(i) {}
    void accept();
    void on_accept(local::socket s);
    // 0 = refused, 1 = read only, 2 = control
    int access_for(const PeerCred& p) const {
        if (p.uid == 0 || p.uid == ::geteuid()) return 2;
        if (gids.have_control ? p.member(gids.control) : p.member(::getegid())) return 2;
        if (gids.have_read && p.member(gids.read)) return 1;
        return 0;
    }
    gid_t owner_gid() const {
        return gids.have_read ? gids.read : gids.have_control ? gids.control : ::getegid();
    }
    // Whether a client with `queued` bytes waiting must wait: all clients together are over the
    // budget and it is one of those holding it (a client with nothing queued is never stuck).
    bool over_budget(std::size_t queued) const { return queued > 0 && queued_total > global_budget; }
    // The status object, built at most once per tick (and after each change).
    const json::value& status() {
        if (!status_valid) {
            status_cache = handler.status_json();
            status_valid = true;
        }
        return status_cache;
    }
};

struct ControlServer::Session : std::enable_shared_from_this<ControlServer::Session> {
    Impl& srv;
    local::socket sock;
    uint64_t id;
    PeerCred peer;
    int access = 0;
    // input: bytes read, `in_pos` the start of the first unhandled line
    std::string in;
    std::size_t in_pos = 0;
    std::array<char, read_chunk> rd{};
    bool reading = false, eof = false;
    // output: lines waiting, the first written up to `out_off`
    std::deque<std::string> out;
    std::size_t out_off = 0, queued = 0;
    std::vector<asio::const_buffer> wbufs;
    bool writing = false;
    bool closing = false; // close once the queue is written
    bool closed = false;
    bool parked = false;
    bool awaiting = false; // a deferred reply is owed: read nothing more until it is sent
    uint64_t answered = 0; // deferred replies sent
    int handled_tick = 0;
    double rate_hz = 0; // subscription, 0 = none
    Clock::duration period{};
    Clock::time_point next_event{}, last_request{}, last_progress{};
    uint64_t hold_mark = 0; // this connection's position in the held meters

    Session(Impl& s, local::socket so, uint64_t i, PeerCred p, int a)
        : srv(s), sock(std::move(so)), id(i), peer(std::move(p)), access(a) {
        last_request = last_progress = Clock::now();
    }

    void start() {
        send(control::hello_line(srv.version, access == 2), true);
        pump();
    }

    bool may_handle() const {
        return !awaiting && handled_tick < per_tick_requests && queued < pause_bytes &&
               !srv.over_budget(queued) && srv.tick_used < tick_budget;
    }

    // Waits for the next tick. A client that got nothing done this tick (one that asks now and
    // then, e.g. `earshot panic` during a flood) goes first in line, before the busy ones.
    void park() {
        if (parked) return;
        parked = true;
        ++srv.st.paused;
        if (handled_tick == 0)
            srv.parked.push_front(weak_from_this());
        else
            srv.parked.push_back(weak_from_this());
    }

    // Handles the complete lines read so far (as far as the limits allow), then reads more.
    void pump() {
        if (closed) return;
        auto self = shared_from_this(); // handle() may close and drop this session
        while (!closing && !closed && !awaiting) {
            const std::size_t nl = in.find('\n', in_pos);
            if (nl == std::string::npos) break;
            if (nl - in_pos > control::max_line) {
                too_long();
                break;
            }
            if (!may_handle()) {
                park();
                return;
            }
            std::size_t end = nl;
            while (end > in_pos && in[end - 1] == '\r') --end;
            const std::string line = in.substr(in_pos, end - in_pos);
            in_pos = nl + 1;
            ++handled_tick;
            last_request = Clock::now();
            if (!line.empty()) {
                handle(line);
                srv.tick_used += Clock::now() - last_request;
            }
        }
        if (closed) return;
        if (in_pos > 0) {
            in.erase(0, in_pos);
            in_pos = 0;
        }
        if (in.empty() && in.capacity() > 2 * read_chunk) std::string().swap(in); // give it back
        if (closing) {
            maybe_close();
            return;
        }
        if (in.size() > control::max_line) {
            too_long();
            return;
        }
        if (awaiting) {
            // Nothing is handled until the deferred reply is out (deferred_reply() resumes), but
            // reading goes on a little, to notice a client that goes away meanwhile.
            if (!eof && !reading && in.size() < pause_bytes) start_read();
            return;
        }
        if (eof) {
            closing = true; // everything read has been answered; close once it is written
            maybe_close();
            return;
        }
        if (reading) return;
        if (!may_handle()) {
            park();
            return;
        }
        start_read();
    }

    void start_read() {
        reading = true;
        auto self = shared_from_this();
        sock.async_read_some(asio::buffer(rd), [self](const boost::system::error_code& ec, std::size_t n) {
            self->reading = false;
            if (self->closed) return;
            if (ec == asio::error::eof) {
                self->eof = true;
                if (!self->in.empty() && self->in.back() != '\n')
                    self->in += '\n'; // a last unterminated line
                if (self->awaiting && self->hung_up()) {
                    self->shutdown(); // gone, not just done sending: the deferred request is abandoned
                    return;
                }
            } else if (ec) {
                self->shutdown();
                return;
            }
            self->in.append(self->rd.data(), n);
            self->pump();
        });
    }

    // Whether the peer closed its socket (POLLHUP), not only its sending side (shutdown(SHUT_WR)
    // by a client that still waits for its replies, e.g. socat).
    bool hung_up() {
        pollfd p{sock.native_handle(), POLLIN, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & POLLHUP);
    }

    void too_long() {
        ++srv.st.errors;
        send(control::reply_error(nullptr, control::code::line_too_long,
                                  "request line longer than " + std::to_string(control::max_line) +
                                      " bytes; closing"),
             true);
        closing = true;
        maybe_close();
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
        const bool ro = control::read_only(r.cmd, r.cmd == control::Command::scene ? action : "");
        if (!ro && access < 2) {
            ++srv.st.errors;
            send(
                control::reply_error(r.id, control::code::permission_denied,
                                     std::string("'") + control::command_name(r.cmd) +
                                         (r.cmd == control::Command::scene ? std::string(" ") + action : "") +
                                         "' changes the mix: uid " + std::to_string(peer.uid) +
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
                // `scene` changes the mix except for its `list` action.
                e["read_only"] = control::read_only(c, c == control::Command::scene ? "change" : "");
                if (c == control::Command::scene) e["read_only_actions"] = json::array{"list"};
                a.push_back(std::move(e));
            }
            json::object o;
            o["protocol"] = control::protocol_version;
            o["commands"] = std::move(a);
            o["access"] = access == 2 ? "control" : "read";
            send(control::reply_ok(r.id, std::move(o)), true);
            return;
        }
        case control::Command::status: {
            json::value v = srv.status();
            srv.handler.hold_meters(v, hold_mark);
            send(control::reply_ok(r.id, std::move(v)), true);
            return;
        }
        case control::Command::subscribe: {
            rate_hz = r.rate_hz;
            period =
                std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_hz));
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
            const uint64_t before = answered;
            std::weak_ptr<Session> weak = shared_from_this();
            const ControlHandler::Reply later = [weak](const std::string& reply) {
                if (auto self = weak.lock()) self->deferred_reply(reply);
            };
            std::string reply = srv.handler.handle(r, ControlHandler::Peer{peer.uid, id}, later);
            if (!ro) srv.status_valid = false; // the next status shows the change
            if (!reply.empty())
                send(std::move(reply), true);
            else if (answered == before)
                awaiting = true;
        } catch (const std::exception& e) {
            ++srv.st.errors;
            send(control::reply_error(r.id, control::code::internal, e.what()), true);
        }
    }

    void deferred_reply(const std::string& line) {
        ++answered;
        send(line, true);
        if (!awaiting) return; // answered within handle()
        awaiting = false;
        // Not from here: this runs inside the handler (maybe inside another client's request).
        auto self = shared_from_this();
        asio::post(srv.io, [self] { self->pump(); });
    }

    // Whether an event would be sent now (the client is keeping up).
    bool wants_event() const {
        return !closed && !closing && queued <= event_skip_bytes && !srv.over_budget(queued);
    }

    // Queues a line. Replies are always queued (reading pauses while the client is behind);
    // events are skipped when the client is behind.
    bool send(std::string line, bool reply) {
        if (closed) return false;
        if (!reply && !wants_event()) {
            ++srv.st.events_dropped;
            return false;
        }
        if (queued + line.size() > max_queued) {
            ++srv.st.slow_disconnects;
            log::warn_limited("control-slow",
                              "control socket: uid %u does not read its replies; disconnected",
                              static_cast<unsigned>(peer.uid));
            shutdown();
            return false;
        }
        if (out.empty()) last_progress = Clock::now();
        line += '\n';
        queued += line.size();
        srv.queued_total += line.size();
        out.push_back(std::move(line));
        write();
        return true;
    }

    void write() {
        if (writing || out.empty() || closed) return;
        wbufs.clear();
        for (auto it = out.begin(); it != out.end() && wbufs.size() < 32; ++it)
            wbufs.push_back(it == out.begin() ? asio::buffer(*it) + out_off : asio::buffer(*it));
        writing = true;
        auto self = shared_from_this();
        sock.async_write_some(
            wbufs, [self](const boost::system::error_code& ec, std::size_t n) { self->written(ec, n); });
    }

    void written(const boost::system::error_code& ec, std::size_t n) {
        writing = false;
        if (closed) return;
        if (ec) {
            shutdown();
            return;
        }
        last_progress = Clock::now();
        while (n > 0 && !out.empty()) {
            const std::size_t left = out.front().size() - out_off;
            if (n < left) {
                out_off += n;
                break;
            }
            n -= left;
            queued -= out.front().size();
            srv.queued_total -= out.front().size();
            out.pop_front();
            out_off = 0;
        }
        write();
        maybe_close();
        if (parked && !closed && may_handle()) pump(); // behind no more
    }

    void maybe_close() {
        if (closing && out.empty() && !writing) shutdown();
    }

    void shutdown() {
        if (closed) return;
        closed = true;
        auto self = shared_from_this();
        srv.queued_total -= queued;
        srv.freed += queued + in.capacity() + read_chunk;
        queued = 0;
        out.clear();
        boost::system::error_code ec;
        sock.shutdown(local::socket::shutdown_both, ec);
        sock.close(ec);
        srv.sessions.erase(self);
        if (awaiting) {
            awaiting = false;
            if (!srv.closing_all) srv.handler.abandoned(id);
        }
    }
};

void ControlServer::Impl::accept() {
    if (!acceptor) return;
    acceptor->async_accept([this](const boost::system::error_code& ec, local::socket s) {
        if (ec == asio::error::operation_aborted || !acceptor) return;
        if (ec) {
            // EMFILE, ENFILE, ENOBUFS ...: the pending connection stays in the backlog; retry
            // after a pause instead of spinning on the same error.
            accept_backoff = accept_backoff == Clock::duration{}
                                 ? std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(10))
                                 : std::min<Clock::duration>(2 * accept_backoff, std::chrono::seconds(1));
            log::warn_limited("control-accept", "control socket: accept: %s (retrying in %.0f ms)",
                              ec.message().c_str(),
                              std::chrono::duration<double, std::milli>(accept_backoff).count());
            accept_timer.expires_after(accept_backoff);
            accept_timer.async_wait([this](const boost::system::error_code& e) {
                if (!e) accept();
            });
            return;
        }
        accept_backoff = {};
        on_accept(std::move(s));
        accept();
    });
}

void ControlServer::Impl::on_accept(local::socket s) {
    ++st.accepted;
    PeerCred pc;
    const bool known = peer_cred(s.native_handle(), pc);
    const int acc = known ? access_for(pc) : 0;
    auto refuse = [&](const char* code, const std::string& why) {
        ++st.refused;
        // Best effort, non-blocking: tell it why, then close.
        const std::string msg = control::reply_error(nullptr, code, why) + "\n";
        [[maybe_unused]] const ssize_t w =
            ::send(s.native_handle(), msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        boost::system::error_code e2;
        s.close(e2);
    };
    if (acc == 0) {
        refuse(control::code::permission_denied,
               "uid " + std::to_string(pc.uid) +
                   " may not use this socket (not in control.group or control.read_group)");
        return;
    }
    const int total = static_cast<int>(sessions.size());
    int same_uid = 0;
    for (const auto& x : sessions) same_uid += x->peer.uid == pc.uid;
    const int maxc = cfg.max_clients;
    const int reserved = reserved_slots(maxc);
    const std::string limit = "too many clients (control.max_clients = " + std::to_string(maxc) + ")";
    if (pc.uid == 0 || pc.uid == ::geteuid()) {
        if (total >= maxc + emergency_slots) return refuse(control::code::too_many_clients, limit);
    } else if (acc == 2) {
        if (total >= maxc) return refuse(control::code::too_many_clients, limit);
        if (same_uid >= maxc - reserved)
            return refuse(control::code::too_many_clients,
                          "uid " + std::to_string(pc.uid) + " has " + std::to_string(same_uid) +
                              " connections; the last " + std::to_string(reserved) + " are kept for others");
    } else {
        if (total >= maxc - reserved)
            return refuse(control::code::too_many_clients,
                          limit + "; the last " + std::to_string(reserved) + " are kept for control.group");
        if (same_uid >= reader_per_uid(maxc))
            return refuse(control::code::too_many_clients,
                          "uid " + std::to_string(pc.uid) + " has " + std::to_string(same_uid) +
                              " connections, the most a read-only user may have");
    }
    auto sess = std::make_shared<Session>(*this, std::move(s), next_session++, std::move(pc), acc);
    sessions.insert(sess);
    sess->start();
}

ControlServer::ControlServer(asio::io_context& io, ControlHandler& handler, std::string version)
    : _p(std::make_unique<Impl>(io, handler, std::move(version))) {}

ControlServer::~ControlServer() {
    close();
}

bool ControlServer::check_config(const config::Control& cfg, std::string& err) {
    Gids g;
    if (!resolve(cfg, g, err)) return false;
    // The socket goes to read_group if set, else group: chown() needs root or membership.
    const bool by_read = g.have_read;
    if (by_read || g.have_control) {
        const gid_t owner = by_read ? g.read : g.control;
        const std::string& name = by_read ? cfg.read_group : cfg.group;
        if (!may_chown_to(owner)) {
            const std::string me = user_name(::geteuid());
            err = std::string(by_read ? "control.read_group" : "control.group") + ": the daemon's user (" +
                  me + ") must be a member of group '" + name +
                  "' to give it the control socket (usermod -aG " + name + " " + me + ", or 'm " + me + " " +
                  name + "' in sysusers.d; docs/control-protocol.md)";
            return false;
        }
    }
    return true;
}

bool ControlServer::open(const std::string& path, const config::Control& cfg, std::string& err) {
    Impl& s = *_p;
    close();
    if (!check_config(cfg, err) || !resolve(cfg, s.gids, err)) return false;
    s.cfg = cfg;
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
        err = path + ": path too long for a Unix socket";
        return false;
    }
    const std::string dir = dir_of(path);
    // One daemon per runtime directory: the lock lives as long as the socket.
    s.dir_lock = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s.dir_lock < 0) {
        err = dir + ": " + std::strerror(errno);
        return false;
    }
    auto fail = [&](const std::string& e) {
        err = e;
        ::close(s.dir_lock);
        s.dir_lock = -1;
        return false;
    };
    if (::flock(s.dir_lock, LOCK_EX | LOCK_NB) != 0)
        return fail(dir + ": another earshotd uses this runtime directory; not starting a second one");
    struct stat old {};
    if (::lstat(path.c_str(), &old) == 0) {
        if (!S_ISSOCK(old.st_mode)) return fail(path + " exists and is not a socket; not replacing it");
        if (socket_answers(path))
            return fail(path + ": another earshotd answers on this socket; not replacing it");
        // A stale socket of an earlier run: replaced atomically by the rename below.
    } else if (errno != ENOENT) {
        return fail(path + ": " + std::strerror(errno));
    }
    raise_nofile(cfg.max_clients);
    // Bind in a private directory (0700) and rename into place once the group and mode are set:
    // the socket is never reachable with the process's umask. Same length as "/control.sock".
    std::string tmpl = dir + "/.cs-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
        return fail(dir + ": cannot create a private directory: " + std::strerror(errno));
    const std::string tmp_sock = tmpl + "/s";
    auto cleanup = [&] {
        ::unlink(tmp_sock.c_str());
        ::rmdir(tmpl.c_str());
    };
    if (tmp_sock.size() >= sizeof(sockaddr_un::sun_path)) {
        cleanup();
        return fail(tmp_sock + ": path too long for a Unix socket");
    }
    try {
        s.acceptor = std::make_unique<local::acceptor>(s.io);
        s.acceptor->open(local());
        s.acceptor->bind(local::endpoint(tmp_sock));
        s.acceptor->listen(128);
    } catch (const std::exception& e) {
        s.acceptor.reset();
        cleanup();
        return fail(path + ": " + e.what());
    }
    const gid_t owner = s.owner_gid();
    if (::chown(tmp_sock.c_str(), static_cast<uid_t>(-1), owner) != 0 ||
        ::chmod(tmp_sock.c_str(), 0660) != 0) {
        const std::string e = path + ": cannot set group/mode: " + std::strerror(errno);
        s.acceptor.reset();
        cleanup();
        return fail(e);
    }
    if (!set_control_acl(tmp_sock, s.gids))
        log::warn(
            "%s: no ACL for control.group '%s' (%s): its members must also be in control.read_group '%s' "
            "to connect",
            path.c_str(), cfg.group.c_str(), std::strerror(errno), cfg.read_group.c_str());
    if (::rename(tmp_sock.c_str(), path.c_str()) != 0) {
        const std::string e = path + ": cannot set group/mode: " + std::strerror(errno);
        s.acceptor.reset();
        cleanup();
        return fail(e);
    }
    ::rmdir(tmpl.c_str());
    ::lstat(path.c_str(), &s.sock_stat);
    s.path = path;
    make_reachable(dir, owner, group_label(cfg));
    s.accept();
    return true;
}

bool ControlServer::reconfigure(const config::Control& cfg, std::string& err) {
    Impl& s = *_p;
    Gids g;
    if (!check_config(cfg, err) || !resolve(cfg, g, err)) return false;
    const gid_t before = s.owner_gid();
    s.gids = g;
    s.cfg = cfg;
    raise_nofile(cfg.max_clients);
    if (!s.path.empty()) {
        if (s.owner_gid() != before && ::chown(s.path.c_str(), static_cast<uid_t>(-1), s.owner_gid()) != 0)
            log::error("%s: cannot give the socket to group '%s': %s", s.path.c_str(),
                       group_label(cfg).c_str(), std::strerror(errno));
        if (!set_control_acl(s.path, s.gids))
            log::warn(
                "%s: no ACL for control.group '%s' (%s): its members must also be in control.read_group",
                s.path.c_str(), cfg.group.c_str(), std::strerror(errno));
        make_reachable(dir_of(s.path), s.owner_gid(), group_label(cfg));
    }
    // Existing connections keep only what the new settings allow.
    auto copy = s.sessions;
    for (const auto& sess : copy) {
        const int a = s.access_for(sess->peer);
        if (a == sess->access || sess->closed) continue;
        if (a == 0) {
            sess->send(control::reply_error(nullptr, control::code::permission_denied,
                                            "a config reload withdrew the access of uid " +
                                                std::to_string(sess->peer.uid) + "; closing"),
                       true);
            sess->closing = true;
            sess->maybe_close();
            continue;
        }
        sess->access = a;
        json::object d;
        d["access"] = a == 2 ? "control" : "read";
        sess->send(control::event_line("access", ++s.seq, d), true);
    }
    return true;
}

void ControlServer::close() {
    Impl& s = *_p;
    if (s.acceptor) {
        boost::system::error_code ec;
        s.acceptor->close(ec);
        s.acceptor.reset();
    }
    s.accept_timer.cancel();
    auto copy = s.sessions;
    s.closing_all = true;
    for (const auto& sess : copy) sess->shutdown();
    s.closing_all = false;
    s.sessions.clear();
    s.parked.clear();
    if (!s.path.empty()) {
        struct stat now {};
        // Only our own socket: never one that replaced it.
        if (::lstat(s.path.c_str(), &now) == 0 && now.st_ino == s.sock_stat.st_ino &&
            now.st_dev == s.sock_stat.st_dev)
            ::unlink(s.path.c_str());
    }
    s.path.clear();
    if (s.dir_lock >= 0) ::close(s.dir_lock);
    s.dir_lock = -1;
}

void ControlServer::publish() {
    Impl& s = *_p;
    const auto now = Clock::now();
    s.tick_used = {};
    s.status_valid = false;
    for (const auto& sess : s.sessions) sess->handled_tick = 0;
    // Clients paused by the limits of the last tick go on, in the order they were paused; those
    // the time budget does not reach stay first in line for the next tick (no starvation).
    std::deque<std::weak_ptr<Session>> parked;
    parked.swap(s.parked);
    std::size_t k = 0;
    for (; k < parked.size() && s.tick_used < tick_budget; ++k)
        if (auto sess = parked[k].lock()) {
            sess->parked = false;
            sess->pump();
        }
    if (k < parked.size())
        s.parked.insert(s.parked.begin(), parked.begin() + static_cast<std::ptrdiff_t>(k), parked.end());
    // Idle and stalled connections.
    auto copy = s.sessions; // send() and shutdown() may drop sessions
    for (const auto& sess : copy) {
        if (sess->closed) continue;
        if (!sess->out.empty() && now - sess->last_progress > stall_timeout) {
            ++s.st.slow_disconnects;
            log::warn_limited("control-slow", "control socket: uid %u took nothing for %lld s; disconnected",
                              static_cast<unsigned>(sess->peer.uid),
                              static_cast<long long>(
                                  std::chrono::duration_cast<std::chrono::seconds>(stall_timeout).count()));
            sess->shutdown();
        } else if (sess->rate_hz <= 0 && !sess->awaiting && !sess->closing && sess->out.empty() &&
                   now - sess->last_request > idle_timeout) {
            ++s.st.idle_disconnects;
            sess->send(control::reply_error(nullptr, control::code::idle_timeout,
                                            "no request for 60 s and no subscription; closing"),
                       true);
            sess->closing = true;
            sess->maybe_close();
        }
    }
    // Subscription events: one status object per tick, the held meters per subscriber.
    bool due = false;
    for (const auto& sess : copy)
        due = due || (sess->rate_hz > 0 && !sess->closed && now >= sess->next_event);
    if (due) {
        ++s.seq;
        std::map<uint64_t, std::pair<std::string, uint64_t>> by_mark; // old mark -> line, new mark
        for (const auto& sess : copy) {
            if (sess->rate_hz <= 0 || sess->closed || now < sess->next_event) continue;
            // On the period's grid (no drift from the 20 ms tick); after a stall, no burst.
            sess->next_event += sess->period;
            if (sess->next_event <= now) sess->next_event = now + sess->period;
            if (!sess->wants_event()) {
                ++s.st.events_dropped; // its meters keep holding until it gets one
                continue;
            }
            auto it = by_mark.find(sess->hold_mark);
            if (it == by_mark.end()) {
                json::value v = s.status();
                uint64_t mark = sess->hold_mark;
                s.handler.hold_meters(v, mark);
                it = by_mark
                         .emplace(sess->hold_mark,
                                  std::make_pair(control::event_line("status", s.seq, v), mark))
                         .first;
            }
            sess->hold_mark = it->second.second;
            sess->send(it->second.first, false);
        }
    }
    // Memory of clients that went away goes back to the system (glibc keeps it otherwise).
#if defined(__GLIBC__)
    if (s.freed > (1u << 20) && now - s.last_trim > std::chrono::seconds(1)) {
        s.freed = 0;
        s.last_trim = now;
        ::malloc_trim(0);
    }
#endif
}

ControlStats ControlServer::stats() const {
    ControlStats st = _p->st;
    st.clients = _p->sessions.size();
    st.queued_bytes = _p->queued_total;
    return st;
}

} // namespace earshot::daemon
