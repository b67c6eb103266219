// earshot::daemon::Daemon — earshotd's control loop (docs/daemon.md).
//
// One control thread (Boost.Asio io_context) owns the config, the live mix, the engine, the JACK
// backend and the dosimetry. Every 20 ms it drains the engine's dose and meter frames, turns
// JACK's events (shutdown, xruns, rate/period changes, new ports, freewheel) into actions and
// logs, retries the JACK server with back-off while it is away, writes <runtime-dir>/status.json
// and pings the systemd watchdog while the RT cycle advances. SIGHUP reloads the config, SIGTERM
// and SIGINT fade the mixes out, flush the logs and exit 0.
//
// Threads: this control thread; JACK's process thread (Engine::process via JackBackend); JACK's
// notification thread (callbacks that set atomics); RtMidi's threads (MidiHub); a short-lived
// helper that closes the JACK client at shutdown (so a frozen server cannot hang the stop).
// SIGTERM, SIGINT and SIGHUP are blocked in all of them and read by the control thread from a
// signalfd.
//
//   daemon::block_signals();                          // first thing in main(), before any thread
//   Daemon d(opts, config::load_file(opts.config_path));
//   return d.run();                                   // exit status
#pragma once

#include "earshot/config/config.hpp"
#include "earshot/config/loader.hpp"
#include "earshot/daemon/mix_state.hpp"

#include <memory>
#include <string>
#include <vector>

namespace earshot::daemon {

struct Options {
    std::string config_path = "/etc/earshot/earshot.yaml";
    std::string state_dir = "/var/lib/earshot";
    std::string runtime_dir = "/run/earshot";
    double status_interval_s = 0.25; // status.json refresh
    double retry_min_s = 0.5;        // JACK reconnect back-off: first wait ...
    double retry_max_s = 5.0;        // ... doubling up to this
    double jack_close_timeout_s = 2; // at shutdown: how long to wait for the server to let the client go
    bool lock_memory = true;         // mlockall when the limits allow it
    std::string client_name;         // overrides jack.client_name ("" = the config's); --client-name
};

/// Blocks the signals the daemon handles (SIGTERM, SIGINT, SIGHUP) in the calling thread. Call it
/// in main() before any thread exists: threads inherit the mask, so none of JACK's or RtMidi's
/// threads ever runs a signal handler; the control loop reads them from a signalfd.
void block_signals();

/// What the loader cannot check because it depends on this machine: the control socket's
/// groups exist. The errors carry file:line:col when the value is found in cfg.source.
/// [control thread]
std::vector<config::ConfigError> check_host(const config::Config& cfg);

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 64;     // EX_USAGE
constexpr int exit_cantcreat = 73; // EX_CANTCREAT: state or runtime dir not usable
constexpr int exit_config = 78;    // EX_CONFIG

class Daemon {
public:
    Daemon(Options opts, config::Config cfg);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// Runs until SIGTERM/SIGINT. Returns the exit status.
    int run();
    /// After run(): the JACK server did not answer at shutdown and its client(s) were abandoned.
    /// Destroying what is left (RtMidi's JACK clients too) would wait for that server again, so
    /// main() ends the process with _Exit() instead; logs and mix are already written.
    bool jack_abandoned() const noexcept;

    // Live mix changes (the control socket and MIDI drive these). Ramped, persisted.
    bool set_send(const std::string& musician, const std::string& input, const SendValue& v);
    bool set_master(const std::string& musician, double gain_db);

private:
    struct Impl;
    std::unique_ptr<Impl> _p;
};

} // namespace earshot::daemon
