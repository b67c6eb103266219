// earshot::midi decoder — raw MIDI 1.0 bytes to MidiEvents, for the RtMidi callback.
//
// A streaming byte decoder (Decoder) and a whole-message helper (decode_message). Channel voice
// messages become MidiEvents; everything else is skipped and counted, never trusted:
//   - running status: data bytes after a complete channel message reuse its status (within one
//     delivery with feed_message(), across calls with feed());
//   - real-time bytes (0xF8-0xFF) may sit anywhere, even inside another message: ignored, counted;
//   - SysEx (0xF0 ... 0xF7) is skipped and counted, also when it is never terminated (a status
//     byte or finish() ends it);
//   - Note On with velocity 0 is a Note Off;
//   - a message cut short by a status byte is dropped (truncated) and the new status decoded;
//   - data bytes with no status to apply to (stray) are dropped and counted;
//   - system common messages (0xF1-0xF6) are skipped and cancel running status; 0xF4, 0xF5 and a
//     0xF7 outside SysEx are "undefined".
// Every byte lands in exactly one bucket of DecoderStats, so the counters can be checked against
// the byte count (DecoderStats::accounted()).
//
// Two ways to feed it:
//   - feed_message(): the bytes of one complete delivery (one JACK MIDI event or one ALSA
//     sequencer event, as an RtMidi callback hands them over). A message is whole, so nothing may
//     carry over into the next one: at its end a half message is dropped and counted as truncated,
//     an open SysEx as unterminated, and running status is cancelled. A data-only event (`07 05`
//     after `B0 07 7F`) is therefore stray data, never a second CC 7. This is what the daemon uses.
//   - feed(): a raw byte stream (a serial port, a file), where running status and SysEx legitimately
//     span reads: state carries over between calls; finish() ends the stream.
// decode_message() is the stateless form of feed_message() (fresh state, counters per call).
//
// What RtMidi delivers: its documentation says the input callback "will be invoked after the
// input of a complete MIDI message" and that SysEx, timing and active sensing are ignored by
// default (RtMidi tutorial, "MIDI Input"). Nothing in the contract forbids several messages in
// one buffer (a JACK MIDI event may hold `B0 07 10 B0 08 20`): they all decode.
//
// Thread contract: a Decoder belongs to one thread (the port's MIDI callback); feed(),
// feed_byte(), finish() and stats() are [RT-safe] there: no allocation, no locks, no system
// calls, O(1) per byte. shared_stats() may be read from [any thread] (relaxed atomic snapshot,
// refreshed at the end of each feed()). decode_message() is pure and [RT-safe].
//
//   Decoder dec(/*source=*/2);
//   dec.feed_message(bytes, n, now_us, [&](const MidiEvent& e) { if (!queue.try_push(e)) {} });
//   DecodedMessage m = decode_message(bytes, n); // for (auto& e : m) ...
#pragma once

#include "earshot/midi/event.hpp"

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>

namespace earshot::midi {

/// Counters of one decoder (or one decode_message call). Message counters count messages; the
/// `*_bytes`, `realtime`, `stray_data` and `undefined` counters count bytes, and together with
/// the bytes of the message in progress they add up to `bytes`.
struct DecoderStats {
    uint64_t bytes = 0;              // every byte fed
    uint64_t events = 0;             // channel voice messages decoded (MidiEvents produced)
    uint64_t overflow = 0;           // events decoded but not stored (decode_message: no room left)
    uint64_t realtime = 0;           // real-time bytes 0xF8-0xFF (ignored)
    uint64_t sysex = 0;              // SysEx messages skipped (terminated or not)
    uint64_t sysex_unterminated = 0; // ... of which were ended by another status byte or finish()
    uint64_t truncated = 0;          // messages cut short by a status byte or finish() (dropped)
    uint64_t system_common = 0;      // complete system common messages 0xF1/F2/F3/F6 (ignored)
    uint64_t stray_data = 0;         // data bytes with no status to apply to (dropped)
    uint64_t undefined = 0;          // undefined status bytes 0xF4/0xF5 and 0xF7 outside SysEx
    uint64_t message_bytes = 0;      // bytes of complete channel voice and system common messages
    uint64_t sysex_bytes = 0;        // bytes of SysEx messages, 0xF0 and 0xF7 included
    uint64_t truncated_bytes = 0;    // bytes of truncated messages

    /// Sum of the byte buckets. Equals `bytes` minus the bytes of the message still in progress.
    uint64_t accounted() const noexcept {
        return message_bytes + sysex_bytes + truncated_bytes + realtime + stray_data + undefined;
    }
    /// Messages or bytes that were not turned into events: what "drops" means in status output.
    uint64_t dropped() const noexcept { return overflow + truncated + stray_data; }

