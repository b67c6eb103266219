// earshot::midi::SysexGuard: the replay of RtMidi 5.0.0's JACK input rule. The contract and the
// reasons are in include/earshot/midi/sysex_guard.hpp and docs/midi.md.
#include "earshot/midi/sysex_guard.hpp"

#include <algorithm>

namespace earshot::midi {

SysexGuardStats SysexGuard::stats() const noexcept {
    SysexGuardStats s;
    s.cuts = _cuts.load(std::memory_order_relaxed);
    s.resets = _resets.load(std::memory_order_relaxed);
    s.resent = _resent.load(std::memory_order_relaxed);
    s.lost = _lost.load(std::memory_order_relaxed);
    return s;
}

void SysexGuard::forget() noexcept {
    _in_sysex = false;
    _cut = false;
    _held_n = 0;
}

void SysexGuard::on_event(const uint8_t* d, std::size_t n) noexcept {
    const uint8_t first = d[0];
    const bool ends_sysex = d[n - 1] == 0xF7;
    // RtMidi: an event starting with F0 opens a SysEx unless it ends with F7 (and is dropped as
    // SysEx either way).
    if (first == 0xF0) {
        _in_sysex = !ends_sysex;
        return;
    }
    // MIDI time code, clock and active sensing never touch its state.
    if (first == 0xF1 || first == 0xF8 || first == 0xFE) return;
    if (!_in_sysex) return; // delivered
    // RtMidi drops this event and stays in the SysEx unless it ends with F7.
    _in_sysex = !ends_sysex;
    if (first < 0x80) return; // the rest of the SysEx (a continuation chunk): as it should be
    // A status byte: the sender's SysEx was cut (MIDI 1.0: it ended there).
    if (!_cut) {
        _cut = true;
        _cuts.fetch_add(1, std::memory_order_relaxed);
    }
    if (first < 0xF0) { // a channel message: held for the flush, or lost
        if (_resend.load(std::memory_order_relaxed) && _held_n < _held.size() && n <= max_event_bytes) {
            Held& h = _held[_held_n++];
            std::copy(d, d + n, h.bytes.begin());
            h.size = static_cast<uint8_t>(n);
        } else {
            _lost.fetch_add(1, std::memory_order_relaxed);
        }
    }                                             // system common or real-time: nothing earshot uses
    if (!_in_sysex && _held_n == 0) _cut = false; // it ended RtMidi's wait itself: nothing to do
}

} // namespace earshot::midi
