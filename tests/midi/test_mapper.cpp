// MIDI mapper: curves, 14-bit pairs, relative encoders, toggles and momentary buttons, channel
// filters, soft takeover, scope (SPEC §3.5), build errors, learn, and a random event flood.
#include "earshot/midi/mapping.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

using namespace earshot::midi;
using Catch::Matchers::Contains;

namespace {

// musicians: drums 0, bass 1, vox 2; inputs: click 0, kick 1, snare 2, bass_di 3, vocal 4, talk 5
Directory dir() {
    return Directory{{"drums", "bass", "vox"},
                     {"click", "kick", "snare", "bass_di", "vocal", "talk"},
                     {"intro", "verse", "chorus"}};
}

MidiEvent cc(uint8_t ch, uint8_t n, uint16_t v, uint64_t t = 0) {
    MidiEvent e;
    e.kind = EventKind::cc;
    e.channel = ch;
    e.number = n;
    e.value = v;
    e.time_us = t;
    return e;
}
MidiEvent note_on(uint8_t ch, uint8_t n, uint16_t vel = 127) {
    MidiEvent e = cc(ch, n, vel);
    e.kind = EventKind::note_on;
    return e;
}
MidiEvent note_off(uint8_t ch, uint8_t n) {
    MidiEvent e = cc(ch, n, 0);
    e.kind = EventKind::note_off;
    return e;
}
MidiEvent program(uint8_t ch, uint8_t n) {
    MidiEvent e = cc(ch, n, 0);
    e.kind = EventKind::program;
    return e;
}
MidiEvent bend(uint8_t ch, uint16_t v) {
    MidiEvent e = cc(ch, 0, v);
    e.kind = EventKind::pitch_bend;
    return e;
}

ControlSource src(SourceType t, uint8_t n, int ch = any_channel) {
    ControlSource s;
    s.type = t;
    s.number = n;
    s.lsb = static_cast<uint8_t>(n + 32);
    s.channel = static_cast<int8_t>(ch);
    return s;
}

Mapping map_of(ControlSource s, ControlKind k, ActionType a, std::string musician = "drums",
               std::string input = "") {
    Mapping m;
    m.source = s;
    m.kind = k;
    m.action.type = a;
    m.action.musician = std::move(musician);
    m.action.input = std::move(input);
    return m;
}

Mapper build(const ControllerConfig& c) {
    std::vector<BuildError> errs;
    auto m = Mapper::build(c, dir(), errs);
    if (!m) {
        for (const auto& e : errs) UNSCOPED_INFO(to_string(e, c.id));
        FAIL("build failed");
    }
    return std::move(*m);
}

std::vector<BuildError> build_errors(const ControllerConfig& c) {
    std::vector<BuildError> errs;
    auto m = Mapper::build(c, dir(), errs);
    CHECK_FALSE(m.has_value());
    return errs;
}

bool any_error(const std::vector<BuildError>& errs, const std::string& key, const std::string& text) {
    return std::any_of(errs.begin(), errs.end(), [&](const BuildError& e) {
        return e.key == key && e.message.find(text) != std::string::npos;
    });
}

// Maps an event and applies its actions to the snapshot, like the daemon does.
ActionList run(Mapper& m, MixSnapshot& s, const MidiEvent& e) {
    ActionList out = m.map(e, s);
    for (const Action& a : out) s.apply(a);
    return out;
}

} // namespace

TEST_CASE("curves: 0 = off, end points, monotonic, inverse", "[midi][mapper][curve]") {
    for (Curve c : {Curve::db, Curve::linear_gain, Curve::audio_taper}) {
        INFO(name(c));
        CHECK(std::isinf(curve_to_db(c, 0.0, -60, 6)));
        CHECK(curve_to_db(c, 0.0, -60, 6) < 0);
        CHECK(std::isinf(curve_to_db(c, std::nan(""), -60, 6)));
        CHECK(curve_to_db(c, 1.0, -60, 6) == 6.0);
        CHECK(curve_to_db(c, 2.0, -60, 6) == 6.0);
        double prev = -std::numeric_limits<double>::infinity();
        for (int i = 0; i <= 16383; ++i) {
            const double x = i / 16383.0;
            const double d = curve_to_db(c, x, -60, 6);
            REQUIRE(d >= prev);
            REQUIRE((std::isinf(d) || (d >= -60.0 && d <= 6.0)));
            if (!std::isinf(d)) REQUIRE(curve_to_position(c, d, -60, 6) == Approx(x).margin(1e-9));
            prev = d;
        }
        CHECK(curve_to_position(c, -std::numeric_limits<double>::infinity(), -60, 6) == 0.0);
        CHECK(curve_to_position(c, 20.0, -60, 6) == 1.0);
    }
    CHECK(curve_to_db(Curve::db, 0.5, -60, 0) == Approx(-30.0));
    CHECK(curve_to_db(Curve::db, 1.0 / 127, -60, 0) > -60.0); // the first step above off
    CHECK(curve_to_db(Curve::linear_gain, 0.5, -60, 0) == Approx(-6.0206));
    CHECK(curve_to_db(Curve::audio_taper, 0.5, -60, 0) == Approx(-18.0618));
    CHECK(std::isinf(curve_to_db(Curve::linear_gain, 0.0005, -60, 0))); // below min_db: off
    CHECK(curve_from_name("log") == Curve::audio_taper);
    CHECK(curve_from_name("dB") == std::nullopt);
}

