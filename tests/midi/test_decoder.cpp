// MIDI decoder: byte sequences in, events and counters out (running status, real-time bytes,
// SysEx, truncation, stray data), a 100k-byte random flood, and the MIDI event queue.
#include "earshot/midi/decoder.hpp"
#include "earshot/midi/event_queue.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <thread>
#include <vector>

using namespace earshot::midi;

namespace {

struct Run {
    std::vector<MidiEvent> events;
    DecoderStats stats;
};

// Streams the bytes through one Decoder (optionally in chunks), then finish().
Run stream(std::initializer_list<uint8_t> bytes, bool finish = true) {
    std::vector<uint8_t> v(bytes);
    Decoder d(3);
    Run r;
    d.feed(v.data(), v.size(), 42, [&](const MidiEvent& e) { r.events.push_back(e); });
    if (finish) d.finish();
    r.stats = d.stats();
    return r;
}

MidiEvent ev(EventKind k, uint8_t ch, uint8_t num, uint16_t val) {
    MidiEvent e;
    e.time_us = 42;
    e.kind = k;
    e.channel = ch;
    e.number = num;
    e.source = 3;
    e.value = val;
    return e;
}

// Every byte is in exactly one bucket, or still pending.
void require_accounted(const DecoderStats& s, uint64_t pending = 0) {
    REQUIRE(s.accounted() + pending == s.bytes);
}

} // namespace

TEST_CASE("decoder: every channel voice message", "[midi][decoder]") {
    auto r = stream({0x90, 60,   100, 0x81, 61, 64,   0x92, 62,   0,    0xA3, 63,   7,    0xB4, 7,
                     99,   0xC5, 12,  0xD6, 55, 0xE7, 0x00, 0x40, 0xEF, 0x7F, 0x7F, 0xE0, 0x01, 0x00});
    REQUIRE(r.events.size() == 10);
    CHECK(r.events[0] == ev(EventKind::note_on, 0, 60, 100));
    CHECK(r.events[1] == ev(EventKind::note_off, 1, 61, 64));
    CHECK(r.events[2] == ev(EventKind::note_off, 2, 62, 0)); // Note On velocity 0 = Note Off
    CHECK(r.events[3] == ev(EventKind::poly_aftertouch, 3, 63, 7));
    CHECK(r.events[4] == ev(EventKind::cc, 4, 7, 99));
    CHECK(r.events[5] == ev(EventKind::program, 5, 12, 0));
    CHECK(r.events[6] == ev(EventKind::channel_aftertouch, 6, 0, 55));
    CHECK(r.events[7] == ev(EventKind::pitch_bend, 7, 0, 8192)); // centre
    CHECK(r.events[8] == ev(EventKind::pitch_bend, 15, 0, 16383));
    CHECK(r.events[9] == ev(EventKind::pitch_bend, 0, 0, 1)); // LSB first
    CHECK(r.stats.events == 10);
    CHECK(r.stats.message_bytes == r.stats.bytes);
    CHECK(r.stats.dropped() == 0);
    require_accounted(r.stats);
}

TEST_CASE("decoder: running status", "[midi][decoder]") {
    auto r = stream({0x90, 60, 100, 62, 90, 64, 0, 0xB1, 7, 1, 7, 2, 10, 3});
    REQUIRE(r.events.size() == 6);
    CHECK(r.events[1] == ev(EventKind::note_on, 0, 62, 90));
    CHECK(r.events[2] == ev(EventKind::note_off, 0, 64, 0));
    CHECK(r.events[4] == ev(EventKind::cc, 1, 7, 2));
    CHECK(r.events[5] == ev(EventKind::cc, 1, 10, 3));
    // running status with one-data-byte messages
    auto p = stream({0xC2, 1, 2, 3});
    REQUIRE(p.events.size() == 3);
    CHECK(p.events[2] == ev(EventKind::program, 2, 3, 0));
    require_accounted(r.stats);
}

