// SysexGuard: the replay of RtMidi 5.0.0's JACK input rule and what it writes so RtMidi never
// stays deaf after a cut SysEx. The guard's output is merged into RtMidi's input by frame (source
// events first on a tie, which the guard avoids); a model of RtMidi's rule then shows what reaches
// earshot's callback.
#include "earshot/midi/sysex_guard.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

using namespace earshot::midi;

namespace {

struct Ev {
    uint32_t t;
    std::vector<uint8_t> b;
    bool ours = false;
};

// RtMidi 5.0.0's MidiInJack process callback with SysEx ignored: what it hands to the callback.
struct RtMidiModel {
    bool cont = false;
    std::vector<std::vector<uint8_t>> delivered;
    void feed(const std::vector<uint8_t>& b) {
        switch (b[0]) {
        case 0xF0:
            cont = b.back() != 0xF7;
            return; // ignored SysEx
        case 0xF1:
        case 0xF8:
        case 0xFE:
            return; // ignored timing / sensing (the state is untouched)
        default:
            if (cont) {
                cont = b.back() != 0xF7;
                return;
            }
        }
        delivered.push_back(b);
    }
};

// One cycle: the guard sees `src`; RtMidi's input gets src + the guard's output, by frame
// (stable: the source first on equal frames).
std::vector<Ev> cycle(SysexGuard& g, const std::vector<Ev>& src, uint32_t nframes = 256) {
    std::vector<Ev> out;
    g.cycle(
        nframes, static_cast<uint32_t>(src.size()),
        [&](uint32_t i, uint32_t& t, const uint8_t*& d, std::size_t& n) {
            t = src[i].t;
            d = src[i].b.data();
            n = src[i].b.size();
            return true;
        },
        [&](uint32_t t, const uint8_t* d, std::size_t n) {
            REQUIRE(t < nframes);
            if (!out.empty()) REQUIRE(t >= out.back().t); // JACK wants time order
            out.push_back({t, std::vector<uint8_t>(d, d + n), true});
            return true;
        });
    std::vector<Ev> merged = src;
    merged.insert(merged.end(), out.begin(), out.end());
    std::stable_sort(merged.begin(), merged.end(), [](const Ev& a, const Ev& b) { return a.t < b.t; });
    for (std::size_t k = 1; k < merged.size(); ++k) // never a tie between the source and us
        if (merged[k].t == merged[k - 1].t) REQUIRE(merged[k].ours == merged[k - 1].ours);
    return merged;
}

void run(RtMidiModel& rt, const std::vector<Ev>& merged) {
    for (const Ev& e : merged) rt.feed(e.b);
}

const std::vector<uint8_t> cc7_100{0xB0, 7, 100};

} // namespace

TEST_CASE("sysex guard: a cut SysEx does not make RtMidi deaf; nothing is lost", "[midi][sysex]") {
    SysexGuard g;
    RtMidiModel rt;
    // The audit's probe: F0 7D 01 as one event, then CCs.
    run(rt, cycle(g, {{10, {0xF0, 0x7D, 0x01}}}));
    CHECK(g.in_sysex());
    CHECK(rt.cont);
    run(rt, cycle(g, {{0, cc7_100}, {1, {0xB0, 7, 110}}, {5, {0xB0, 7, 120}}}));
    CHECK_FALSE(rt.cont);
    CHECK_FALSE(g.in_sysex());
    // Every CC reached the callback, in order, in the cycle it was sent.
    REQUIRE(rt.delivered.size() == 3);
    CHECK(rt.delivered[0] == cc7_100);
    CHECK(rt.delivered[1] == std::vector<uint8_t>{0xB0, 7, 110});
    CHECK(rt.delivered[2] == std::vector<uint8_t>{0xB0, 7, 120});
    const SysexGuardStats st = g.stats();
    CHECK(st.cuts == 1);
    CHECK(st.resets == 1);
    CHECK(st.resent == 2); // the first two were dropped by RtMidi; the third came after our F7
    CHECK(st.lost == 0);
}

TEST_CASE("sysex guard: without the guard RtMidi stays deaf (the bug it fixes)", "[midi][sysex]") {
    RtMidiModel rt;
    rt.feed({0xF0, 0x7D, 0x01});
    for (int k = 0; k < 10; ++k) rt.feed(cc7_100);
    CHECK(rt.delivered.empty());
    rt.feed({0x90, 1, 0xF7}); // only an event that ends with F7 ends it (and is dropped itself)
    CHECK(rt.delivered.empty());
    rt.feed(cc7_100);
    CHECK(rt.delivered.size() == 1);
}

TEST_CASE("sysex guard: legitimate SysEx, split or whole, is left alone", "[midi][sysex]") {
    SysexGuard g;
    RtMidiModel rt;
    run(rt, cycle(g, {{0, {0xF0, 1, 2, 3, 0xF7}}, {4, cc7_100}}));
    run(rt, cycle(g, {{0, {0xF0, 1, 2}}})); // a long SysEx in chunks (a2jmidid)
    run(rt, cycle(g, {{0, {3, 4, 5}}}));    // continuation
    run(rt, cycle(g, {{0, {0xF8}}}));       // clock in between
    run(rt, cycle(g, {{0, {6, 7, 0xF7}}})); // the last chunk
    run(rt, cycle(g, {{3, {0xB0, 7, 64}}}));
    REQUIRE(rt.delivered.size() == 2);
    CHECK(rt.delivered[1] == std::vector<uint8_t>{0xB0, 7, 64});
    CHECK(g.stats().cuts == 0);
    CHECK(g.stats().resets == 0);
    CHECK_FALSE(rt.cont);
}

