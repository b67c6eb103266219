// Bytes -> Decoder -> Mapper -> mix (MixSnapshot): the issue's "decoder and mapper on byte
// sequences", end to end without a device. Each case feeds the bytes a controller sends (one
// JACK/ALSA event per feed_message(), as the daemon's callback does, or a raw stream) and checks
// the mix that results: running status, 14-bit pairs, the three relative encodings, toggles on
// momentary pads, channel filters, and garbage in between.
#include "earshot/midi/decoder.hpp"
#include "earshot/midi/mapping.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <initializer_list>
#include <vector>

using namespace earshot::midi;

namespace {

// musicians: drums 0, bass 1; inputs: click 0, kick 1
Directory dir() {
    return Directory{{"drums", "bass"}, {"click", "kick"}, {"verse"}};
}

ControlSource src(SourceType t, uint8_t n, int ch = any_channel) {
    ControlSource s;
    s.type = t;
    s.number = n;
    s.lsb = static_cast<uint8_t>(n + 32);
    s.channel = static_cast<int8_t>(ch);
    return s;
}

Mapping map_of(ControlSource s, ControlKind k, ActionType a, const char* musician, const char* input = "") {
    Mapping m;
    m.source = s;
    m.kind = k;
    m.action.type = a;
    m.action.musician = musician;
    m.action.input = input;
    return m;
}

// A controller: its Decoder, its Mapper, the mix they change, and a clock.
struct Rig {
    Decoder dec{0};
    Mapper mapper;
    MixSnapshot mix{2, 2};
    uint64_t t_us = 1000;
    std::vector<Action> actions;

    explicit Rig(const ControllerConfig& c) : mapper(make(c)) {}
    static Mapper make(const ControllerConfig& c) {
        std::vector<BuildError> errs;
        auto m = Mapper::build(c, dir(), errs);
        REQUIRE(errs.empty());
        return std::move(*m);
    }
    void apply(const ActionList& al) {
        for (const Action& a : al) {
            mix.apply(a);
            actions.push_back(a);
        }
    }
    // One event as RtMidi delivers it (JACK MIDI / ALSA sequencer: a whole message).
    void event(std::initializer_list<uint8_t> bytes, uint64_t dt_us = 1000) {
        std::vector<uint8_t> v(bytes);
        t_us += dt_us;
        dec.feed_message(v.data(), v.size(), t_us, [&](const MidiEvent& e) { apply(mapper.map(e, mix)); });
    }
    // A raw byte stream (serial MIDI): state carries over.
    void stream(std::initializer_list<uint8_t> bytes, uint64_t dt_us = 1000) {
        std::vector<uint8_t> v(bytes);
        t_us += dt_us;
        dec.feed(v.data(), v.size(), t_us, [&](const MidiEvent& e) { apply(mapper.map(e, mix)); });
    }
    void tick(uint64_t dt_us) {
        t_us += dt_us;
        apply(mapper.tick(t_us, mix));
    }
};

} // namespace

TEST_CASE("chain: absolute CC, running status, channel filter, garbage", "[midi][chain]") {
    ControllerConfig c;
    c.mappings = {map_of(src(SourceType::cc, 7, 0), ControlKind::absolute, ActionType::master, "drums"),
                  map_of(src(SourceType::cc, 8, 0), ControlKind::absolute, ActionType::master, "bass")};
    Rig r(c);
    r.event({0xB0, 7, 64});
    CHECK(r.mix.master[0] == Approx(-60.0 + 64 / 127.0 * 60.0));
    r.event({0xB0, 7, 127, 8, 0}); // running status inside one event: CC 8 = 0 -> bass off
    CHECK(r.mix.master[0] == 0.0);
    CHECK(std::isinf(r.mix.master[1]));
    r.event({0xB1, 7, 10}); // channel 2: filtered
    CHECK(r.mix.master[0] == 0.0);
    r.event({0x07, 0x05}); // a data-only event: stray, never CC 7 = 5
    CHECK(r.mix.master[0] == 0.0);
    r.event({0xB0, 7}); // cut short: truncated
    r.event({0x20});    // and its "rest" in the next event: stray
    CHECK(r.mix.master[0] == 0.0);
    CHECK(r.dec.stats().stray_data == 3);
    CHECK(r.dec.stats().truncated == 1);
    // The same bytes as a raw stream: running status spans reads there.
    r.stream({0xB0, 7, 127});
    r.stream({7, 64});
    CHECK(r.mix.master[0] == Approx(-60.0 + 64 / 127.0 * 60.0));
}