TEST_CASE("absolute CC on a master, with a channel filter", "[midi][mapper]") {
    ControllerConfig c;
    Mapping m = map_of(src(SourceType::cc, 7, 1), ControlKind::absolute, ActionType::master);
    m.min_db = -60;
    m.max_db = 6;
    c.mappings = {m};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);

    CHECK(run(mp, s, cc(0, 7, 100)).empty()); // channel 1 ≠ filter channel 2
    CHECK(mp.stats().unmatched == 1);
    auto out = run(mp, s, cc(1, 7, 127));
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == ActionType::master);
    CHECK(out[0].musician == 0);
    CHECK(out[0].db == 6.0);
    out = run(mp, s, cc(1, 7, 0));
    REQUIRE(out.size() == 1);
    CHECK(std::isinf(out[0].db)); // 0 = off
    CHECK(std::isinf(s.master[0]));

    // any channel
    c.mappings[0].source.channel = any_channel;
    Mapper any = build(c);
    for (uint8_t ch = 0; ch < 16; ++ch) CHECK(any.map(cc(ch, 7, 64), s).size() == 1);
    CHECK(any.map(cc(0, 8, 64), s).empty()); // another controller number
}

TEST_CASE("14-bit CC: MSB then LSB, LSB fine adjustment, timeout for a lone MSB", "[midi][mapper][cc14]") {
    ControllerConfig c;
    c.pair_timeout_ms = 10;
    Mapping m =
        map_of(src(SourceType::cc14, 1, 0), ControlKind::absolute, ActionType::send_gain, "drums", "click");
    m.min_db = -60;
    m.max_db = 0;
    c.mappings = {m};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);

    CHECK(run(mp, s, cc(0, 33, 5, 1000)).empty()); // an LSB before any MSB carries nothing
    CHECK(run(mp, s, cc(0, 1, 64, 2000)).empty()); // MSB waits
    auto out = run(mp, s, cc(0, 33, 0, 2300));     // its LSB: one action, full resolution
    REQUIRE(out.size() == 1);
    CHECK(out[0].db == Approx(curve_to_db(Curve::db, (64 << 7) / 16383.0, -60, 0)));
    CHECK(out[0].input == 0);

    out = run(mp, s, cc(0, 33, 100, 5000)); // a fine adjustment: LSB only
    REQUIRE(out.size() == 1);
    CHECK(out[0].db == Approx(curve_to_db(Curve::db, ((64 << 7) | 100) / 16383.0, -60, 0)));

    CHECK(run(mp, s, cc(0, 1, 80, 10000)).empty()); // a lone MSB ...
    CHECK(mp.tick(15000, s).empty());               // ... not yet (5 ms)
    out = mp.tick(20001, s);                        // ... applied alone after 10 ms
    REQUIRE(out.size() == 1);
    CHECK(out[0].db == Approx(curve_to_db(Curve::db, (80 << 7) / 16383.0, -60, 0)));
    CHECK(mp.stats().pairs_timed_out == 1);

    // two MSBs in a row: the first is applied alone when the second comes
    CHECK(run(mp, s, cc(0, 1, 10, 30000)).empty());
    out = run(mp, s, cc(0, 1, 11, 30500));
    REQUIRE(out.size() == 1);
    CHECK(out[0].db == Approx(curve_to_db(Curve::db, (10 << 7) / 16383.0, -60, 0)));
    // a late LSB after a timeout flush: the MSB alone, then the refinement
    out = run(mp, s, cc(0, 33, 7, 60000));
    REQUIRE(out.size() == 2);
    CHECK(out[1].db == Approx(curve_to_db(Curve::db, ((11 << 7) | 7) / 16383.0, -60, 0)));
}

TEST_CASE("pitch bend as a 14-bit fader", "[midi][mapper]") {
    ControllerConfig c;
    Mapping m = map_of(src(SourceType::pitch_bend, 0, 2), ControlKind::absolute, ActionType::master, "bass");
    m.max_db = 0;
    c.mappings = {m};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    s.master[1] = -10.0;
    auto out = mp.map(bend(2, 16383), s);
    REQUIRE(out.size() == 1);
    CHECK(out[0].musician == 1);
    CHECK(out[0].db == 0.0);
    CHECK(mp.map(bend(3, 16383), s).empty());
}

