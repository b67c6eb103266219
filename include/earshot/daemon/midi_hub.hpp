// earshot::daemon::MidiHub — the RtMidi ports of the configured MIDI controllers (docs/midi.md).
//
// Per controller: an RtMidiIn on the configured API (RtMidi::UNIX_JACK or RtMidi::LINUX_ALSA)
// opened on the first source port its `port` rule selects, and an RtMidiOut on the port its
// `feedback` rule selects (when given). Every RtMidi object has its own client name, unique per
// process and machine ("earshot-<controller id>-<pid>", "...-fb" for feedback; jack-testing.md
// pitfall 1), and our own ports are never opened as sources.
//
// The input callback runs on RtMidi's thread (for JACK: the RtMidi client's process thread,
// SCHED_FIFO when jackd runs with -R). It feeds the message to the controller's midi::Decoder
// with feed_message() (one RtMidi message is one whole JACK or ALSA event: nothing carries over)
// into a fixed-size midi::EventQueue and, only when the control thread had taken every earlier
// event (it may be asleep), writes 8 bytes to an eventfd (EFD_NONBLOCK): no allocation, no lock,
// no logging, never blocks. That write is a system call on RtMidi's JACK thread (not earshotd's
// audio thread, which never sees MIDI); it is what wakes the control thread at once instead of
// at its next 20 ms tick, so an event changes the audio in the next period (SPEC §6). Before our
// callback, RtMidi itself appends the event's bytes to a std::vector it reuses, which allocates
// when an event is longer than any before it (docs/midi.md, "The callback").
//
// JACK controllers get earshotd's own JACK client "earshot-midi-<pid>" (JackMidiGuard) beside
// their RtMidi clients: it checks that our input is still connected to its source, and runs the
// SysEx guard (midi::SysexGuard) that keeps RtMidi's JACK input from going deaf after a cut SysEx.
//
// Hot-plug: tick() every control tick polls the ports once a second, and at once when JACK's
// graph changed (a port came or went, a connection was made or broken). A source that
// disappeared is closed (the RtMidi object is destroyed, so no callback can still run) and
// reopened when it returns; a JACK input that lost its connection (a replug faster than the poll,
// a jack_disconnect) is reopened; a feedback output that lost its connection is reconnected.
// take_replugged() then reports the controller, and the daemon resets its Mapper and resends
// every LED (Feedback::resync). An API that cannot be opened (ALSA without /dev/snd/seq, JACK
// without a server) is logged, rate-limited, and retried with back-off (1 s doubling to 60 s).
//
// Thread contract: every method on the control thread (the io_context's thread); the RtMidi
// callback on RtMidi's thread touches only the Decoder, the EventQueue, two counters and the
// eventfd.
//
//   MidiHub hub(io);
//   hub.configure(cfg.controllers);
//   hub.on_events([&] { midi::MidiEvent e; for (c...) while (hub.pop(c, e)) handle(c, e); });
//   every tick: hub.tick(jack_connected); while (hub.take_replugged(c)) resync(c);
#pragma once

#include "earshot/config/config.hpp"
#include "earshot/midi/event.hpp"
#include "earshot/midi/feedback.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace earshot::daemon {

/// Capacity of each controller's event queue (events beyond it are dropped and counted).
inline constexpr std::size_t midi_queue_capacity = 1024;

class MidiHub {
public:
    explicit MidiHub(boost::asio::io_context& io);
    ~MidiHub();
    MidiHub(const MidiHub&) = delete;
    MidiHub& operator=(const MidiHub&) = delete;

    /// Sets the controllers, in config order (their indices are the `c` below). A controller whose
    /// id, api, port and feedback rules did not change keeps its open ports and counters.
    void configure(const std::vector<config::Controller>& controllers);
    /// The function the control thread runs when events are waiting.
    void on_events(std::function<void()> fn);
    /// Takes controller c's oldest waiting event.
    bool pop(std::size_t c, midi::MidiEvent& e);
    /// Sends messages to controller c's feedback port; nothing when it is not open.
    void send(std::size_t c, const std::vector<midi::MidiMessage>& msgs);
    /// Every control tick: poll() once a second and when JACK's graph changed; notices a SysEx
    /// guard whose replay does not match RtMidi.
    void tick(bool jack_up);
    /// Hot-plug: lists the ports, closes sources that disappeared, opens the ones that match,
    /// checks the JACK connections. JACK controllers are handled only while `jack_up`
    /// (earshotd is connected to the server).
    void poll(bool jack_up);
    /// A controller whose input or feedback port was (re)opened since the last call.
    bool take_replugged(std::size_t& c);
    /// The JACK server went away: closes every JACK MIDI client (poll() reopens them).
    void drop_jack();

    std::size_t size() const noexcept;
    bool input_open(std::size_t c) const noexcept;
    bool feedback_open(std::size_t c) const noexcept;
    /// Counters and port names of controller c for status.json (`midi.controllers[]`).
    boost::json::object status(std::size_t c) const;

    /// The clock events are stamped with: steady clock in µs (no system call: vDSO).
    static uint64_t now_us() noexcept;

    struct Port;

private:
    void open_input(Port& p, const std::vector<std::string>& sources);
    void open_feedback(Port& p, const std::vector<std::string>& dests);
    void sync_guard();
    void check_jack(std::size_t c, const std::vector<std::string>& sources);
    std::size_t index_of(const Port& p) const noexcept;
    void arm();

    struct Impl;
    std::unique_ptr<Impl> _p;
};

} // namespace earshot::daemon