TEST_CASE("chain: 14-bit pair, MSB then LSB, and a lone MSB after the timeout", "[midi][chain]") {
    ControllerConfig c;
    c.pair_timeout_ms = 10;
    Mapping m = map_of(src(SourceType::cc14, 1, 0), ControlKind::absolute, ActionType::master, "bass");
    m.min_db = -40;
    m.max_db = 0;
    c.mappings = {m};
    Rig r(c);
    r.event({0xB0, 1, 100});
    CHECK(r.mix.master[1] == 0.0); // the MSB waits for its LSB
    r.event({0xB0, 33, 64}, 500);
    CHECK(r.mix.master[1] == Approx(-40.0 + (100 * 128 + 64) / 16383.0 * 40.0));
    CHECK(r.actions.size() == 1); // one gain change for the pair
    r.event({0xB0, 1, 50});
    r.tick(20000); // no LSB within 10 ms: MSB x 128 alone
    CHECK(r.mix.master[1] == Approx(-40.0 + (50 * 128) / 16383.0 * 40.0));
    CHECK(r.mapper.stats().pairs_timed_out == 1);
    r.event({0xB0, 1, 50, 33, 127}); // MSB and LSB in one event (running status)
    CHECK(r.mix.master[1] == Approx(-40.0 + (50 * 128 + 127) / 16383.0 * 40.0));
}

TEST_CASE("chain: the three relative encodings", "[midi][chain]") {
    ControllerConfig c;
    Mapping tc = map_of(src(SourceType::cc, 16, 0), ControlKind::relative_twos_complement,
                        ActionType::send_gain, "drums", "click");
    Mapping sb = map_of(src(SourceType::cc, 17, 0), ControlKind::relative_signed_bit, ActionType::send_gain,
                        "drums", "kick");
    Mapping bo =
        map_of(src(SourceType::cc, 18, 0), ControlKind::relative_binary_offset, ActionType::master, "bass");
    for (Mapping* m : {&tc, &sb, &bo}) {
        m->step_db = 1.0;
        m->max_db = 6.0;
    }
    c.mappings = {tc, sb, bo};
    Rig r(c);
    r.event({0xB0, 16, 1});
    r.event({0xB0, 16, 2});   // +2 (acceleration)
    r.event({0xB0, 16, 127}); // -1
    CHECK(r.mix.send_db[0] == Approx(2.0));
    r.event({0xB0, 17, 0x03}); // +3
    r.event({0xB0, 17, 0x41}); // -1
    CHECK(r.mix.send_db[1] == Approx(2.0));
    r.event({0xB0, 18, 65, 18, 65, 18, 63}); // +1 +1 -1, running status in one event
    CHECK(r.mix.master[1] == Approx(1.0));
    r.event({0xB0, 18, 64}); // binary offset zero: no change, no action
    CHECK(r.mix.master[1] == Approx(1.0));
    for (int k = 0; k < 10; ++k) r.event({0xB0, 16, 1}); // clamps at max_db
    CHECK(r.mix.send_db[0] == Approx(6.0));
}

TEST_CASE("chain: toggles on pads that send momentary notes, momentary holds", "[midi][chain]") {
    ControllerConfig c;
    Mapping more = map_of(src(SourceType::note, 37, 9), ControlKind::momentary, ActionType::more_me, "drums");
    more.action.inputs = {"kick"};
    c.mappings = {
        map_of(src(SourceType::note, 36, 9), ControlKind::toggle, ActionType::send_mute, "drums", "click"),
        more};
    Rig r(c);
    r.event({0x99, 36, 100}); // press (channel 10)
    CHECK(r.mix.send_muted(0, 0));
    r.event({0x89, 36, 0}); // release: ignored by a toggle
    CHECK(r.mix.send_muted(0, 0));
    r.event({0x99, 36, 1}); // press again (any velocity): unmuted
    CHECK_FALSE(r.mix.send_muted(0, 0));
    r.event({0x99, 36, 0}); // Note On velocity 0 = a release
    CHECK_FALSE(r.mix.send_muted(0, 0));
    r.event({0x99, 37, 127});
    CHECK(r.mix.more_me(0));
    r.event({0x99, 37, 0});
    CHECK_FALSE(r.mix.more_me(0));
    r.event({0x90, 36, 127}); // channel 1: not this pad
    CHECK_FALSE(r.mix.send_muted(0, 0));
    // Real-time bytes inside a message change nothing.
    r.event({0x99, 0xF8, 36, 0xFE, 127});
    CHECK(r.mix.send_muted(0, 0));
}

TEST_CASE("chain: program change and pitch bend", "[midi][chain]") {
    ControllerConfig c;
    Mapping scene = map_of(src(SourceType::program, 4), ControlKind::toggle, ActionType::scene, "");
    scene.action.scene = "verse";
    Mapping bend =
        map_of(src(SourceType::pitch_bend, 0, 1), ControlKind::absolute, ActionType::master, "drums");
    bend.curve = Curve::audio_taper;
    c.mappings = {scene, bend};
    Rig r(c);
    r.event({0xC0, 4});
    CHECK(r.mix.scene(all_musicians) == 0);
    r.event({0xE1, 0x00, 0x40}); // 8192: half travel on the audio taper
    CHECK(r.mix.master[0] == Approx(60.0 * std::log10(8192.0 / 16383.0)));
    r.event({0xE1, 0x7F, 0x7F});
    CHECK(r.mix.master[0] == 0.0);
}