    DecoderStats& operator+=(const DecoderStats& o) noexcept;
    friend bool operator==(const DecoderStats&, const DecoderStats&) = default;
};

/// Streaming decoder. One per MIDI input port (it keeps running status and SysEx state).
class Decoder {
public:
    /// `source` is stamped into every event (the controller slot of this port).
    explicit Decoder(uint8_t source = 0) noexcept : _source(source) {}
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;

    /// Feeds one byte. Returns true and fills `out` when it completes a channel voice message.
    /// [RT-safe]
    bool feed_byte(uint8_t b, uint64_t time_us, MidiEvent& out) noexcept;

    /// Feeds n bytes; calls sink(const MidiEvent&) for each event, then refreshes shared_stats().
    /// [RT-safe] when the sink is.
    template <typename Sink>
    requires std::invocable<Sink&, const MidiEvent&>
    void feed(const uint8_t* data, std::size_t n, uint64_t time_us, Sink&& sink) noexcept {
        MidiEvent e;
        for (std::size_t i = 0; i < n; ++i)
            if (feed_byte(data[i], time_us, e)) sink(e);
        publish();
    }

    /// Feeds the bytes of one complete message delivery (a JACK MIDI or ALSA sequencer event)
    /// and ends it (end_message()): nothing carries over to the next call. Calls sink for each
    /// event, then refreshes shared_stats(). [RT-safe] when the sink is.
    template <typename Sink>
    requires std::invocable<Sink&, const MidiEvent&>
    void feed_message(const uint8_t* data, std::size_t n, uint64_t time_us, Sink&& sink) noexcept {
        MidiEvent e;
        for (std::size_t i = 0; i < n; ++i)
            if (feed_byte(data[i], time_us, e)) sink(e);
        end_message();
        publish();
    }

    /// Ends a delivery: a message in progress counts as truncated, an open SysEx as an
    /// unterminated one, and running status is forgotten. Does not publish. [RT-safe]
    void end_message() noexcept;

    /// Ends the stream: end_message(), then publish(). [RT-safe]
    void finish() noexcept;

    /// Bytes of the message in progress (not yet in any bucket of stats()).
    uint32_t pending_bytes() const noexcept { return _pending; }
    /// True while inside a SysEx message.
    bool in_sysex() const noexcept { return _in_sysex; }

    /// The counters, as seen by the owning thread. [RT-safe, owning thread]
    const DecoderStats& stats() const noexcept { return _stats; }
    /// Copies stats() to the snapshot shared_stats() reads. feed() does it; call it after
    /// feed_byte() loops. [RT-safe, owning thread]
    void publish() noexcept;
    /// The last published counters; each field is exact, the set is not one instant. [any thread]
    DecoderStats shared_stats() const noexcept;

private:
    static constexpr std::size_t n_fields = 13;
    DecoderStats _stats;
    std::array<std::atomic<uint64_t>, n_fields> _shared{}; // published copy of _stats, field by field
    uint8_t _source = 0;                                   // stamped into events
    uint8_t _status = 0;                                   // running status (0 = none)
    uint8_t _expected = 0;                                 // data bytes the current status takes
    uint8_t _have = 0;                                     // data bytes received for the current message
    std::array<uint8_t, 2> _data{};                        // those data bytes
    uint32_t _pending = 0;                                 // bytes of the message in progress
    bool _in_sysex = false;                                // between 0xF0 and its end
};

/// Most events decode_message() stores; more are counted in DecoderStats::overflow.
inline constexpr std::size_t max_events_per_message = 16;

/// The events of one buffer and what happened to its bytes. Fixed size (no allocation).
struct DecodedMessage {
    std::array<MidiEvent, max_events_per_message> events{};
    uint8_t count = 0;
    DecoderStats stats;

    const MidiEvent* begin() const noexcept { return events.data(); }
    const MidiEvent* end() const noexcept { return events.data() + count; }
    bool empty() const noexcept { return count == 0; }
};

/// Decodes a buffer that holds whole messages (one or several, as an RtMidi callback gives
/// them): Decoder::feed_message() on a fresh decoder. Nothing carries over between calls:
/// running status starts empty, and a message or SysEx left open at the end is counted as
/// truncated / unterminated. [RT-safe, pure]
DecodedMessage decode_message(const uint8_t* data, std::size_t size, uint64_t time_us = 0,
                              uint8_t source = 0) noexcept;

} // namespace earshot::midi