TEST_CASE("decoder: whole messages (JACK/ALSA events) carry nothing over", "[midi][decoder]") {
    // The audit's case: one port's Decoder is fed event by event. `07 05` after `B0 07 7F` is a
    // garbage data-only event, not a second CC 7 (which would move a master to -57.6 dB).
    Decoder d(3);
    std::vector<MidiEvent> got;
    auto sink = [&](const MidiEvent& e) { got.push_back(e); };
    const uint8_t cc7[] = {0xB0, 0x07, 0x7F};
    const uint8_t garbage[] = {0x07, 0x05};
    d.feed_message(cc7, sizeof cc7, 42, sink);
    d.feed_message(garbage, sizeof garbage, 42, sink);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == ev(EventKind::cc, 0, 7, 127));
    CHECK(d.stats().stray_data == 2);
    CHECK(d.stats().dropped() == 2); // shown as decoder_errors
    CHECK(d.shared_stats() == d.stats());
    // Running status inside one event still decodes.
    const uint8_t two[] = {0xB1, 7, 10, 8, 20};
    d.feed_message(two, sizeof two, 42, sink);
    REQUIRE(got.size() == 3);
    CHECK(got[2] == ev(EventKind::cc, 1, 8, 20));
    // A half message at the end of an event is truncated, not completed by the next one.
    const uint8_t half[] = {0x90, 60};
    const uint8_t rest[] = {100};
    d.feed_message(half, sizeof half, 42, sink);
    d.feed_message(rest, sizeof rest, 42, sink);
    CHECK(got.size() == 3);
    CHECK(d.stats().truncated == 1);
    CHECK(d.stats().truncated_bytes == 2);
    CHECK(d.stats().stray_data == 3);
    // An unterminated SysEx ends with its event.
    const uint8_t sx[] = {0xF0, 0x7D, 0x01};
    d.feed_message(sx, sizeof sx, 42, sink);
    CHECK(d.stats().sysex_unterminated == 1);
    CHECK_FALSE(d.in_sysex());
    d.feed_message(cc7, sizeof cc7, 42, sink);
    CHECK(got.size() == 4);
    CHECK(d.pending_bytes() == 0);
    require_accounted(d.stats());
    // The streaming form keeps running status across calls (raw byte streams).
    Decoder st(3);
    got.clear();
    st.feed(cc7, sizeof cc7, 42, sink);
    st.feed(garbage, sizeof garbage, 42, sink);
    REQUIRE(got.size() == 2);
    CHECK(got[1] == ev(EventKind::cc, 0, 7, 5));
}

TEST_CASE("decoder: real-time bytes anywhere are ignored and counted", "[midi][decoder]") {
    // inside a message, between running-status messages, inside SysEx
    auto r = stream(
        {0x90, 0xF8, 60, 0xFE, 100, 0xFA, 61, 0xFF, 101, 0xF0, 0x01, 0xF8, 0x02, 0xF7, 0xFC, 0xF9, 0xFD});
    REQUIRE(r.events.size() == 2);
    CHECK(r.events[0] == ev(EventKind::note_on, 0, 60, 100));
    CHECK(r.events[1] == ev(EventKind::note_on, 0, 61, 101));
    CHECK(r.stats.realtime == 8);
    CHECK(r.stats.sysex == 1);
    CHECK(r.stats.sysex_unterminated == 0);
    CHECK(r.stats.sysex_bytes == 4);
    require_accounted(r.stats);
}

TEST_CASE("decoder: SysEx is skipped, terminated or not", "[midi][decoder]") {
    SECTION("terminated, then a message") {
        auto r = stream({0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7, 0xB0, 7, 100});
        REQUIRE(r.events.size() == 1);
        CHECK(r.events[0] == ev(EventKind::cc, 0, 7, 100));
        CHECK(r.stats.sysex == 1);
        CHECK(r.stats.sysex_bytes == 6);
    }
    SECTION("ended by a status byte, which is decoded") {
        auto r = stream({0xF0, 0x41, 0x10, 0x90, 60, 1});
        REQUIRE(r.events.size() == 1);
        CHECK(r.events[0] == ev(EventKind::note_on, 0, 60, 1));
        CHECK(r.stats.sysex == 1);
        CHECK(r.stats.sysex_unterminated == 1);
        require_accounted(r.stats);
    }
    SECTION("never ended: finish() closes it") {
        auto r = stream({0xF0, 1, 2, 3});
        CHECK(r.events.empty());
        CHECK(r.stats.sysex == 1);
        CHECK(r.stats.sysex_unterminated == 1);
        CHECK(r.stats.sysex_bytes == 4);
        require_accounted(r.stats);
    }
    SECTION("split across feeds (RtMidi callbacks): still skipped") {
        Decoder d;
        std::vector<MidiEvent> got;
        const uint8_t a[] = {0xF0, 1, 2};
        const uint8_t b[] = {3, 4, 0xF7, 0xB0, 1, 2};
        d.feed(a, sizeof a, 0, [&](const MidiEvent& e) { got.push_back(e); });
        CHECK(d.in_sysex());
        d.feed(b, sizeof b, 0, [&](const MidiEvent& e) { got.push_back(e); });
        REQUIRE(got.size() == 1);
        CHECK(got[0].kind == EventKind::cc);
        CHECK(d.stats().sysex == 1);
        CHECK(d.stats().stray_data == 0);
    }
    SECTION("running status does not survive SysEx") {
        auto r = stream({0x90, 60, 100, 0xF0, 0xF7, 61, 100});
        CHECK(r.events.size() == 1);
        CHECK(r.stats.stray_data == 2);
    }
}

