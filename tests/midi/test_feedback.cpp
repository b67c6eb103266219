// MIDI feedback: the profiles' documented note / velocity / CC values, dose LED colours,
// update() sending only changes, resync() after a replug, motor-fader echo, scope of dose LEDs.
#include "earshot/midi/feedback.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

using namespace earshot::midi;
using Catch::Matchers::Contains;

namespace {

Directory dir() {
    return Directory{{"drums", "bass", "vox"},
                     {"click", "kick", "snare", "bass_di", "vocal", "talk"},
                     {"intro", "verse", "chorus"}};
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

MidiMessage msg(uint8_t a, uint8_t b, uint8_t c) {
    return MidiMessage{{a, b, c}, 3};
}

struct Built {
    Mapper mapper;
    Feedback feedback;
};

Built build(const ControllerConfig& c) {
    std::vector<BuildError> errs;
    auto m = Mapper::build(c, dir(), errs);
    REQUIRE(m);
    auto f = Feedback::build(c, *m, dir(), errs);
    for (const auto& e : errs) UNSCOPED_INFO(to_string(e, c.id));
    REQUIRE(f);
    return Built{std::move(*m), std::move(*f)};
}

void require_valid_midi(const std::vector<MidiMessage>& v) {
    for (const MidiMessage& m : v) {
        REQUIRE(m.size == 3);
        REQUIRE(m.bytes[0] >= 0x80);
        REQUIRE(m.bytes[0] < 0xF0);
        REQUIRE(m.bytes[1] < 0x80);
        REQUIRE(m.bytes[2] < 0x80);
    }
}

} // namespace

TEST_CASE("APC mini: grid notes and documented LED velocities", "[midi][feedback][apc_mini]") {
    CHECK(apc_mini_grid_note(0, 0) == 56); // top left
    CHECK(apc_mini_grid_note(0, 7) == 63);
    CHECK(apc_mini_grid_note(7, 0) == 0); // bottom left
    CHECK(apc_mini_grid_note(7, 7) == 7);
    // 0 off, 1 green, 2 green blink, 3 red, 4 red blink, 5 yellow, 6 yellow blink
    CHECK(apc_mini_velocity(0, Led::off) == 0);
    CHECK(apc_mini_velocity(0, Led::green) == 1);
    CHECK(apc_mini_velocity(0, Led::green_blink) == 2);
    CHECK(apc_mini_velocity(0, Led::red) == 3);
    CHECK(apc_mini_velocity(0, Led::red_blink) == 4);
    CHECK(apc_mini_velocity(0, Led::amber) == 5);
    CHECK(apc_mini_velocity(0, Led::amber_blink) == 6);
    // round buttons (track 64-71 red, scene 82-89 green): 0 off, 1 on, 2 blink
    CHECK(apc_mini_velocity(64, Led::red) == 1);
    CHECK(apc_mini_velocity(89, Led::green) == 1);
    CHECK(apc_mini_velocity(82, Led::red_blink) == 2);
    CHECK(apc_mini_velocity(70, Led::off) == 0);

    CHECK(led_message(Profile::apc_mini, src(SourceType::note, 5, 3), Led::red) == msg(0x90, 5, 3));
    CHECK(led_message(Profile::apc_mini, src(SourceType::note, 85), Led::green) == msg(0x90, 85, 1));
    CHECK_FALSE(led_message(Profile::apc_mini, src(SourceType::note, 98), Led::red)); // shift: no LED
    CHECK_FALSE(led_message(Profile::apc_mini, src(SourceType::cc, 48), Led::red));   // a fader
    std::array<MidiMessage, 2> out;
    CHECK(value_messages(Profile::apc_mini, src(SourceType::cc, 48), 0.5, out) == 0); // no motors
    CHECK(init_messages(Profile::apc_mini).empty());
}

TEST_CASE("Launchpad Mini: 16*row+col notes, red/green bits with copy/clear flags",
          "[midi][feedback][launchpad]") {
    CHECK(launchpad_grid_note(0, 0) == 0);
    CHECK(launchpad_grid_note(1, 0) == 16);
    CHECK(launchpad_grid_note(7, 7) == 119);
    CHECK(launchpad_grid_note(0, 8) == 8); // the round button right of row 0
    // velocity = 16 * green + red + flags; flags 12 = steady (copy+clear), 8 = flash
    CHECK(launchpad_velocity(Led::off) == 0x0C);
    CHECK(launchpad_velocity(Led::red) == 0x0F);
    CHECK(launchpad_velocity(Led::green) == 0x3C);
    CHECK(launchpad_velocity(Led::amber) == 0x3F);
    CHECK(launchpad_velocity(Led::red_blink) == 0x0B);
    CHECK(launchpad_velocity(Led::green_blink) == 0x38);
    CHECK(launchpad_velocity(Led::amber_blink) == 0x3B);
    CHECK(launchpad_colour(1, 1, false) == 0x1D);  // low red + low green
    CHECK(launchpad_colour(9, -1, false) == 0x0F); // clamped

    CHECK(led_message(Profile::launchpad_mini, src(SourceType::note, 0x23), Led::green) ==
          msg(0x90, 0x23, 0x3C));
    CHECK(led_message(Profile::launchpad_mini, src(SourceType::cc, 104), Led::red) == msg(0xB0, 104, 0x0F));
    CHECK_FALSE(led_message(Profile::launchpad_mini, src(SourceType::note, 9), Led::red)); // column 9: none
    CHECK_FALSE(led_message(Profile::launchpad_mini, src(SourceType::note, 0x80 - 1), Led::red));
    CHECK_FALSE(led_message(Profile::launchpad_mini, src(SourceType::cc, 7), Led::red));
    // Reset (all LEDs off), X-Y layout, automatic flashing: in that order.
    REQUIRE(init_messages(Profile::launchpad_mini).size() == 3);
    CHECK(init_messages(Profile::launchpad_mini)[0] == msg(0xB0, 0x00, 0x00));
    CHECK(init_messages(Profile::launchpad_mini)[1] == msg(0xB0, 0x00, 0x01));
    CHECK(init_messages(Profile::launchpad_mini)[2] == msg(0xB0, 0x00, 0x28));
}

TEST_CASE("nanoKONTROL2 and generic: 127/0 LEDs, motor-fader echo", "[midi][feedback]") {
    // nanoKONTROL2 CC mode, LED Mode External: the same CC, 127 lit / 0 dark
    CHECK(led_message(Profile::nanokontrol2, src(SourceType::cc, 48), Led::red) == msg(0xB0, 48, 127));
    CHECK(led_message(Profile::nanokontrol2, src(SourceType::cc, 48, 2), Led::off) == msg(0xB2, 48, 0));
    CHECK(led_message(Profile::nanokontrol2, src(SourceType::cc, 32), Led::amber_blink) ==
          msg(0xB0, 32, 127));
    CHECK_FALSE(led_message(Profile::nanokontrol2, src(SourceType::note, 1), Led::red));

    CHECK(led_message(Profile::generic, src(SourceType::note, 36, 9), Led::green) == msg(0x99, 36, 127));
    CHECK(led_message(Profile::generic, src(SourceType::note, 36), Led::off) == msg(0x90, 36, 0));
    CHECK(led_message(Profile::generic, src(SourceType::cc, 20), Led::red) == msg(0xB0, 20, 127));
    CHECK_FALSE(led_message(Profile::generic, src(SourceType::program, 1), Led::red));

    LedPalette pal;
    pal.value = {0, 10, 11, 20, 21, 30, 31};
    CHECK(led_message(Profile::generic, src(SourceType::note, 1), Led::amber, &pal) == msg(0x90, 1, 30));
    CHECK(led_message(Profile::apc_mini, src(SourceType::note, 1), Led::red, &pal) == msg(0x90, 1, 20));

    std::array<MidiMessage, 2> out;
    REQUIRE(value_messages(Profile::generic, src(SourceType::cc, 7, 1), 1.0, out) == 1);
    CHECK(out[0] == msg(0xB1, 7, 127));
    REQUIRE(value_messages(Profile::generic, src(SourceType::cc14, 0), 0.5, out) == 2);
    CHECK(out[0] == msg(0xB0, 0, 64)); // 8192 = MSB 64, LSB 0
    CHECK(out[1] == msg(0xB0, 32, 0));
    REQUIRE(value_messages(Profile::generic, src(SourceType::pitch_bend, 0, 3), 1.0, out) == 1);
    CHECK(out[0] == msg(0xE3, 0x7F, 0x7F));
    CHECK(value_messages(Profile::nanokontrol2, src(SourceType::cc, 0), 0.5, out) == 0); // no motors
}

TEST_CASE("nanoKONTROL2: only the buttons with an LED can be lit", "[midi][feedback]") {
    // Factory CC layout: faders 0-7, knobs 16-23 (no LEDs); S 32-39, M 48-55, R 64-71, play 41,
    // stop 42, rewind 43, fast forward 44, record 45, cycle 46 (LEDs); track 58/59 and marker
    // 60/61/62 (no LEDs).
    std::vector<int> lit;
    for (int n = 0; n < 128; ++n)
        if (led_message(Profile::nanokontrol2, src(SourceType::cc, static_cast<uint8_t>(n)), Led::red))
            lit.push_back(n);
    std::vector<int> want;
    for (int n = 32; n <= 39; ++n) want.push_back(n);
    for (int n = 41; n <= 46; ++n) want.push_back(n);
    for (int n = 48; n <= 55; ++n) want.push_back(n);
    for (int n = 64; n <= 71; ++n) want.push_back(n);
    CHECK(lit == want);
    CHECK(nanokontrol2_has_led(46));
    CHECK_FALSE(nanokontrol2_has_led(0));
    CHECK_FALSE(nanokontrol2_has_led(58));

    // A dose LED on a fader is a config error (it validated and never lit before).
    ControllerConfig c;
    c.id = "nk2";
    c.profile = Profile::nanokontrol2;
    c.dose_leds = {DoseLed{"bass", src(SourceType::cc, 0)}};
    std::vector<BuildError> errs;
    auto m = Mapper::build(c, dir(), errs);
    REQUIRE(m);
    CHECK_FALSE(Feedback::build(c, *m, dir(), errs));
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0].message,
               Contains("cc 0") && Contains("has no LED the nanokontrol2 profile can light"));
    // ... and a mute on a knob gets no LED slot (nothing would light).
    c.dose_leds.clear();
    c.mappings = {
        map_of(src(SourceType::cc, 16), ControlKind::absolute, ActionType::send_mute, "bass", "kick")};
    Built b = build(c);
    CHECK(b.feedback.slot_count() == 0);
}

