// The allocation trap for the MIDI path (style guide L14): global operator new/delete are
// replaced in this binary; allocations made while the thread-local "in RT" flag is set are
// counted. The decoder (in the MIDI callback), the event queue and the mapper must make none.
#include "earshot/midi/decoder.hpp"
#include "earshot/midi/event_queue.hpp"
#include "earshot/midi/mapping.hpp"
#include "earshot/midi/sysex_guard.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <new>
#include <random>

// The replacements pair operator new with malloc and operator delete with free, which is
// correct; GCC's heuristic cannot see that across the replaced functions.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local bool t_in_rt = false;
std::size_t g_rt_allocs = 0;
} // namespace

void* operator new(std::size_t n) {
    if (t_in_rt) ++g_rt_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (t_in_rt) ++g_rt_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}

using namespace earshot::midi;

TEST_CASE("the trap counts allocations made in RT scope", "[midi][rt]") {
    g_rt_allocs = 0;
    t_in_rt = true;
    auto* v = new std::vector<int>(10);
    t_in_rt = false;
    delete v;
    REQUIRE(g_rt_allocs >= 1);
}

TEST_CASE("decoder, queue and mapper: zero heap allocations", "[midi][rt]") {
    ControllerConfig c;
    c.musician = "drums";
    Mapping fader;
    fader.source.type = SourceType::cc14;
    fader.source.number = 0;
    fader.takeover = true;
    fader.action.type = ActionType::master;
    Mapping enc;
    enc.source.number = 16;
    enc.kind = ControlKind::relative_twos_complement;
    enc.action.type = ActionType::send_gain;
    enc.action.input = "click";
    Mapping pad;
    pad.source.type = SourceType::note;
    pad.source.number = 36;
    pad.kind = ControlKind::toggle;
    pad.action.type = ActionType::send_mute;
    pad.action.input = "click";
    Mapping learn;
    learn.source.type = SourceType::note;
    learn.source.number = 99;
    learn.kind = ControlKind::momentary;
    learn.action.type = ActionType::learn;
    c.mappings = {fader, enc, pad, learn};
    std::vector<BuildError> errs;
    auto mapper = Mapper::build(c, Directory{{"drums"}, {"click"}, {}}, errs);
    REQUIRE(mapper);
    MixSnapshot view(1, 1);
    Decoder dec;
    Decoder per_event; // the daemon's way: one whole event per feed_message()
    EventQueue<64> queue;
    SysexGuard guard;
    std::size_t guard_writes = 0;

    std::mt19937 rng(5);
    std::uniform_int_distribution<int> any(0, 255);
    std::vector<uint8_t> bytes(20000);
    for (auto& b : bytes) b = static_cast<uint8_t>(any(rng));
    const uint8_t useful[] = {0xB0, 0,  64,  0xB0, 32, 0,   0xB0, 16, 1,
                              0x90, 36, 127, 0x90, 99, 127, 0xF0, 1,  0xF7};
    std::copy(std::begin(useful), std::end(useful), bytes.begin());

    g_rt_allocs = 0;
    t_in_rt = true;
    uint64_t t = 0;
    std::size_t actions = 0;
    for (std::size_t i = 0; i < bytes.size(); i += 7) {
        dec.feed(bytes.data() + i, std::min<std::size_t>(7, bytes.size() - i), t, [&](const MidiEvent& e) {
            if (!queue.try_push(e)) {
            }
        });
        MidiEvent e;
        while (queue.pop(e)) {
            for (const Action& a : mapper->map(e, view)) {
                view.apply(a);
                ++actions;
            }
        }
        if (i % 700 == 0) mapper->begin_learn();
        actions += mapper->tick(t, view).size();
        (void)mapper->take_learned();
        (void)decode_message(bytes.data() + i, std::min<std::size_t>(7, bytes.size() - i), t);
        per_event.feed_message(bytes.data() + i, std::min<std::size_t>(3, bytes.size() - i), t,
                               [&](const MidiEvent& ev1) {
                                   bool wake = false;
                                   if (queue.try_push(ev1, &wake)) {
                                   }
                               });
        // The SysEx guard's cycle over these bytes as two events.
        const uint8_t* ev[2] = {bytes.data() + i, bytes.data() + i + 3};
        guard.cycle(
            64, i + 7 <= bytes.size() ? 2u : 0u,
            [&](uint32_t k, uint32_t& time, const uint8_t*& d, std::size_t& n) {
                time = 10 * k;
                d = ev[k];
                n = k == 0 ? 3 : 4;
                return true;
            },
            [&](uint32_t, const uint8_t*, std::size_t) {
                ++guard_writes;
                return true;
            });
        t += 1500;
    }
    t_in_rt = false;
    CHECK(g_rt_allocs == 0);
    CHECK(actions > 0);
    CHECK(dec.stats().events > 0);
    CHECK(per_event.stats().events > 0);
    CHECK(guard_writes > 0);
    CHECK(guard.stats().cuts > 0);
}
