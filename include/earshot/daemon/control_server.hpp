// earshot::daemon::ControlServer — the control socket (<runtime-dir>/control.sock): a Unix stream
// socket speaking the JSON-lines protocol of docs/control-protocol.md, served by Boost.Asio on the
// daemon's control thread (never the RT thread).
//
// Access: the socket file is mode 0660, owned by control.read_group if set, else control.group
// (else the daemon's group), with an ACL giving control.group rw when both are set; it is bound in
// a private directory and renamed into place, so it is never reachable with other permissions,
// and the runtime directory is made traversable (o+x). Each peer's uid, gid and groups come from
// the kernel (SO_PEERCRED, SO_PEERGROUPS; the user database only where SO_PEERGROUPS is missing):
// root, the daemon's own user and members of control.group may change things; members of
// control.read_group only read; anyone else gets a permission_denied line and is closed. One
// daemon per runtime directory (flock on it; a live socket at the path is never replaced).
//
// Limits (docs/control-protocol.md#robustness): at most control.max_clients connections, of which
// the last max(2, max_clients / 16) are kept for control peers, read-only peers get at most a
// quarter of the rest per uid, and root and the daemon's user 4 more; a connection without a
// subscription that sends nothing for 60 s is closed. A client's requests are not read while more
// than 64 KiB of replies wait for it, or while the clients with output waiting hold 8 MiB
// together; at most 8 requests per client and 10 ms of request handling per tick, clients that got
// nothing done first; a client that takes nothing for 60 s while output waits is disconnected.
// Subscription events are dropped (counted) for a client that is behind.
//
// Thread contract: the control thread (the io_context's thread) only.
#pragma once

#include "earshot/config/config.hpp"
#include "earshot/control/protocol.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace earshot::daemon {

class ControlHandler {
public:
    /// Sends a deferred reply, on the control thread (nothing if the client has gone).
    using Reply = std::function<void(const std::string& line)>;
    struct Peer {
        uid_t uid = static_cast<uid_t>(-1);
        uint64_t session = 0; // the connection, for abandoned()
    };
    virtual ~ControlHandler() = default;
    /// Executes a request the server does not answer itself (everything but ping, commands,
    /// status, subscribe and unsubscribe) and returns the reply line; or returns "" and answers
    /// through `later` exactly once (a request that waits: `learn`). The server reads no further
    /// request of that connection until then, so replies stay in request order.
    virtual std::string handle(const control::Request& r, const Peer& peer, const Reply& later) = 0;
    /// The connection `session` closed while its deferred request was unanswered: cancel it.
    virtual void abandoned(uint64_t session) = 0;
    /// The status object (the `status` command, subscription events), without the held meters.
    virtual boost::json::value status_json() = 0;
    /// Fills in the held meters of a status object from status_json() (peak_db_spl, limiter_gr_db,
    /// loudness_cap.gain_reduction_db): the maxima since `mark`, a consumer's own position (0 for a
    /// new consumer); advances `mark`. Each consumer thus sees every peak once.
    virtual void hold_meters(boost::json::value& status, uint64_t& mark) = 0;
};

struct ControlStats {
    uint64_t accepted = 0, refused = 0, requests = 0, errors = 0, events_dropped = 0, slow_disconnects = 0,
             idle_disconnects = 0, paused = 0;
    std::size_t clients = 0;
    std::size_t queued_bytes = 0; // replies and events waiting for clients, all together
};

class ControlServer {
public:
    /// Exit status when the socket is served by another live earshotd (EX_CANTCREAT).
    static constexpr int exit_in_use = 73;

    ControlServer(boost::asio::io_context& io, ControlHandler& handler, std::string version);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    /// Whether `cfg` can be served by this process: the groups exist, and the daemon may give the
    /// socket to its group (it is root or a member). False with `err`, which starts with the key
    /// ("control.read_group: ..."). Called by open(), reconfigure() and `earshotd --check-config`.
    static bool check_config(const config::Control& cfg, std::string& err);
    /// Locks the runtime directory, binds `path` (a stale socket is replaced; a live one, another
    /// daemon's, is not: false), sets its mode and group, and starts accepting. False with `err`
    /// on failure; `err` starts with "control." for a config problem.
    bool open(const std::string& path, const config::Control& cfg, std::string& err);
    /// Applies new control settings (a reload): the socket's group, max_clients, and the access of
    /// every open connection (a peer that lost access gets permission_denied and is closed; one
    /// whose access changed gets an `access` event). False with `err` (nothing changed).
    bool reconfigure(const config::Control& cfg, std::string& err);
    /// Closes every connection and the socket, and removes the file (if it is still ours).
    void close();
    /// Call every tick: sends the subscription events that are due, resumes paused clients,
    /// closes idle and stalled ones, returns freed memory.
    void publish();
    ControlStats stats() const;

    struct Session;

private:
    struct Impl;
    std::unique_ptr<Impl> _p;
};

} // namespace earshot::daemon