TEST_CASE("relative encoders: each encoding, steps in dB, off and range ends", "[midi][mapper][relative]") {
    CHECK(relative_steps(ControlKind::relative_twos_complement, 1) == 1);
    CHECK(relative_steps(ControlKind::relative_twos_complement, 5) == 5);
    CHECK(relative_steps(ControlKind::relative_twos_complement, 127) == -1);
    CHECK(relative_steps(ControlKind::relative_twos_complement, 64) == -64);
    CHECK(relative_steps(ControlKind::relative_signed_bit, 0x01) == 1);
    CHECK(relative_steps(ControlKind::relative_signed_bit, 0x41) == -1);
    CHECK(relative_steps(ControlKind::relative_signed_bit, 0x43) == -3);
    CHECK(relative_steps(ControlKind::relative_binary_offset, 65) == 1);
    CHECK(relative_steps(ControlKind::relative_binary_offset, 63) == -1);
    CHECK(relative_steps(ControlKind::relative_binary_offset, 64) == 0);
    CHECK(relative_steps(ControlKind::absolute, 3) == 0);

    struct Case {
        ControlKind kind;
        uint16_t up, up3, down;
    };
    for (Case k : {Case{ControlKind::relative_twos_complement, 1, 3, 127},
                   Case{ControlKind::relative_signed_bit, 0x01, 0x03, 0x41},
                   Case{ControlKind::relative_binary_offset, 65, 67, 63}}) {
        INFO(name(k.kind));
        ControllerConfig c;
        Mapping m = map_of(src(SourceType::cc, 16), k.kind, ActionType::send_gain, "vox", "vocal");
        m.min_db = -40;
        m.max_db = 6;
        m.step_db = 0.5;
        c.mappings = {m};
        Mapper mp = build(c);
        MixSnapshot s(3, 6);
        s.send_db[2 * 6 + 4] = -10.0;
        run(mp, s, cc(0, 16, k.up));
        CHECK(s.send_gain_db(2, 4) == Approx(-9.5));
        run(mp, s, cc(0, 16, k.up3));
        CHECK(s.send_gain_db(2, 4) == Approx(-8.0));
        run(mp, s, cc(0, 16, k.down));
        CHECK(s.send_gain_db(2, 4) == Approx(-8.5));
        // clamps at max_db and never pulls a gain above the range down by turning up
        s.send_db[2 * 6 + 4] = 5.8;
        run(mp, s, cc(0, 16, k.up3));
        CHECK(s.send_gain_db(2, 4) == 6.0);
        s.send_db[2 * 6 + 4] = 9.0;
        CHECK(mp.map(cc(0, 16, k.up), s).empty());
        // from off, the first step up lands on min_db; down from min_db is off; down from off: nothing
        s.send_db[2 * 6 + 4] = off_db;
        run(mp, s, cc(0, 16, k.up));
        CHECK(s.send_gain_db(2, 4) == -40.0);
        run(mp, s, cc(0, 16, k.down));
        CHECK(std::isinf(s.send_gain_db(2, 4)));
        CHECK(mp.map(cc(0, 16, k.down), s).empty());
    }
}

TEST_CASE("toggle on pads that only send momentary notes; momentary talkback", "[midi][mapper][buttons]") {
    ControllerConfig c;
    c.mappings = {
        map_of(src(SourceType::note, 0), ControlKind::toggle, ActionType::send_mute, "drums", "click"),
        map_of(src(SourceType::note, 1), ControlKind::momentary, ActionType::talkback, ""),
        map_of(src(SourceType::cc, 48), ControlKind::toggle, ActionType::more_me, "vox"),
        map_of(src(SourceType::program, 5), ControlKind::toggle, ActionType::dim_all, "")};
    c.mappings[2].action.inputs = {"vocal"};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);

    auto out = run(mp, s, note_on(0, 0));
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == ActionType::send_mute);
    CHECK(out[0].on);
    CHECK(s.send_muted(0, 0));
    CHECK(run(mp, s, note_off(0, 0)).empty()); // the release is ignored
    CHECK(s.send_muted(0, 0));
    run(mp, s, note_on(0, 0, 1)); // any velocity presses
    CHECK_FALSE(s.send_muted(0, 0));

    out = run(mp, s, note_on(0, 1));
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == ActionType::talkback);
    CHECK(out[0].musician == all_musicians);
    CHECK(out[0].db == -15.0); // default duck
    CHECK(s.talkback(all_musicians));
    run(mp, s, note_off(0, 1));
    CHECK_FALSE(s.talkback(all_musicians));

    run(mp, s, cc(0, 48, 127)); // CC button press
    CHECK(s.more_me(2));
    CHECK(run(mp, s, cc(0, 48, 0)).empty()); // release
    run(mp, s, cc(0, 48, 127));
    CHECK_FALSE(s.more_me(2));

    run(mp, s, program(0, 5)); // a program change is a press
    CHECK(s.dimmed(all_musicians));
    run(mp, s, program(0, 5));
    CHECK_FALSE(s.dimmed(all_musicians));
    CHECK(mp.map(program(0, 6), s).empty());
}