TEST_CASE("panic has an LED: red, blinking, while engaged", "[midi][feedback]") {
    CHECK(switch_led(ActionType::panic, true) == Led::red_blink);
    CHECK(switch_led(ActionType::panic, false) == Led::off);
    ControllerConfig c;
    c.id = "apc";
    c.profile = Profile::apc_mini;
    c.musician = "bass";
    c.mappings = {map_of(src(SourceType::note, 64), ControlKind::toggle, ActionType::panic, "")};
    Built b = build(c);
    REQUIRE(b.feedback.slot_count() == 1);
    MixSnapshot s(3, 6);
    CHECK(b.feedback.resync(s) == std::vector<MidiMessage>{msg(0x90, 64, 0)});
    for (const Action& a : b.mapper.map(MidiEvent{0, EventKind::note_on, 0, 64, 0, 127}, s)) s.apply(a);
    CHECK(s.panicked(1));
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 64, 2)}); // a round button: blink
    s.panic[1] = 0; // released from elsewhere (`earshot panic off`)
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 64, 0)});
}

TEST_CASE("dose LED: warnings blink on top of the colour", "[midi][feedback][dose]") {
    const DoseThresholds t; // 50 / 100
    CHECK(dose_led(10.0, t, DoseAlert::none) == Led::green);
    CHECK(dose_led(10.0, t, DoseAlert::notice) == Led::green_blink);
    CHECK(dose_led(60.0, t, DoseAlert::notice) == Led::amber_blink);
    CHECK(dose_led(120.0, t, DoseAlert::notice) == Led::red_blink);
    CHECK(dose_led(std::nan(""), t, DoseAlert::notice) == Led::amber_blink);
    CHECK(dose_led(10.0, t, DoseAlert::momentary) == Led::red_blink); // too loud now, whatever the dose
    CHECK(dose_led(std::nan(""), t, DoseAlert::none) == Led::off);

    ControllerConfig c;
    c.id = "apc";
    c.profile = Profile::apc_mini;
    c.musician = "drums";
    c.dose_leds = {DoseLed{"drums", src(SourceType::note, 56)}};
    Built b = build(c);
    MixSnapshot s(3, 6);
    s.dose[0] = 10.0;
    CHECK(b.feedback.resync(s) == std::vector<MidiMessage>{msg(0x90, 56, 1)}); // green
    s.alert[0] = DoseAlert::momentary;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 56, 4)}); // red blink
    s.alert[0] = DoseAlert::none;
    s.dose[0] = 55.0;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 56, 5)}); // amber
    s.alert[0] = DoseAlert::notice;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 56, 6)}); // amber blink
}

