// earshot::daemon::ControlServer — the control socket (<runtime-dir>/control.sock): a Unix stream
// socket speaking the JSON-lines protocol of docs/control-protocol.md, served by Boost.Asio on the
// daemon's control thread (never the RT thread).
//
// Access: the socket file is mode 0660, owned by control.read_group if set, else control.group
// (else the daemon's group). Each peer's uid is read with SO_PEERCRED: root, the daemon's own user
// and members of control.group may change things; members of control.read_group only read.
//
// Robustness: lines longer than control::max_line get an error and the connection is closed;
// a client that does not read its replies is disconnected once 1 MiB is queued for it; a
// subscriber that falls behind has events dropped (counted), never the daemon blocked; at most
// control.max_clients connections (more get an error line and are closed).
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
    /// Sends a reply line later, on the control thread (nothing if the client has gone).
    using Reply = std::function<void(const std::string& line)>;
    virtual ~ControlHandler() = default;
    /// Executes a request the server does not handle itself (everything but subscribe,
    /// unsubscribe, ping and commands) and returns the reply line; or returns "" and answers
    /// through `later` once (a request that waits, e.g. `learn` for the next control moved).
    virtual std::string handle(const control::Request& r, uid_t peer, const Reply& later) = 0;
    /// The status object (the `status` command, subscription events).
    virtual boost::json::value status_json() = 0;
};

struct ControlStats {
    uint64_t accepted = 0, refused = 0, requests = 0, errors = 0, events_dropped = 0, slow_disconnects = 0;
    std::size_t clients = 0;
};

class ControlServer {
public:
    ControlServer(boost::asio::io_context& io, ControlHandler& handler, std::string version);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    /// Binds `path` (a stale socket file is replaced), sets its mode and group, and starts
    /// accepting. False with `err` on failure (unknown group, bind error, ...).
    bool open(const std::string& path, const config::Control& cfg, std::string& err);
    /// Closes every connection and the socket, and removes the file.
    void close();
    /// Pushes status events to the subscribers that are due. Call often (every tick).
    void publish();
    ControlStats stats() const;

    struct Session;

private:
    struct Impl;
    std::unique_ptr<Impl> _p;
};

} // namespace earshot::daemon
