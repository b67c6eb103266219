// earshot::daemon::JackBackend — the JACK client of earshotd: the only code that includes JACK.
//
// It maps JACK ports to engine slots and runs Engine::process() in the JACK process callback. The
// engine and the port table the RT thread uses travel together in one immutable `Route`, built off
// the RT thread and published with one atomic store; an old route is freed (and removed ports are
// unregistered) only after the RT thread has started a cycle with a newer one, or when the client
// is not active. So ports can come and go, and the engine can be replaced (sample-rate change,
// reconnect), without a lock on the RT thread.
//
// JACK's other callbacks (shutdown, xrun, sample rate, buffer size, freewheel, port registration)
// only set atomics or push onto fixed-size lock-free queues; the daemon's control loop reads them
// with the take_*() calls. The latency callback reports each output's own limiter look-ahead on
// top of the latency of what feeds it. libjack's messages from JACK's threads are queued too and
// printed by log_deferred() on the control thread.
//
// Thread contract: every method is [control] except where marked; callbacks run on JACK's threads.
//
//   JackBackend b;
//   if (!b.open("earshot", err)) ...;            // never starts a server (JackNoStartServer)
//   b.set_ports(specs, &engine);                 // register, route, (un)publish
//   b.activate(err); b.connect_all();
//   while (...) { if (b.take_ports_changed()) b.connect_new_ports(); b.reap(); ... }
#pragma once

#include "earshot/config/config.hpp"
#include "earshot/engine/engine.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace earshot::daemon {

/// One of earshot's ports.
struct PortSpec {
    std::string name;   // short name: the input id, "<musician>" (mono) or "<musician>_L"/"_R"
    bool input = false; // true: a band input (JACK input port); false: a musician output
    int slot = -1;      // engine slot
    int latency = 0;    // frames added between the inputs and this output (outputs only)
    std::vector<config::ConnectRule> connect; // inputs: sources; outputs: destinations
};

/// A change of the freewheel state at an engine sample clock value.
struct FreewheelEdge {
    uint64_t engine_sample = 0; // Engine::counters().samples at the first cycle in the new state
    bool on = false;
};

struct RtInfo {
    bool server_realtime = false; // jack_is_realtime()
    int policy = 0;               // the process thread's SCHED_* policy
    int priority = 0;             // and priority
};

class JackBackend {
public:
    JackBackend();
    ~JackBackend();
    JackBackend(const JackBackend&) = delete;
    JackBackend& operator=(const JackBackend&) = delete;

    /// Opens the client (JackNoStartServer | JackUseExactName) on the server of JACK_DEFAULT_SERVER.
    bool open(const std::string& client_name, std::string& err);
    /// Activates the process callback.
    bool activate(std::string& err);
    /// Deactivates and closes (also after the server went away). Idempotent.
    void close();
    bool is_open() const noexcept;
    bool is_active() const noexcept;

    /// The full client name ("earshot") and the server's rate and period.
    std::string client_name() const;
    uint32_t sample_rate() const noexcept;
    uint32_t buffer_size() const noexcept;

    /// Makes `specs` the set of earshot's ports and `eng` the engine the RT thread runs: registers
    /// new ports, publishes the new route, and unregisters ports no longer listed once the RT thread
    /// has moved on (reap()). A port whose registration fails is reported in `err` (false) but the
    /// others are still used. If the client is active, new ports get their connect rules applied,
    /// and a port whose rules changed gets the new ones: it is connected to what they match now,
    /// and disconnected from what only its old rules matched (hand-made connections stay).
    bool set_ports(const std::vector<PortSpec>& specs, engine::Engine* eng, std::string& err);
    /// Connects every port by its rules to every matching existing port (start-up, reconnect).
    void connect_all();
    /// Applies the rules to the ports registered on the server since the last call (from the
    /// registration callback's events, so none is missed however fast it comes and goes).
    void connect_new_ports();
    /// Retries connections that failed (the other client was not active yet); call a few times a
    /// second. Gives up on one after max_connect_tries.
    void retry_connections();
    static constexpr int max_connect_tries = 40;
    /// Frees routes and unregisters ports the RT thread no longer uses.
    void reap();
    /// Whether the RT thread has started a cycle with the newest route (or none is running).
    bool route_is_live() const noexcept;

    // Events from JACK's threads, each reported once.
    bool take_shutdown(std::string& reason);
    bool take_ports_changed() noexcept;
    bool take_rate_changed(uint32_t& rate) noexcept;
    bool take_buffer_changed(uint32_t& frames) noexcept;
    bool pop_freewheel_edge(FreewheelEdge& e) noexcept;

    uint64_t xruns() const noexcept;
    uint64_t cycles() const noexcept;    // process callbacks run
    uint64_t rt_errors() const noexcept; // cycles with no usable engine (outputs silenced)
    bool freewheeling() const noexcept;
    float cpu_load() const; // jack_cpu_load, percent
    RtInfo rt_info() const;
    /// Full names of the ports connected to one of ours ("" port name = none).
    std::vector<std::string> connections(const std::string& short_name) const;
    /// Prints libjack's messages that JACK's threads queued. [control]
    static void log_deferred();

private:
    struct Impl;
    std::unique_ptr<Impl> _p;
};

} // namespace earshot::daemon