TEST_CASE("dose LED: green / amber / red at the thresholds", "[midi][feedback][dose]") {
    const DoseThresholds t; // 50 / 100
    CHECK(dose_led(std::nan(""), t) == Led::off);
    CHECK(dose_led(-1.0, t) == Led::off);
    CHECK(dose_led(0.0, t) == Led::green);
    CHECK(dose_led(49.99, t) == Led::green);
    CHECK(dose_led(50.0, t) == Led::amber);
    CHECK(dose_led(99.9, t) == Led::amber);
    CHECK(dose_led(100.0, t) == Led::red);
    CHECK(dose_led(250.0, t) == Led::red);
    const DoseThresholds strict{25.0, 60.0};
    CHECK(dose_led(30.0, strict) == Led::amber);
    CHECK(dose_led(60.0, strict) == Led::red);

    CHECK(switch_led(ActionType::send_mute, true) == Led::red);
    CHECK(switch_led(ActionType::more_me, true) == Led::green);
    CHECK(switch_led(ActionType::talkback, true) == Led::amber);
    CHECK(switch_led(ActionType::send_mute, false) == Led::off);
}

TEST_CASE("feedback on an APC mini: resync, then only the changes", "[midi][feedback][apc_mini]") {
    ControllerConfig c;
    c.id = "apc";
    c.profile = Profile::apc_mini;
    c.musician = "drums";
    Mapping scene_a = map_of(src(SourceType::note, 82), ControlKind::momentary, ActionType::scene, "");
    scene_a.action.scene = "intro";
    Mapping scene_b = map_of(src(SourceType::note, 83), ControlKind::momentary, ActionType::scene, "");
    scene_b.action.scene = "verse";
    Mapping fader =
        map_of(src(SourceType::cc, 48), ControlKind::absolute, ActionType::send_gain, "", "click");
    c.mappings = {map_of(src(SourceType::note, 0), ControlKind::toggle, ActionType::send_mute, "", "click"),
                  scene_a, scene_b, fader,
                  map_of(src(SourceType::note, 7), ControlKind::momentary, ActionType::learn, "")};
    c.dose_leds = {DoseLed{"drums", src(SourceType::note, 56)}};
    c.dose = DoseThresholds{50.0, 100.0};
    Built b = build(c);
    CHECK(b.feedback.slot_count() == 5); // mute, two scenes, learn, dose (the fader has no motor)

    MixSnapshot s(3, 6);
    s.dose[0] = 10.0;
    auto all = b.feedback.resync(s);
    require_valid_midi(all);
    CHECK(all == std::vector<MidiMessage>{msg(0x90, 0, 0), msg(0x90, 82, 0), msg(0x90, 83, 0),
                                          msg(0x90, 7, 0), msg(0x90, 56, 1)});
    CHECK(b.feedback.update(s).empty()); // nothing changed

    // a press on pad 0 mutes the click: its LED goes red, nothing else is sent
    for (const Action& a : b.mapper.map(MidiEvent{0, EventKind::note_on, 0, 0, 0, 127}, s)) s.apply(a);
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 0, 3)});

    // a scene recall for drums lights its button; the dose turns amber, then red
    Action recall;
    recall.type = ActionType::scene;
    recall.musician = 0;
    recall.scene = 1;
    s.apply(recall);
    s.dose[0] = 75.0;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 83, 1), msg(0x90, 56, 5)});
    s.dose[0] = 120.0;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0x90, 56, 3)});

    // learning: the learn pad blinks yellow
    CHECK(b.feedback.update(s, true) == std::vector<MidiMessage>{msg(0x90, 7, 6)});

    // replugged: everything again, in slot order
    auto again = b.feedback.resync(s);
    CHECK(again == std::vector<MidiMessage>{msg(0x90, 0, 3), msg(0x90, 82, 0), msg(0x90, 83, 1),
                                            msg(0x90, 7, 0), msg(0x90, 56, 3)});
}