TEST_CASE("absolute switch (latching CC button) and one-shot actions", "[midi][mapper][buttons]") {
    ControllerConfig c;
    Mapping scene = map_of(src(SourceType::program, 2), ControlKind::toggle, ActionType::scene, "");
    scene.action.scene = "verse";
    Mapping more = map_of(src(SourceType::note, 36), ControlKind::momentary, ActionType::more_me, "drums");
    more.action.inputs = {"kick", "snare"};
    more.action.amount_db = 4.0;
    c.mappings = {
        map_of(src(SourceType::cc, 64), ControlKind::absolute, ActionType::send_mute, "bass", "kick"), scene,
        map_of(src(SourceType::note, 9), ControlKind::momentary, ActionType::panic, ""), more};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);

    run(mp, s, cc(0, 64, 127));
    CHECK(s.send_muted(1, 1));
    CHECK(run(mp, s, cc(0, 64, 100)).empty()); // still on: nothing to do
    run(mp, s, cc(0, 64, 0));
    CHECK_FALSE(s.send_muted(1, 1));

    auto out = run(mp, s, program(0, 2));
    REQUIRE(out.size() == 1);
    CHECK(out[0].scene == 1);
    CHECK(s.scene(all_musicians) == 1);

    // Panic is a switch: momentary = silenced while held, the release lets go.
    s.master = {6.0, -30.0, 0.0};
    out = run(mp, s, note_on(0, 9));
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == ActionType::panic);
    CHECK(out[0].on);
    CHECK(out[0].musician == all_musicians);
    CHECK(s.panicked(all_musicians));
    CHECK(run(mp, s, note_on(0, 9)).empty()); // already on
    out = run(mp, s, note_off(0, 9));
    REQUIRE(out.size() == 1);
    CHECK_FALSE(out[0].on);
    CHECK_FALSE(s.panicked(all_musicians));
    CHECK(s.master == std::vector<double>{6.0, -30.0, 0.0}); // a layer: the mix itself is not touched

    out = run(mp, s, note_on(0, 36));
    REQUIRE(out.size() == 1);
    CHECK(out[0].on);
    CHECK(out[0].db == 4.0);
    REQUIRE(out[0].n_inputs == 2);
    CHECK(out[0].inputs[0] == 1);
    CHECK(out[0].inputs[1] == 2);
    run(mp, s, note_off(0, 36));
    CHECK_FALSE(s.more_me(0));
}

TEST_CASE("panic: a toggle pad latches, a momentary one holds; a bound one is its musician's",
          "[midi][mapper][buttons]") {
    ControllerConfig c;
    c.musician = "bass";
    c.mappings = {map_of(src(SourceType::note, 1), ControlKind::toggle, ActionType::panic, ""),
                  map_of(src(SourceType::note, 2), ControlKind::momentary, ActionType::panic, ""),
                  map_of(src(SourceType::cc, 3), ControlKind::absolute, ActionType::panic, "")};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    auto out = run(mp, s, note_on(0, 1));
    REQUIRE(out.size() == 1);
    CHECK(out[0].on);
    CHECK(out[0].musician == 1); // narrowed to the bound musician
    CHECK(s.panicked(1));
    CHECK_FALSE(s.panicked(all_musicians));
    CHECK(run(mp, s, note_off(0, 1)).empty()); // latched: the release does nothing
    CHECK(s.panicked(1));
    out = run(mp, s, note_on(0, 1)); // pressed again: released
    REQUIRE(out.size() == 1);
    CHECK_FALSE(out[0].on);
    CHECK_FALSE(s.panicked(1));
    run(mp, s, note_on(0, 2));
    CHECK(s.panicked(1));
    run(mp, s, note_off(0, 2));
    CHECK_FALSE(s.panicked(1));
    run(mp, s, cc(0, 3, 127)); // a latching CC button: level
    CHECK(s.panicked(1));
    run(mp, s, cc(0, 3, 0));
    CHECK_FALSE(s.panicked(1));
    CHECK(mp.stats().scope_rejected == 0);
}

TEST_CASE("soft takeover: no jump until the fader reaches the gain", "[midi][mapper][takeover]") {
    ControllerConfig c;
    Mapping m = map_of(src(SourceType::cc, 7), ControlKind::absolute, ActionType::master);
    m.min_db = -60;
    m.max_db = 0;
    m.takeover = true;
    m.pickup = 0.02;
    c.mappings = {m};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    s.master[0] = -10.0; // position 50/60 = 0.833 (CC ~105.8)

    CHECK(run(mp, s, cc(0, 7, 0)).empty());
    CHECK(run(mp, s, cc(0, 7, 60)).empty());
    CHECK(run(mp, s, cc(0, 7, 100)).empty());
    CHECK(mp.stats().takeover_waits == 3);
    CHECK(s.master[0] == -10.0);
    auto out = run(mp, s, cc(0, 7, 105)); // within 2 % of the travel: picked up
    REQUIRE(out.size() == 1);
    CHECK(run(mp, s, cc(0, 7, 90)).size() == 1); // then it follows
    CHECK(s.master[0] == Approx(-60.0 + 90.0 / 127 * 60));

    s.master[0] = -50.0; // changed elsewhere (scene, socket): must pick up again
    CHECK(run(mp, s, cc(0, 7, 91)).empty());
    // passing the gain in one jump also picks up (position of -50 dB = 0.1667 = CC 21.2)
    CHECK(run(mp, s, cc(0, 7, 10)).size() == 1);

    // reset (replug) forgets the pick-up
    mp.reset();
    s.master[0] = -6.0; // position 0.9
    CHECK(run(mp, s, cc(0, 7, 20)).empty());
    CHECK(run(mp, s, cc(0, 7, 127)).size() == 1); // crossed from below to the top
    CHECK(s.master[0] == 0.0);
    CHECK(run(mp, s, cc(0, 7, 127)).empty()); // the same value again: already there, no action

    // without takeover the same first move jumps
    c.mappings[0].takeover = false;
    Mapper jump = build(c);
    s.master[0] = -10.0;
    CHECK(jump.map(cc(0, 7, 0), s).size() == 1);
}

