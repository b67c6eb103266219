// earshot::daemon::JackMidiGuard — earshotd's own small JACK client beside the RtMidi clients of
// the `api: jack` controllers (docs/midi.md, "SysEx and RtMidi's JACK input" and "Hot-plug").
// Implemented in src/daemon/jack_backend.cpp, the one translation unit that includes JACK.
//
// Two jobs for MidiHub:
//  1. The graph. RtMidi cannot tell whether its port is still connected to the source; this
//     client asks JACK (a port exists, two ports are connected, connect them), and its
//     port-registration, port-connect and client-registration callbacks raise a flag so the hub
//     looks at once (take_graph_changed(), every control tick) instead of at its 1 s poll.
//  2. The SysEx guard. Per JACK controller (a slot) it has an input "<id>-watch", connected to
//     the same source as RtMidi's input, and an output "<id>-eox", connected to RtMidi's input;
//     its process callback runs a midi::SysexGuard per slot (a lone F7 and the dropped channel
//     messages again when a SysEx was cut: see sysex_guard.hpp).
//
// Thread contract: every method on the control thread; the process callback runs the guards on
// this client's JACK thread (no allocation, no lock, no system call: jack_port_get_buffer and the
// jack_midi_* calls only); the other JACK callbacks only set an atomic.
//
//   JackMidiGuard g;
//   if (g.open("earshot-midi-" + pid, err)) g.add(0, "desk", err);
//   g.connect(source, g.watch_port(0)); g.connect(g.eox_port(0), rtmidi_in);
//   every tick: if (g.take_graph_changed()) check the connections;
#pragma once

#include "earshot/midi/sysex_guard.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace earshot::daemon {

class JackMidiGuard {
public:
    static constexpr std::size_t max_slots = 32; // as many as controllers

    JackMidiGuard();
    ~JackMidiGuard();
    JackMidiGuard(const JackMidiGuard&) = delete;
    JackMidiGuard& operator=(const JackMidiGuard&) = delete;

    /// Opens and activates the client (never starts a server); false and err on failure.
    bool open(const std::string& client_name, std::string& err);
    /// Deactivates and closes it (every slot's ports go with it).
    void close();
    bool is_open() const noexcept;
    std::string client_name() const;

    /// Registers slot's ports "<name>-watch" (MIDI in) and "<name>-eox" (MIDI out).
    bool add(std::size_t slot, const std::string& name, std::string& err);
    /// Unregisters them (after the process callback has let go of them).
    void remove(std::size_t slot);
    bool has(std::size_t slot) const noexcept;
    /// Full port names ("earshot-midi-123:desk-watch"); empty when the slot has none.
    std::string watch_port(std::size_t slot) const;
    std::string eox_port(std::size_t slot) const;
    /// The slot's guard: resend on/off, reset, counters.
    midi::SysexGuard* guard(std::size_t slot) noexcept;

    /// Graph queries and changes, on any ports of the server.
    bool port_exists(const std::string& port) const;
    /// Whether `a` and `b` are connected (either direction).
    bool connected(const std::string& a, const std::string& b) const;
    /// Connects src -> dst; true when they are connected afterwards (also when they already were).
    bool connect(const std::string& src, const std::string& dst);
    /// Ports connected to `port`.
    std::vector<std::string> connections(const std::string& port) const;
    /// True once after any port (un)registration, (dis)connection or client (un)registration.
    bool take_graph_changed() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> _p;
};

} // namespace earshot::daemon