TEST_CASE("decoder: truncated messages are dropped on the next status byte", "[midi][decoder]") {
    auto r = stream({0x90, 60, 0xB0, 7, 100, 0xE0, 5});
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(EventKind::cc, 0, 7, 100));
    CHECK(r.stats.truncated == 2); // 0x90 60 by 0xB0, and 0xE0 5 by finish()
    CHECK(r.stats.truncated_bytes == 4);
    require_accounted(r.stats);

    // without finish the partial message stays pending and is not counted yet
    auto p = stream({0xB0, 7}, false);
    CHECK(p.stats.truncated == 0);
    require_accounted(p.stats, 2);

    // a status alone, then another status
    auto s = stream({0x90, 0x80, 60, 0});
    CHECK(s.stats.truncated == 1);
    REQUIRE(s.events.size() == 1);
    CHECK(s.events[0].kind == EventKind::note_off);
}

TEST_CASE("decoder: stray data, system common and undefined bytes", "[midi][decoder]") {
    auto r = stream({60, 100, 0xF3, 1, 60, 0xF2, 0, 0, 0xF1, 0x20, 0xF6, 5, 0xF4, 0xF5, 0xF7, 0x90, 1, 1});
    REQUIRE(r.events.size() == 1);
    CHECK(r.stats.stray_data == 4);    // 60 100 at the start, 60 after song select, 5 after tune request
    CHECK(r.stats.system_common == 4); // F3 F2 F1 F6
    CHECK(r.stats.undefined == 3);     // F4 F5 and a lone F7
    require_accounted(r.stats);
    // a system common status interrupts a channel message and cancels running status
    auto t = stream({0x90, 60, 0xF3, 1, 61, 1});
    CHECK(t.events.empty());
    CHECK(t.stats.truncated == 1);
    CHECK(t.stats.stray_data == 2);
}

TEST_CASE("decode_message: whole buffers, as RtMidi gives them", "[midi][decoder]") {
    const uint8_t one[] = {0x93, 36, 127};
    auto m = decode_message(one, sizeof one, 1000, 5);
    REQUIRE(m.count == 1);
    CHECK(m.events[0].time_us == 1000);
    CHECK(m.events[0].source == 5);
    CHECK(m.events[0].channel == 3);

    const uint8_t concatenated[] = {0xB0, 0, 64, 0xB0, 32, 1, 0xF8, 0x90, 60, 0}; // several in one buffer
    auto c = decode_message(concatenated, sizeof concatenated);
    REQUIRE(c.count == 3);
    CHECK(c.events[2].kind == EventKind::note_off);
    CHECK(c.stats.realtime == 1);

    const uint8_t partial[] = {0x90, 60}; // nothing carries over: counted as truncated
    auto p = decode_message(partial, sizeof partial);
    CHECK(p.empty());
    CHECK(p.stats.truncated == 1);
    require_accounted(p.stats);

    const uint8_t sysex_head[] = {0xF0, 0x00, 0x20, 0x29}; // a SysEx chunk without its end
    auto s = decode_message(sysex_head, sizeof sysex_head);
    CHECK(s.empty());
    CHECK(s.stats.sysex_unterminated == 1);

    std::vector<uint8_t> many = {0xB0};
    for (int i = 0; i < 40; ++i) many.insert(many.end(), {7, static_cast<uint8_t>(i)});
    auto o = decode_message(many.data(), many.size());
    CHECK(o.count == max_events_per_message);
    CHECK(o.stats.events == 40);
    CHECK(o.stats.overflow == 40 - max_events_per_message);

    auto n = decode_message(nullptr, 10);
    CHECK(n.empty());
    CHECK(n.stats.bytes == 0);
}