TEST_CASE("scope: a bound controller changes only its own musician (SPEC §3.5)", "[midi][mapper][scope]") {
    ControllerConfig c;
    c.id = "pad-drums";
    c.musician = "drums";
    Mapping other =
        map_of(src(SourceType::cc, 1), ControlKind::absolute, ActionType::send_gain, "bass", "click");
    Mapping own = map_of(src(SourceType::cc, 2), ControlKind::absolute, ActionType::send_gain, "", "click");
    c.mappings = {other, own};
    auto errs = build_errors(c);
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].mapping == 0);
    CHECK(errs[0].key == "action.musician");
    CHECK_THAT(errs[0].message, Contains("not this controller's musician 'drums'"));
    CHECK_THAT(
        to_string(errs[0], c.id),
        Contains("controllers[pad-drums].mappings[0].action.musician: 'bass' is not this controller's"));

    // Global actions are narrowed to the bound musician; explicit own id is fine.
    Mapping talk = map_of(src(SourceType::note, 1), ControlKind::momentary, ActionType::talkback, "");
    Mapping dim = map_of(src(SourceType::note, 2), ControlKind::toggle, ActionType::dim_all, "");
    Mapping panic = map_of(src(SourceType::note, 3), ControlKind::momentary, ActionType::panic, "");
    Mapping scene = map_of(src(SourceType::note, 4), ControlKind::momentary, ActionType::scene, "drums");
    scene.action.scene = "chorus";
    Mapping learn = map_of(src(SourceType::note, 5), ControlKind::momentary, ActionType::learn, "");
    c.mappings = {own, talk, dim, panic, scene, learn};
    Mapper mp = build(c);
    CHECK(mp.bound_musician() == 0);
    for (const auto& r : mp.mappings()) CHECK(r.action.musician == 0);

    MixSnapshot s(3, 6);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> n(0, 127);
    for (int i = 0; i < 20000; ++i) {
        MidiEvent e = i % 2 ? cc(0, static_cast<uint8_t>(n(rng) % 4), static_cast<uint16_t>(n(rng)))
                            : note_on(0, static_cast<uint8_t>(n(rng) % 8));
        for (const Action& a : run(mp, s, e)) REQUIRE(a.musician == 0);
    }
    CHECK(s.master[1] == 0.0); // bass and vox untouched
    CHECK(s.master[2] == 0.0);
    CHECK(std::all_of(s.send_db.begin() + 6, s.send_db.end(), [](double d) { return d == 0.0; }));
    CHECK(mp.stats().scope_rejected == 0);

    // the run-time check
    Action a;
    a.musician = 1;
    CHECK_FALSE(in_scope(a, 0));
    CHECK(in_scope(a, 1));
    CHECK(in_scope(a, all_musicians));
    a.musician = all_musicians;
    CHECK_FALSE(in_scope(a, 0));

    // unknown bound musician
    c.musician = "nobody";
    CHECK(any_error(build_errors(c), "musician", "no musician 'nobody'"));
}

TEST_CASE("no action can raise a ceiling or a cap; gains stay within +12 dB", "[midi][mapper][scope]") {
    for (std::size_t i = 0; i < action_type_count; ++i) {
        const std::string n = name(static_cast<ActionType>(i));
        INFO(n);
        CHECK(n != "?");
        CHECK(n.find("ceiling") == std::string::npos);
        CHECK(n.find("cap") == std::string::npos);
        CHECK(n.find("limit") == std::string::npos);
        CHECK(n.find("protection") == std::string::npos);
    }
    CHECK(action_from_name("ceiling") == std::nullopt);
    CHECK(action_from_name("max_laeq") == std::nullopt);

    ControllerConfig c;
    Mapping m = map_of(src(SourceType::cc, 7), ControlKind::absolute, ActionType::master);
    m.max_db = 20;
    c.mappings = {m};
    CHECK(any_error(build_errors(c), "max_db", "out of range [-90, 12]"));
    c.mappings[0].max_db = 12;
    c.mappings[0].kind = ControlKind::relative_binary_offset;
    c.mappings[0].step_db = 12;
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    for (int i = 0; i < 50; ++i) run(mp, s, cc(0, 7, 127)); // binary offset +63 steps, many times
    CHECK(s.master[0] == 12.0);
}

