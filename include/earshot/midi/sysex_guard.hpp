// earshot::midi::SysexGuard — keeps RtMidi's JACK input from going deaf after a cut SysEx
// (docs/midi.md, "SysEx and RtMidi's JACK input").
//
// The upstream behaviour (RtMidi 5.0.0, MidiInJack's process callback): after a JACK MIDI event
// that starts with F0 and does not end with F7, RtMidi waits for the rest of the SysEx and drops
// every later event (real-time F8/FE and F1 aside) until one *ends* with F7; that event is dropped
// too. MIDI 1.0 ends a SysEx at any status byte but real-time; RtMidi does not. So one SysEx whose
// last chunk was lost (a2jmidid forwards long SysEx in pieces) leaves the controller deaf, and the
// state is private to RtMidi.
//
// The remedy: a small JACK client of ours sees the same source events as RtMidi's input (an input
// port connected to the same source) and can write to RtMidi's input (an output port connected to
// it; that makes JACK run it before RtMidi's client in every cycle). This class is its per-port
// logic, pure and testable without JACK: it replays RtMidi's rule on the source's events of each
// cycle, and when RtMidi drops an event because of a cut SysEx (the event starts with a status
// byte), it writes
//   1. a lone F7: RtMidi takes it as the end of the SysEx (and drops it), and
//   2. the dropped channel messages again (when resend is on), so RtMidi delivers them,
// at the first frame after the dropped event that no source event uses (the merge order of two
// connections' events at the same frame is not defined), in the same cycle, or at the first free
// frame of the next one when the cycle is full. Nothing waits for a timeout: the first channel
// message after a cut SysEx reaches the callback in the same cycle it was sent (or the next),
// and so changes the audio like any other.
//
// resend is only right while the replica matches RtMidi (it does for 5.0.0, the version this was
// checked against); the daemon turns it off if our F7 ever reaches its callback (RtMidi was not
// waiting after all), and then only the F7 is written and the dropped messages are counted as lost.
//
// Thread contract: cycle() on the guard client's JACK process thread [RT-safe: no allocation, no
// lock, no system call, O(events) per cycle]; set_resend(), request_reset() and stats() from any
// thread (relaxed atomics).
//
//   SysexGuard g;
//   g.cycle(nframes, count,
//           [&](uint32_t i, uint32_t& t, const uint8_t*& d, std::size_t& n) { ... return ok; },
//           [&](uint32_t t, const uint8_t* d, std::size_t n) { return write(t, d, n); });
#pragma once

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>

namespace earshot::midi {

struct SysexGuardStats {
    uint64_t cuts = 0;   // SysEx messages cut short by a status byte (RtMidi would have gone deaf)
    uint64_t resets = 0; // lone F7 written to end RtMidi's wait
    uint64_t resent = 0; // dropped channel messages written again
    uint64_t lost = 0;   // dropped channel messages not written again (resend off, no room)
};

class SysexGuard {
public:
    static constexpr std::size_t max_held = 32;        // dropped messages held for one flush
    static constexpr std::size_t max_event_bytes = 16; // longer events are not held (counted lost)

    SysexGuard() = default;
    SysexGuard(const SysexGuard&) = delete;
    SysexGuard& operator=(const SysexGuard&) = delete;

    /// One cycle: `count` source events, sorted by frame, read with
    /// get(i, frame, data, size) -> bool; writes to RtMidi's input with
    /// put(frame, data, size) -> bool (false: no room). Frames are < nframes. [RT-safe]
    template <typename Get, typename Put>
    requires std::invocable<Get&, uint32_t, uint32_t&, const uint8_t*&, std::size_t&> &&
        std::invocable<Put&, uint32_t, const uint8_t*, std::size_t>
    void cycle(uint32_t nframes, uint32_t count, Get&& get, Put&& put) noexcept {
        if (_reset_request.exchange(false, std::memory_order_acquire)) forget();
        constexpr uint32_t none = UINT32_MAX;
        uint32_t flush_at = pending() ? first_free(get, count, 0, 0) : none;
        for (uint32_t i = 0; i < count; ++i) {
            uint32_t t = 0;
            const uint8_t* d = nullptr;
            std::size_t n = 0;
            if (!get(i, t, d, n) || d == nullptr || n == 0) continue;
            if (flush_at != none && t > flush_at) {
                flush(flush_at, put);
                flush_at = none;
            }
            on_event(d, n);
            if (pending() && flush_at == none) flush_at = first_free(get, count, i + 1, t + 1);
        }
        if (flush_at != none && flush_at < nframes) flush(flush_at, put); // else: the next cycle
    }

    /// Resend dropped channel messages (default on). [any thread]
    void set_resend(bool on) noexcept { _resend.store(on, std::memory_order_relaxed); }
    bool resend() const noexcept { return _resend.load(std::memory_order_relaxed); }
    /// Forget the state at the start of the next cycle (RtMidi's input was recreated). [any thread]
    void request_reset() noexcept { _reset_request.store(true, std::memory_order_release); }
    /// Whether RtMidi is (by our replay) waiting for the end of a SysEx. [the cycle's thread]
    bool in_sysex() const noexcept { return _in_sysex; }
    /// The counters. [any thread]
    SysexGuardStats stats() const noexcept;

private:
    // Feeds one source event through the replay of RtMidi's rule; holds what RtMidi drops.
    void on_event(const uint8_t* d, std::size_t n) noexcept;
    bool pending() const noexcept { return (_cut && _in_sysex) || _held_n > 0; }
    void forget() noexcept;

    // The first frame >= t0 that no event from index `from` on uses (events are sorted).
    template <typename Get>
    static uint32_t first_free(Get& get, uint32_t count, uint32_t from, uint32_t t0) noexcept {
        uint32_t f = t0;
        for (uint32_t j = from; j < count; ++j) {
            uint32_t t = 0;
            const uint8_t* d = nullptr;
            std::size_t n = 0;
            if (!get(j, t, d, n)) continue;
            if (t < f) continue;
            if (t > f) break;
            ++f;
        }
        return f;
    }

    template <typename Put>
    void flush(uint32_t t, Put& put) noexcept {
        if (_cut && _in_sysex) {
            static constexpr uint8_t eox = 0xF7;
            if (!put(t, &eox, 1)) return; // no room: try again at the next free frame
            _in_sysex = false;
            _resets.fetch_add(1, std::memory_order_relaxed);
        }
        _cut = false;
        for (std::size_t k = 0; k < _held_n; ++k) {
            if (put(t, _held[k].bytes.data(), _held[k].size))
                _resent.fetch_add(1, std::memory_order_relaxed);
            else
                _lost.fetch_add(1, std::memory_order_relaxed);
        }
        _held_n = 0;
    }

    struct Held {
        std::array<uint8_t, max_event_bytes> bytes{};
        uint8_t size = 0;
    };
    bool _in_sysex = false; // replay of RtMidi's continueSysex
    bool _cut = false;      // the open SysEx was cut by a status byte: a reset is due
    std::array<Held, max_held> _held{};
    std::size_t _held_n = 0;
    std::atomic<bool> _resend{true};
    std::atomic<bool> _reset_request{false};
    std::atomic<uint64_t> _cuts{0}, _resets{0}, _resent{0}, _lost{0};
};

} // namespace earshot::midi