TEST_CASE("feedback on a nanoKONTROL2: mute LEDs by CC", "[midi][feedback]") {
    ControllerConfig c;
    c.profile = Profile::nanokontrol2;
    c.mappings = {
        map_of(src(SourceType::cc, 48, 0), ControlKind::toggle, ActionType::send_mute, "bass", "kick"),
        map_of(src(SourceType::cc, 0, 0), ControlKind::absolute, ActionType::master, "bass"),
        map_of(src(SourceType::cc, 64, 0), ControlKind::momentary, ActionType::talkback, "")};
    Built b = build(c);
    CHECK(b.feedback.slot_count() == 2);
    MixSnapshot s(3, 6);
    CHECK(b.feedback.resync(s) == std::vector<MidiMessage>{msg(0xB0, 48, 0), msg(0xB0, 64, 0)});
    s.mute[1 * 6 + 1] = 1;
    s.talk_all = true;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0xB0, 48, 127), msg(0xB0, 64, 127)});
}

TEST_CASE("generic motor faders follow the gain", "[midi][feedback]") {
    ControllerConfig c;
    Mapping fader = map_of(src(SourceType::cc, 7, 0), ControlKind::absolute, ActionType::master, "vox");
    fader.min_db = -60;
    fader.max_db = 0;
    Mapping fine =
        map_of(src(SourceType::cc14, 1, 0), ControlKind::absolute, ActionType::send_gain, "vox", "vocal");
    Mapping enc = map_of(src(SourceType::cc, 16, 0), ControlKind::relative_binary_offset,
                         ActionType::send_gain, "vox", "click");
    Mapping quiet = map_of(src(SourceType::cc, 8, 0), ControlKind::absolute, ActionType::master, "bass");
    quiet.feedback = false;
    c.mappings = {fader, fine, enc, quiet};
    Built b = build(c);
    CHECK(b.feedback.slot_count() == 2); // encoders and feedback: false get no echo
    MixSnapshot s(3, 6);
    s.master[2] = -30.0;
    s.send_db[2 * 6 + 4] = off_db;
    auto all = b.feedback.resync(s);
    require_valid_midi(all);
    CHECK(all == std::vector<MidiMessage>{msg(0xB0, 7, 64), msg(0xB0, 1, 0), msg(0xB0, 33, 0)});
    s.master[2] = 0.0;
    CHECK(b.feedback.update(s) == std::vector<MidiMessage>{msg(0xB0, 7, 127)});
    s.master[2] = -0.01; // below one 7-bit step: no message
    CHECK(b.feedback.update(s).empty());
}