TEST_CASE("build: every error at once, with keys", "[midi][mapper][build]") {
    ControllerConfig c;
    c.id = "x";
    c.pair_timeout_ms = 0;
    Mapping m0 =
        map_of(src(SourceType::program, 1), ControlKind::momentary, ActionType::send_mute, "drums", "click");
    Mapping m1 = map_of(src(SourceType::note, 1), ControlKind::absolute, ActionType::master, "nobody");
    Mapping m2 = map_of(src(SourceType::cc, 200, 17), ControlKind::relative_signed_bit, ActionType::send_gain,
                        "drums", "nothing");
    m2.step_db = 0;
    m2.min_db = 0;
    m2.max_db = -6;
    Mapping m3 = map_of(src(SourceType::cc, 3), ControlKind::momentary, ActionType::master);
    m3.takeover = true;
    Mapping m4 = map_of(src(SourceType::cc14, 5), ControlKind::absolute, ActionType::scene, "");
    m4.source.lsb = 5;
    Mapping m5 = map_of(src(SourceType::note, 6), ControlKind::toggle, ActionType::more_me, "");
    m5.action.inputs = {"kick", "kick", "ghost"};
    m5.action.amount_db = 20;
    Mapping m6 = map_of(src(SourceType::note, 7), ControlKind::toggle, ActionType::dim_all, "", "click");
    m6.action.amount_db = 0;
    c.mappings = {m0, m1, m2, m3, m4, m5, m6};
    auto errs = build_errors(c);
    for (const auto& e : errs) UNSCOPED_INFO(to_string(e, c.id));
    CHECK(any_error(errs, "pair_timeout_ms", "out of range [1, 100]"));
    CHECK(any_error(errs, "kind", "a Program Change has no release; use toggle"));
    CHECK(any_error(errs, "kind", "'absolute' does not work with a note control"));
    CHECK(any_error(errs, "action.musician", "no musician 'nobody'"));
    CHECK(any_error(errs, "source.number", "200 is out of range"));
    CHECK(any_error(errs, "source.channel", "18 is out of range [1, 16]"));
    CHECK(any_error(errs, "action.input", "no input 'nothing'"));
    CHECK(any_error(errs, "step_db", "out of range (0, 12]"));
    CHECK(any_error(errs, "max_db", "must be above min_db"));
    CHECK(any_error(errs, "kind", "cannot drive 'master'"));
    CHECK(any_error(errs, "takeover", "needs an absolute control"));
    CHECK(any_error(errs, "source.lsb", "must differ"));
    CHECK(any_error(errs, "kind", "a trigger needs a momentary or toggle button"));
    CHECK(any_error(errs, "action.scene", "needs a scene name"));
    CHECK(any_error(errs, "action.musician", "'more_me' needs a musician"));
    CHECK(any_error(errs, "action.inputs[1]", "listed twice"));
    CHECK(any_error(errs, "action.inputs[2]", "no input 'ghost'"));
    CHECK(any_error(errs, "action.amount_db", "20 is out of range (0, 12]"));
    CHECK(any_error(errs, "action.amount_db", "0 is out of range [-60, 0)"));
    CHECK(any_error(errs, "action.input", "an input has no meaning for 'dim_all'"));
    CHECK(errs.size() >= 20);
    CHECK(std::any_of(errs.begin(), errs.end(), [](const BuildError& e) { return e.mapping == 6; }));
}

TEST_CASE("more actions than fit: counted, not crashing", "[midi][mapper]") {
    ControllerConfig c;
    for (int i = 0; i < 20; ++i)
        c.mappings.push_back(
            map_of(src(SourceType::note, 60), ControlKind::momentary, ActionType::panic, ""));
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    CHECK(mp.map(note_on(0, 60), s).size() == max_actions_per_event);
    CHECK(mp.stats().overflow == 20 - max_actions_per_event);
}

