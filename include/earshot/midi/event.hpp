// earshot::midi events — the fixed-size message that crosses from the MIDI input thread to the
// control thread (docs/midi.md).
//
// A MidiEvent is one decoded channel voice message: what kind, which channel, which note /
// controller / program, and its value. It is trivially copyable and 16 bytes, so the RtMidi
// callback can decode into it and try_push() it on a lock-free queue (event_queue.hpp) without
// allocating. Note On with velocity 0 is already turned into note_off by the decoder.
//
// Thread contract: plain data; any thread.
// Units: `value` is 0-127 for every kind but pitch_bend, which is 0-16383 (8192 = centre);
// `time_us` is microseconds on whatever monotonic clock the producer uses (0 = unknown).
//
//   MidiEvent e{.kind = EventKind::cc, .channel = 0, .number = 7, .value = 100};
//   if (e.kind == EventKind::pitch_bend) use(e.value / 16383.0);
//   static_assert(std::is_trivially_copyable_v<MidiEvent>);
#pragma once

#include <cstdint>
#include <type_traits>

namespace earshot::midi {

/// Largest 7-bit value (a CC, a velocity).
inline constexpr uint16_t max_7bit = 127;
/// Largest 14-bit value (a pitch bend, a 14-bit CC pair).
inline constexpr uint16_t max_14bit = 16383;

enum class EventKind : uint8_t {
    none,               // an empty slot; never produced by the decoder
    note_off,           // number = note, value = release velocity (0 when it was a Note On with velocity 0)
    note_on,            // number = note, value = velocity 1-127
    poly_aftertouch,    // number = note, value = pressure
    cc,                 // number = controller 0-127, value = 0-127
    program,            // number = program 0-127, value = 0
    channel_aftertouch, // number = 0, value = pressure
    pitch_bend,         // number = 0, value = 0-16383 (LSB | MSB << 7), 8192 = centre
};

/// Printable name of an event kind ("note_on", "cc", ...).
const char* kind_name(EventKind k) noexcept;

struct MidiEvent {
    uint64_t time_us = 0;             // receive time in µs on the producer's monotonic clock; 0 = unknown
    EventKind kind = EventKind::none; // what the message is
    uint8_t channel = 0;              // MIDI channel 0-15 (shown to users as 1-16)
    uint8_t number = 0;               // note, controller or program number 0-127
    uint8_t source = 0;               // controller slot of the port it came from (set by its Decoder)
    uint16_t value = 0;               // 0-127, or 0-16383 for pitch_bend

    friend bool operator==(const MidiEvent&, const MidiEvent&) = default;
};

static_assert(std::is_trivially_copyable_v<MidiEvent>, "MidiEvent crosses a lock-free queue");
static_assert(sizeof(MidiEvent) <= 16, "MidiEvent stays one cache-line quarter");

} // namespace earshot::midi
