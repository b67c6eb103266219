// earshot::midi EventQueue — the MIDI input thread → control thread queue of MidiEvents.
//
// A single-producer, single-consumer ring of fixed capacity (a power of two). try_push() and
// pop() are wait-free: two loads and one store each. When the ring is full, try_push() fails and
// the event is counted in dropped(); a MIDI flood therefore never blocks the RtMidi callback and
// never grows memory. (The engine uses Boost.Lockfree; this module is std-only, so it carries its
// own small ring.)
//
// Wake-ups: try_push(e, &wake) sets `wake` only when the consumer had taken everything before
// this event, i.e. when it may be asleep; the producer signals it (an eventfd write) only then.
// The index stores and the loads that decide this are sequentially consistent on both sides, so
// no wake-up is lost: either the producer sees that the consumer caught up (and signals), or the
// consumer's last "empty?" check comes after the push in the total order and sees the event.
//
// Thread contract: exactly one producer thread calls try_push() [RT-safe]; exactly one
// consumer thread calls pop() [RT-safe]; dropped() and size() are [any thread].
//
//   EventQueue<1024> q;                                  // MIDI callback → control thread
//   bool wake = false;
//   if (q.try_push(e, &wake) && wake) signal();          // a full queue counts in q.dropped()
//   MidiEvent e; while (q.pop(e)) mapper.map(e, view);
#pragma once

#include "earshot/midi/event.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace earshot::midi {

template <std::size_t Capacity>
class EventQueue {
    static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0, "capacity is a power of two");

public:
    /// Appends e; false (and dropped() + 1) when the queue is full. With `wake`, sets it to
    /// whether the consumer had already taken every earlier event (it needs a signal).
    /// [RT-safe, producer]
    [[nodiscard]] bool try_push(const MidiEvent& e, bool* wake = nullptr) noexcept {
        const uint64_t w = _write.load(std::memory_order_relaxed);
        if (w - _read.load(std::memory_order_acquire) >= Capacity) {
            _dropped.fetch_add(1, std::memory_order_relaxed);
            if (wake) *wake = false;
            return false;
        }
        _slots[w & (Capacity - 1)] = e;
        _write.store(w + 1, std::memory_order_seq_cst);
        if (wake) *wake = _read.load(std::memory_order_seq_cst) >= w;
        return true;
    }

    /// Takes the oldest event; false when empty. [RT-safe, consumer]
    bool pop(MidiEvent& out) noexcept {
        const uint64_t r = _read.load(std::memory_order_relaxed);
        if (r == _write.load(std::memory_order_seq_cst)) return false;
        out = _slots[r & (Capacity - 1)];
        _read.store(r + 1, std::memory_order_seq_cst);
        return true;
    }

    /// Events refused because the queue was full. [any thread]
    uint64_t dropped() const noexcept { return _dropped.load(std::memory_order_relaxed); }
    /// Events waiting (approximate while the other side runs). [any thread]
    std::size_t size() const noexcept {
        const uint64_t r = _read.load(std::memory_order_acquire); // first: then w >= r
        return static_cast<std::size_t>(_write.load(std::memory_order_acquire) - r);
    }
    static constexpr std::size_t capacity() noexcept { return Capacity; }

private:
    alignas(64) std::atomic<uint64_t> _write{0};   // next slot to fill (producer-owned)
    alignas(64) std::atomic<uint64_t> _read{0};    // next slot to take (consumer-owned)
    alignas(64) std::atomic<uint64_t> _dropped{0}; // failed pushes
    std::array<MidiEvent, Capacity> _slots{};      // the ring
};

} // namespace earshot::midi