TEST_CASE("learn: captures the next control moved", "[midi][mapper][learn]") {
    ControllerConfig c;
    c.pair_timeout_ms = 10;
    c.mappings = {
        map_of(src(SourceType::note, 99), ControlKind::momentary, ActionType::learn, ""),
        map_of(src(SourceType::note, 10), ControlKind::toggle, ActionType::send_mute, "drums", "click")};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);

    auto out = run(mp, s, note_on(0, 99));
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == ActionType::learn);
    mp.begin_learn();
    CHECK(mp.learning());
    CHECK(run(mp, s, note_off(0, 99)).empty()); // the learn button's release is not captured
    CHECK(mp.learning());
    CHECK(run(mp, s, note_on(3, 10)).empty()); // captured and consumed: no mute
    CHECK_FALSE(s.send_muted(0, 0));
    CHECK_FALSE(mp.learning());
    auto l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->source.type == SourceType::note);
    CHECK(l->source.number == 10);
    CHECK(l->source.channel == 3);
    CHECK(l->motion == ControlKind::momentary); // a button
    CHECK_FALSE(mp.take_learned());             // once

    // A CC is watched while it moves: every event of it is consumed (it never acts through the
    // old mappings), and the watch ends after learn_window_us.
    mp.begin_learn();
    run(mp, s, cc(1, 74, 3, 1000));
    CHECK(mp.learning());
    CHECK(run(mp, s, cc(1, 74, 9, 2000)).empty());
    CHECK(run(mp, s, cc(1, 74, 20, 300000)).empty());
    mp.tick(1000 + learn_window_us - 1, s);
    CHECK(mp.learning());
    mp.tick(1000 + learn_window_us, s);
    CHECK_FALSE(mp.learning());
    l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->source == ControlSource{SourceType::cc, 74, 32, 1}); // lsb keeps its default for a plain cc
    CHECK(l->motion == ControlKind::absolute);
    CHECK_FALSE(l->unclear);
    REQUIRE(l->n_values == 3);
    CHECK(l->values[2] == 20);

    mp.begin_learn();
    run(mp, s, cc(0, 7, 64, 1000));
    CHECK(mp.learning());            // maybe an MSB
    run(mp, s, cc(0, 39, 10, 1500)); // CC 7 + 32 within 10 ms: a 14-bit pair
    l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->source.type == SourceType::cc14);
    CHECK(l->source.number == 7);
    CHECK(l->source.lsb == 39);
    CHECK(l->motion == ControlKind::absolute);

    mp.begin_learn();
    run(mp, s, cc(0, 40, 10, 1000)); // an LSB first, then its MSB: still the pair
    run(mp, s, cc(0, 8, 64, 1200));
    l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->source == ControlSource{SourceType::cc14, 8, 40, 0});

    mp.begin_learn();
    run(mp, s, cc(0, 1, 64, 1000));
    run(mp, s, cc(0, 1, 65, 2000)); // the same fader still moving
    CHECK(mp.learning());
    run(mp, s, cc(0, 33, 5, 20000)); // its "LSB", but too late (10 ms): another control, acts as usual
    l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->source.type == SourceType::cc);
    CHECK(l->source.number == 1);

    mp.begin_learn();
    run(mp, s, bend(5, 100));
    l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->source.type == SourceType::pitch_bend);
    CHECK(l->source.channel == 5);

    mp.begin_learn();
    mp.cancel_learn();
    CHECK_FALSE(mp.learning());
    CHECK(mp.stats().learned == 6);
}

TEST_CASE("learn: the next event of the learned control never acts through the old mappings",
          "[midi][mapper][learn]") {
    // The audit's case: CC 21 is mapped to drums' master; learning it (for another target) while
    // it moves must consume every CC 21 until the capture is taken, 14-bit wait or not.
    ControllerConfig c;
    c.pair_timeout_ms = 10;
    c.mappings = {map_of(src(SourceType::cc, 21), ControlKind::absolute, ActionType::master, "drums"),
                  map_of(src(SourceType::cc, 3), ControlKind::absolute, ActionType::master, "bass")};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    // The daemon installs the binding as soon as take_learned() returns it; until then every
    // event of the control is consumed: a fader moving, one message per 5 ms (the 14-bit wait is
    // 10 ms, so the old code let the third one through).
    mp.begin_learn();
    std::optional<LearnCapture> l;
    int events = 0;
    for (uint64_t t = 0; t < 400000 && !l; t += 5000, ++events) {
        CHECK(run(mp, s, cc(0, 21, static_cast<uint16_t>(10 + t / 10000), 1000 + t)).empty());
        mp.tick(1000 + t + 2500, s);
        l = mp.take_learned();
    }
    REQUIRE(l);
    CHECK(events == static_cast<int>(learn_max_values));
    CHECK(l->n_values == learn_max_values);
    CHECK(s.master[0] == 0.0); // never moved by the old mapping
    // Another control ends the watch at once and acts as usual.
    mp.begin_learn();
    run(mp, s, cc(0, 21, 50, 2000000));
    auto out = run(mp, s, cc(0, 3, 64, 2001000));
    REQUIRE(out.size() == 1);
    CHECK(out[0].musician == 1);
    CHECK(mp.take_learned());
}