TEST_CASE("decoder: a flood of 100k random bytes: no crash, counters consistent, chunking irrelevant",
          "[midi][decoder][flood]") {
    std::mt19937 rng(20240611);
    std::vector<uint8_t> bytes(100000);
    // Mostly valid-looking traffic with garbage, real-time and SysEx mixed in.
    std::uniform_int_distribution<int> any(0, 255);
    for (auto& b : bytes) b = static_cast<uint8_t>(any(rng));

    Decoder whole;
    std::vector<MidiEvent> a;
    for (uint8_t b : bytes) {
        MidiEvent e;
        if (whole.feed_byte(b, 7, e)) a.push_back(e);
    }
    whole.publish();

    Decoder chunked;
    std::vector<MidiEvent> c;
    std::uniform_int_distribution<std::size_t> len(1, 64);
    for (std::size_t i = 0; i < bytes.size();) {
        const std::size_t n = std::min(len(rng), bytes.size() - i);
        chunked.feed(bytes.data() + i, n, 7, [&](const MidiEvent& e) { c.push_back(e); });
        i += n;
    }

    REQUIRE(a == c);
    REQUIRE(whole.stats() == chunked.stats());
    const DecoderStats& s = chunked.stats();
    CHECK(s.bytes == bytes.size());
    CHECK(s.events == c.size());
    require_accounted(s, chunked.pending_bytes());
    CHECK(chunked.shared_stats() == s); // published at the end of feed()
    CHECK(s.realtime > 0);
    CHECK(s.sysex > 0);
    CHECK(s.truncated > 0);
    CHECK(s.stray_data > 0);
    for (const MidiEvent& e : c) {
        REQUIRE(e.kind != EventKind::none);
        REQUIRE(e.channel < 16);
        REQUIRE(e.number < 128);
        REQUIRE(e.value <= (e.kind == EventKind::pitch_bend ? max_14bit : max_7bit));
        REQUIRE(!(e.kind == EventKind::note_on && e.value == 0));
    }

    chunked.finish();
    require_accounted(chunked.stats());
    // decode_message over the same bytes sees the same events (16 stored, the rest overflow)
    auto m = decode_message(bytes.data(), bytes.size(), 7);
    CHECK(m.stats.events == s.events);
    CHECK(m.stats.overflow == s.events - m.count);
    CHECK(m.stats.accounted() == m.stats.bytes);
}

TEST_CASE("event queue: fixed capacity, drops counted, never blocks", "[midi][queue]") {
    EventQueue<8> q;
    MidiEvent e;
    for (uint16_t i = 0; i < 8; ++i) {
        e.value = i;
        REQUIRE(q.try_push(e));
    }
    e.value = 99;
    CHECK_FALSE(q.try_push(e));
    CHECK(q.dropped() == 1);
    CHECK(q.size() == 8);
    MidiEvent out;
    for (uint16_t i = 0; i < 8; ++i) {
        REQUIRE(q.pop(out));
        CHECK(out.value == i);
    }
    CHECK_FALSE(q.pop(out));
}

TEST_CASE("event queue: one producer and one consumer thread under a flood", "[midi][queue]") {
    EventQueue<256> q;
    constexpr uint64_t n = 200000;
    std::atomic<bool> done{false};
    uint64_t pushed = 0;
    std::thread producer([&] {
        MidiEvent e;
        for (uint64_t i = 0; i < n; ++i) {
            e.time_us = i;
            if (q.try_push(e)) ++pushed;
        }
        done.store(true, std::memory_order_release);
    });
    uint64_t received = 0;
    uint64_t last = 0;
    bool ordered = true;
    MidiEvent e;
    for (;;) {
        if (q.pop(e)) {
            if (received > 0 && e.time_us <= last) ordered = false;
            last = e.time_us;
            ++received;
        } else if (done.load(std::memory_order_acquire) && q.size() == 0) {
            break;
        }
    }
    producer.join();
    CHECK(ordered);
    CHECK(received == pushed);
    CHECK(pushed + q.dropped() == n);
}