TEST_CASE("feedback build errors: dose LEDs in scope, thresholds, LEDs that exist",
          "[midi][feedback][scope]") {
    ControllerConfig c;
    c.id = "pad";
    c.profile = Profile::apc_mini;
    c.musician = "drums";
    c.dose_leds = {DoseLed{"bass", src(SourceType::note, 1)}, DoseLed{"drums", src(SourceType::cc, 48)},
                   DoseLed{"ghost", src(SourceType::note, 2)}, DoseLed{"drums", src(SourceType::program, 2)}};
    c.dose = DoseThresholds{80.0, 50.0};
    std::vector<BuildError> errs;
    auto m = Mapper::build(c, dir(), errs);
    REQUIRE(m);
    CHECK_FALSE(Feedback::build(c, *m, dir(), errs));
    REQUIRE(errs.size() == 5);
    CHECK_THAT(to_string(errs[0], c.id), Contains("controllers[pad].dose: thresholds need"));
    CHECK_THAT(errs[1].message, Contains("shows only its own musician's dose"));
    CHECK_THAT(errs[2].message, Contains("has no LED the apc_mini profile can light"));
    CHECK_THAT(errs[3].message, Contains("no musician 'ghost'"));
    CHECK(errs[4].key == "dose_leds[3].source");
}