TEST_CASE("learn: a relative encoder is told from a fader by its values", "[midi][mapper][learn]") {
    auto guess = [](std::initializer_list<uint8_t> v, bool& unclear) {
        std::vector<uint8_t> a(v);
        return guess_cc_motion(a.data(), a.size(), unclear);
    };
    bool unclear = true;
    // Turned both ways: the encoding.
    CHECK(guess({1, 1, 127, 127}, unclear) == ControlKind::relative_twos_complement);
    CHECK_FALSE(unclear);
    CHECK(guess({1, 2, 65, 66}, unclear) == ControlKind::relative_signed_bit);
    CHECK_FALSE(unclear);
    CHECK(guess({65, 65, 63, 62}, unclear) == ControlKind::relative_binary_offset);
    CHECK_FALSE(unclear);
    // Turned one way, on the side only one encoding uses.
    CHECK(guess({127, 127, 127}, unclear) == ControlKind::relative_twos_complement);
    CHECK_FALSE(unclear);
    CHECK(guess({63, 63}, unclear) == ControlKind::relative_binary_offset);
    CHECK_FALSE(unclear);
    // Turned one way where two encodings agree: an encoder, but which one cannot be told.
    CHECK(guess({1, 1, 1}, unclear) == ControlKind::absolute);
    CHECK(unclear);
    CHECK(guess({65, 65}, unclear) == ControlKind::absolute);
    CHECK(unclear);
    CHECK(guess({127}, unclear) == ControlKind::absolute);
    CHECK(unclear); // one value of 1, 63, 65 or 127: not enough
    // Faders and knobs: positions, each once.
    for (auto v : {std::vector<uint8_t>{10, 12, 15, 19}, std::vector<uint8_t>{1, 2, 3, 4},
                   std::vector<uint8_t>{127, 126, 125}, std::vector<uint8_t>{60, 61, 62, 63, 64, 65},
                   std::vector<uint8_t>{100}, std::vector<uint8_t>{40, 40}}) {
        CHECK(guess_cc_motion(v.data(), v.size(), unclear) == ControlKind::absolute);
        CHECK_FALSE(unclear);
    }
    CHECK(guess_cc_motion(nullptr, 0, unclear) == ControlKind::absolute);

    // Through the Mapper: an encoder turned down then up during learn.
    ControllerConfig c;
    c.mappings = {map_of(src(SourceType::cc, 5), ControlKind::absolute, ActionType::master, "drums")};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    mp.begin_learn();
    for (const uint16_t v : {uint16_t{127}, uint16_t{127}, uint16_t{1}, uint16_t{1}})
        CHECK(run(mp, s, cc(0, 16, v, 1000)).empty());
    mp.tick(1000 + learn_window_us, s);
    const auto l = mp.take_learned();
    REQUIRE(l);
    CHECK(l->motion == ControlKind::relative_twos_complement);
    CHECK_FALSE(l->unclear);
}

TEST_CASE("names round-trip", "[midi][mapper]") {
    for (ControlKind k :
         {ControlKind::absolute, ControlKind::relative_twos_complement, ControlKind::relative_signed_bit,
          ControlKind::relative_binary_offset, ControlKind::momentary, ControlKind::toggle})
        CHECK(kind_from_name(name(k)) == k);
    for (std::size_t i = 0; i < action_type_count; ++i)
        CHECK(action_from_name(name(static_cast<ActionType>(i))) == static_cast<ActionType>(i));
    for (Profile p : {Profile::generic, Profile::apc_mini, Profile::launchpad_mini, Profile::nanokontrol2})
        CHECK(profile_from_name(name(p)) == p);
    CHECK(kind_from_name("relative") == ControlKind::relative_twos_complement);
    CHECK(describe(src(SourceType::cc14, 0, 0)) == "cc14 0/32 ch 1");
    CHECK(describe(src(SourceType::note, 36)) == "note 36 any channel");
}

TEST_CASE("mapper under a flood of random events: bounded gains, consistent counters",
          "[midi][mapper][flood]") {
    ControllerConfig c;
    Mapping fader = map_of(src(SourceType::cc, 7), ControlKind::absolute, ActionType::master, "bass");
    fader.takeover = true;
    Mapping pair =
        map_of(src(SourceType::cc14, 0), ControlKind::absolute, ActionType::send_gain, "drums", "kick");
    pair.curve = Curve::audio_taper;
    pair.max_db = 12;
    Mapping enc = map_of(src(SourceType::cc, 16), ControlKind::relative_twos_complement,
                         ActionType::send_gain, "vox", "vocal");
    Mapping pad =
        map_of(src(SourceType::note, 36), ControlKind::toggle, ActionType::send_mute, "vox", "click");
    Mapping pb = map_of(src(SourceType::pitch_bend, 0), ControlKind::absolute, ActionType::master, "vox");
    pb.curve = Curve::linear_gain;
    c.mappings = {fader, pair, enc, pad, pb};
    Mapper mp = build(c);
    MixSnapshot s(3, 6);
    std::mt19937 rng(99);
    std::uniform_int_distribution<int> any(0, 255);
    uint64_t t = 0;
    uint64_t produced = 0;
    for (int i = 0; i < 100000; ++i) {
        MidiEvent e;
        e.kind = static_cast<EventKind>(1 + any(rng) % 7);
        e.channel = static_cast<uint8_t>(any(rng) % 16);
        e.number = static_cast<uint8_t>(any(rng) % 40);
        e.value = static_cast<uint16_t>(e.kind == EventKind::pitch_bend ? any(rng) * 64 : any(rng) % 128);
        t += static_cast<uint64_t>(any(rng) * 20);
        e.time_us = t;
        const auto out = run(mp, s, e);
        produced += out.size();
        if (i % 100 == 0) produced += mp.tick(t, s).size();
    }
    CHECK(mp.stats().events == 100000);
    CHECK(mp.stats().actions == produced);
    for (double d : s.master) CHECK((std::isinf(d) || (d >= -90.0 && d <= 12.0)));
    for (double d : s.send_db) CHECK((std::isinf(d) || (d >= -90.0 && d <= 12.0)));
}