TEST_CASE("sysex guard: ties, a full cycle, and carrying over", "[midi][sysex]") {
    SysexGuard g;
    RtMidiModel rt;
    run(rt, cycle(g, {{0, {0xF0, 0x7D}}}, 8));
    // Frames 2..7 are all taken by source events: the reset goes to the next cycle's first free frame.
    std::vector<Ev> busy;
    for (uint32_t t = 2; t < 8; ++t) busy.push_back({t, {0xB0, 7, static_cast<uint8_t>(t)}});
    run(rt, cycle(g, busy, 8));
    CHECK(rt.delivered.empty()); // dropped by RtMidi, held by the guard
    CHECK(rt.cont);
    run(rt, cycle(g, {{0, {0xB0, 7, 50}}, {1, {0xB0, 7, 51}}}, 8));
    REQUIRE(rt.delivered.size() == 8);
    for (uint32_t t = 2; t < 8; ++t)
        CHECK(rt.delivered[t - 2] == std::vector<uint8_t>{0xB0, 7, static_cast<uint8_t>(t)});
    CHECK(rt.delivered[7] == std::vector<uint8_t>{0xB0, 7, 51});
    CHECK(g.stats().resent == 8);
    CHECK(g.stats().lost == 0);
    CHECK_FALSE(rt.cont);
}

TEST_CASE("sysex guard: resend off, an event that ends it itself, reset, long events", "[midi][sysex]") {
    SysexGuard g;
    RtMidiModel rt;
    g.set_resend(false);
    run(rt, cycle(g, {{0, {0xF0, 0x7D}}, {3, cc7_100}, {9, {0xB0, 7, 1}}}));
    // Without resend only the F7: the CC that revealed the cut is lost (counted); later ones pass.
    REQUIRE(rt.delivered.size() == 1);
    CHECK(rt.delivered[0] == std::vector<uint8_t>{0xB0, 7, 1});
    CHECK(g.stats().lost == 1);
    g.set_resend(true);

    // An event that ends with F7 ends RtMidi's wait by itself (and is dropped): it is resent, no F7.
    rt.delivered.clear();
    run(rt, cycle(g, {{0, {0xF0, 0x7D}}, {3, {0x90, 1, 0xF7}}}));
    REQUIRE(rt.delivered.size() == 1);
    CHECK(rt.delivered[0] == std::vector<uint8_t>{0x90, 1, 0xF7});
    CHECK(g.stats().resets == 1); // only the first case's
    CHECK_FALSE(rt.cont);

    // System common / real-time while cut: dropped, not held; a long event: counted lost.
    rt.delivered.clear();
    std::vector<uint8_t> longev(20, 0x10);
    longev[0] = 0xB0;
    run(rt, cycle(g, {{0, {0xF0, 0x7D}}, {2, {0xFA}}, {3, longev}, {4, cc7_100}}));
    REQUIRE(rt.delivered.size() == 1);
    CHECK(rt.delivered[0] == cc7_100);
    CHECK(g.stats().lost == 2);

    // request_reset(): a fresh RtMidi input (not inside a SysEx): the replay forgets too.
    run(rt, cycle(g, {{0, {0xF0, 0x7D}}}));
    CHECK(g.in_sysex());
    g.request_reset();
    rt = RtMidiModel{};
    run(rt, cycle(g, {{0, cc7_100}}));
    CHECK_FALSE(g.in_sysex());
    CHECK(rt.delivered.size() == 1);
}

TEST_CASE("sysex guard: random events never leave RtMidi deaf, never duplicate", "[midi][sysex]") {
    SysexGuard g;
    RtMidiModel rt;
    uint32_t seed = 12345;
    auto rnd = [&] {
        seed = seed * 1664525u + 1013904223u;
        return seed >> 8; // the low bits of an LCG are poor
    };
    std::vector<int> sent; // ids of the channel messages sent (MIDI 1.0: each one is a message)
    int id = 0;
    for (int c = 0; c < 3000; ++c) {
        std::vector<Ev> ev;
        uint32_t t = 0;
        const int n = static_cast<int>(rnd() % 6);
        for (int k = 0; k < n; ++k) {
            t += rnd() % 3;
            if (t >= 64) break;
            std::vector<uint8_t> b;
            switch (rnd() % 6) {
            case 0:
                b = {0xF0, 1, 2}; // a SysEx start, cut or whole
                if (rnd() % 2) b.push_back(0xF7);
                break;
            case 1:
                b = {static_cast<uint8_t>(rnd() % 0x80), 5}; // continuation chunks / garbage
                if (rnd() % 3 == 0) b.push_back(0xF7);
                break;
            case 2:
                b = {0xF8};
                break;
            default: // a channel message with a unique id in its data bytes
                b = {static_cast<uint8_t>(0x80 | (rnd() % 0x70)), static_cast<uint8_t>(id & 0x7F),
                     static_cast<uint8_t>((id >> 7) & 0x7F)};
                sent.push_back(id++);
                break;
            }
            ev.push_back({t, b});
        }
        run(rt, cycle(g, ev, 64));
    }
    run(rt, cycle(g, {}, 64)); // anything carried over
    std::vector<int> got;
    for (const auto& b : rt.delivered)
        if (b.size() == 3 && b[0] >= 0x80 && b[0] < 0xF0) got.push_back(b[1] | (b[2] << 7));
    std::sort(got.begin(), got.end());
    CHECK(got == sent); // every channel message exactly once, none lost, none doubled
    CHECK(g.stats().lost == 0);
    CHECK(g.stats().cuts > 100);
    CHECK(g.stats().resets <= g.stats().cuts);
    run(rt, cycle(g, {{0, cc7_100}}, 64));
    CHECK(rt.delivered.back() == cc7_100);
}
