// earshot::midi feedback: profiles and the slot table. The values and their sources are in
// docs/midi.md ("Feedback profiles"); the contract in include/earshot/midi/feedback.hpp.
#include "earshot/midi/feedback.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace earshot::midi {

namespace {

uint8_t ch_of(const ControlSource& s) noexcept {
    return s.channel == any_channel ? uint8_t{0} : static_cast<uint8_t>(s.channel & 0x0F);
}

bool is_blink(Led l) noexcept {
    return l == Led::green_blink || l == Led::red_blink || l == Led::amber_blink;
}

uint8_t quantize(double position, double full_scale) noexcept {
    const double x = std::isnan(position) ? 0.0 : std::clamp(position, 0.0, 1.0);
    return static_cast<uint8_t>(std::lround(x * full_scale));
}

int find_id(const std::vector<std::string>& ids, const std::string& id) {
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == id) return static_cast<int>(i);
    return -1;
}

} // namespace

const char* name(Led l) noexcept {
    switch (l) {
    case Led::off:
        return "off";
    case Led::green:
        return "green";
    case Led::green_blink:
        return "green_blink";
    case Led::red:
        return "red";
    case Led::red_blink:
        return "red_blink";
    case Led::amber:
        return "amber";
    case Led::amber_blink:
        return "amber_blink";
    }
    return "?";
}

MidiMessage note_on_message(uint8_t channel, uint8_t note, uint8_t velocity) noexcept {
    return MidiMessage{{static_cast<uint8_t>(0x90 | (channel & 0x0F)), static_cast<uint8_t>(note & 0x7F),
                        static_cast<uint8_t>(velocity & 0x7F)},
                       3};
}

MidiMessage cc_message(uint8_t channel, uint8_t controller, uint8_t value) noexcept {
    return MidiMessage{{static_cast<uint8_t>(0xB0 | (channel & 0x0F)),
                        static_cast<uint8_t>(controller & 0x7F), static_cast<uint8_t>(value & 0x7F)},
                       3};
}

MidiMessage pitch_bend_message(uint8_t channel, uint16_t value14) noexcept {
    const uint16_t v = std::min(value14, max_14bit);
    return MidiMessage{{static_cast<uint8_t>(0xE0 | (channel & 0x0F)), static_cast<uint8_t>(v & 0x7F),
                        static_cast<uint8_t>(v >> 7)},
                       3};
}

Led dose_led(double pct, const DoseThresholds& t) noexcept {
    if (!(pct >= 0.0)) return Led::off; // unknown
    if (pct >= t.red_pct) return Led::red;
    if (pct >= t.amber_pct) return Led::amber;
    return Led::green;
}

Led dose_led(double pct, const DoseThresholds& t, DoseAlert alert) noexcept {
    const Led base = dose_led(pct, t);
    switch (alert) {
    case DoseAlert::none:
        return base;
    case DoseAlert::momentary:
        return Led::red_blink;
    case DoseAlert::notice:
        switch (base) {
        case Led::green:
            return Led::green_blink;
        case Led::red:
            return Led::red_blink;
        default:
            return Led::amber_blink; // amber, or a dose not known yet
        }
    }
    return base;
}

bool nanokontrol2_has_led(uint8_t cc) noexcept {
    return (cc >= 32 && cc <= 39) || (cc >= 48 && cc <= 55) || (cc >= 64 && cc <= 71) ||
           (cc >= 41 && cc <= 46);
}

Led switch_led(ActionType t, bool on) noexcept {
    if (!on) return Led::off;
    switch (t) {
    case ActionType::send_mute:
        return Led::red;
    case ActionType::more_me:
        return Led::green;
    case ActionType::panic:
        return Led::red_blink;
    default:
        return Led::amber; // talkback, dim
    }
}

uint8_t apc_mini_grid_note(int row, int col) noexcept {
    const int r = std::clamp(row, 0, 7);
    const int c = std::clamp(col, 0, 7);
    return static_cast<uint8_t>((7 - r) * 8 + c);
}

uint8_t apc_mini_velocity(uint8_t note, Led l) noexcept {
    if (note <= 63) {
        switch (l) {
        case Led::off:
            return 0;
        case Led::green:
            return 1;
        case Led::green_blink:
            return 2;
        case Led::red:
            return 3;
        case Led::red_blink:
            return 4;
        case Led::amber:
            return 5; // "yellow"
        case Led::amber_blink:
            return 6;
        }
        return 0;
    }
    // Round buttons: one colour each (track 64-71 red, scene 82-89 green): off / on / blink.
    if (l == Led::off) return 0;
    return is_blink(l) ? 2 : 1;
}

uint8_t launchpad_grid_note(int row, int col) noexcept {
    return static_cast<uint8_t>(16 * std::clamp(row, 0, 7) + std::clamp(col, 0, 8));
}

uint8_t launchpad_colour(int red, int green, bool flash) noexcept {
    return static_cast<uint8_t>(16 * std::clamp(green, 0, 3) + std::clamp(red, 0, 3) + (flash ? 8 : 12));
}

uint8_t launchpad_velocity(Led l) noexcept {
    switch (l) {
    case Led::off:
        return launchpad_colour(0, 0, false);
    case Led::green:
        return launchpad_colour(0, 3, false);
    case Led::green_blink:
        return launchpad_colour(0, 3, true);
    case Led::red:
        return launchpad_colour(3, 0, false);
    case Led::red_blink:
        return launchpad_colour(3, 0, true);
    case Led::amber:
        return launchpad_colour(3, 3, false);
    case Led::amber_blink:
        return launchpad_colour(3, 3, true);
    }
    return launchpad_colour(0, 0, false);
}

std::optional<MidiMessage> led_message(Profile p, const ControlSource& s, Led l,
                                       const LedPalette* palette) noexcept {
    const auto led_index = static_cast<std::size_t>(l);
    auto value = [&](uint8_t profile_value) -> uint8_t {
        return palette != nullptr ? static_cast<uint8_t>(palette->value[led_index] & 0x7F) : profile_value;
    };
    const bool note = s.type == SourceType::note;
    const bool cc = s.type == SourceType::cc;
    switch (p) {
    case Profile::generic:
        if (note) return note_on_message(ch_of(s), s.number, value(l == Led::off ? 0 : 127));
        if (cc) return cc_message(ch_of(s), s.number, value(l == Led::off ? 0 : 127));
        return std::nullopt;
    case Profile::apc_mini:
        // LED messages are Note On on channel 1 whatever channel the button sends on.
        if (note && (s.number <= 71 || (s.number >= 82 && s.number <= 89)))
            return note_on_message(0, s.number, value(apc_mini_velocity(s.number, l)));
        return std::nullopt;
    case Profile::launchpad_mini:
        if (note && (s.number & 0x0F) <= 8 && (s.number >> 4) <= 7)
            return note_on_message(0, s.number, value(launchpad_velocity(l)));
        if (cc && s.number >= 104 && s.number <= 111)
            return cc_message(0, s.number, value(launchpad_velocity(l)));
        return std::nullopt;
    case Profile::nanokontrol2:
        if (cc && nanokontrol2_has_led(s.number))
            return cc_message(ch_of(s), s.number, value(l == Led::off ? 0 : 127));
        return std::nullopt;
    }
    return std::nullopt;
}

std::size_t value_messages(Profile p, const ControlSource& s, double position,
                           std::array<MidiMessage, 2>& out) noexcept {
    if (p != Profile::generic) return 0; // the other profiles' faders have no motors
    switch (s.type) {
    case SourceType::cc:
        out[0] = cc_message(ch_of(s), s.number, quantize(position, 127.0));
        return 1;
    case SourceType::cc14: {
        const double x = std::isnan(position) ? 0.0 : std::clamp(position, 0.0, 1.0);
        const auto v = static_cast<uint16_t>(std::lround(x * max_14bit));
        out[0] = cc_message(ch_of(s), s.number, static_cast<uint8_t>(v >> 7));
        out[1] = cc_message(ch_of(s), s.lsb, static_cast<uint8_t>(v & 0x7F));
        return 2;
    }
    case SourceType::pitch_bend: {
        const double x = std::isnan(position) ? 0.0 : std::clamp(position, 0.0, 1.0);
        out[0] = pitch_bend_message(ch_of(s), static_cast<uint16_t>(std::lround(x * max_14bit)));
        return 1;
    }
    default:
        return 0;
    }
}

std::vector<MidiMessage> init_messages(Profile p) {
    // Launchpad: reset (all LEDs off, X-Y layout), select the X-Y layout, automatic flashing on.
    if (p == Profile::launchpad_mini)
        return {cc_message(0, 0, 0x00), cc_message(0, 0, 0x01), cc_message(0, 0, 0x28)};
    return {};
}

// ---------------------------------------------------------------------------------------------

std::optional<Feedback> Feedback::build(const ControllerConfig& cfg, const Mapper& mapper,
                                        const Directory& dir, std::vector<BuildError>& errors) {
    const std::size_t errors_before = errors.size();
    Feedback f;
    f._profile = cfg.profile;
    f._palette = cfg.palette;
    f._dose = cfg.dose;

    if (!(cfg.dose.amber_pct >= 0.0 && cfg.dose.amber_pct < cfg.dose.red_pct && cfg.dose.red_pct <= 10000.0))
        errors.push_back({-1, "dose",
                          "thresholds need 0 <= amber_pct < red_pct <= 10000 (got " +
                              std::to_string(cfg.dose.amber_pct) + ", " + std::to_string(cfg.dose.red_pct) +
                              ")"});
    if (cfg.palette)
        for (std::size_t k = 0; k < led_count; ++k)
            if (cfg.palette->value[k] > 127)
                errors.push_back({-1, std::string("palette.") + name(static_cast<Led>(k)),
                                  std::to_string(cfg.palette->value[k]) + " is out of range [0, 127]"});

    const LedPalette* pal = f._palette ? &*f._palette : nullptr;
    auto has_led = [&](const ControlSource& s) {
        return led_message(f._profile, s, Led::off, pal).has_value();
    };
    auto taken = [&](const ControlSource& s) {
        return std::any_of(f._slots.begin(), f._slots.end(), [&](const Slot& o) { return o.source == s; });
    };

    for (const ResolvedMapping& mp : mapper.mappings()) {
        if (!mp.feedback || taken(mp.source)) continue; // one slot per control: the first mapping wins
        Slot s;
        s.source = mp.source;
        s.target = mp.action;
        s.curve = mp.curve;
        s.min_db = mp.min_db;
        s.max_db = mp.max_db;
        switch (mp.action.type) {
        case ActionType::send_gain:
        case ActionType::master: {
            std::array<MidiMessage, 2> probe;
            if (mp.kind != ControlKind::absolute || value_messages(f._profile, mp.source, 0.0, probe) == 0)
                continue;
            s.kind = SlotKind::value;
            break;
        }
        case ActionType::send_mute:
        case ActionType::more_me:
        case ActionType::talkback:
        case ActionType::dim_all:
        case ActionType::panic:
            if (!has_led(mp.source)) continue;
            s.kind = SlotKind::switch_led;
            break;
        case ActionType::scene:
            if (!has_led(mp.source)) continue;
            s.kind = SlotKind::scene_led;
            break;
        case ActionType::learn:
            if (!has_led(mp.source)) continue;
            s.kind = SlotKind::learn_led;
            break;
        }
        f._slots.push_back(s);
    }

    const uint16_t bound = mapper.bound_musician();
    for (std::size_t k = 0; k < cfg.dose_leds.size(); ++k) {
        const DoseLed& d = cfg.dose_leds[k];
        const std::string key = "dose_leds[" + std::to_string(k) + "]";
        const int idx = find_id(dir.musicians, d.musician);
        if (idx < 0) {
            errors.push_back({-1, key + ".musician", "no musician '" + d.musician + "'"});
            continue;
        }
        if (bound != all_musicians && static_cast<uint16_t>(idx) != bound) {
            errors.push_back({-1, key + ".musician",
                              "'" + d.musician +
                                  "' is not this controller's musician: a bound controller "
                                  "shows only its own musician's dose"});
            continue;
        }
        if (d.source.type != SourceType::note && d.source.type != SourceType::cc) {
            errors.push_back({-1, key + ".source", "a dose LED is a note or a cc"});
            continue;
        }
        if (d.source.number > 127 || d.source.channel < any_channel || d.source.channel > 15) {
            errors.push_back({-1, key + ".source", "note/cc 0-127 and channel 1-16"});
            continue;
        }
        if (!has_led(d.source)) {
            errors.push_back(
                {-1, key + ".source",
                 describe(d.source) + " has no LED the " + name(cfg.profile) + " profile can light"});
            continue;
        }
        Slot s;
        s.kind = SlotKind::dose_led;
        s.source = d.source;
        s.target.musician = static_cast<uint16_t>(idx);
        // A dose LED replaces a mapping's LED on the same control.
        f._slots.erase(
            std::remove_if(f._slots.begin(), f._slots.end(),
                           [&](const Slot& o) { return o.source == s.source && o.kind != SlotKind::value; }),
            f._slots.end());
        f._slots.push_back(s);
    }

    if (errors.size() != errors_before) return std::nullopt;
    return f;
}

uint16_t Feedback::desired(const Slot& s, const MixView& view, bool learning) const noexcept {
    switch (s.kind) {
    case SlotKind::value: {
        const double db = s.target.type == ActionType::send_gain
                              ? view.send_gain_db(s.target.musician, s.target.input)
                              : view.master_db(s.target.musician);
        const double x = curve_to_position(s.curve, db, s.min_db, s.max_db);
        const double full = s.source.type == SourceType::cc ? 127.0 : static_cast<double>(max_14bit);
        return static_cast<uint16_t>(std::lround(std::clamp(x, 0.0, 1.0) * full));
    }
    case SlotKind::switch_led: {
        bool on = false;
        switch (s.target.type) {
        case ActionType::send_mute:
            on = view.send_muted(s.target.musician, s.target.input);
            break;
        case ActionType::more_me:
            on = view.more_me(s.target.musician);
            break;
        case ActionType::talkback:
            on = view.talkback(s.target.musician);
            break;
        case ActionType::dim_all:
            on = view.dimmed(s.target.musician);
            break;
        case ActionType::panic:
            on = view.panicked(s.target.musician);
            break;
        default:
            break;
        }
        return static_cast<uint16_t>(switch_led(s.target.type, on));
    }
    case SlotKind::scene_led:
        return static_cast<uint16_t>(
            view.scene(s.target.musician) == static_cast<int>(s.target.scene) ? Led::green : Led::off);
    case SlotKind::learn_led:
        return static_cast<uint16_t>(learning ? Led::amber_blink : Led::off);
    case SlotKind::dose_led:
        return static_cast<uint16_t>(
            dose_led(view.dose_pct(s.target.musician), _dose, view.dose_alert(s.target.musician)));
    }
    return 0;
}

void Feedback::emit(const Slot& s, uint16_t code, std::vector<MidiMessage>& out) const {
    if (s.kind == SlotKind::value) {
        const double full = s.source.type == SourceType::cc ? 127.0 : static_cast<double>(max_14bit);
        std::array<MidiMessage, 2> msgs;
        const std::size_t n = value_messages(_profile, s.source, code / full, msgs);
        out.insert(out.end(), msgs.begin(), msgs.begin() + static_cast<std::ptrdiff_t>(n));
        return;
    }
    if (auto m = led_message(_profile, s.source, static_cast<Led>(code), _palette ? &*_palette : nullptr))
        out.push_back(*m);
}

std::vector<MidiMessage> Feedback::update(const MixView& view, bool learning) {
    std::vector<MidiMessage> out;
    for (Slot& s : _slots) {
        const uint16_t code = desired(s, view, learning);
        if (code == s.shown) continue;
        s.shown = code;
        emit(s, code, out);
    }
    return out;
}

std::vector<MidiMessage> Feedback::resync(const MixView& view, bool learning) {
    std::vector<MidiMessage> out = init_messages(_profile);
    for (Slot& s : _slots) {
        s.shown = desired(s, view, learning);
        emit(s, s.shown, out);
    }
    return out;
}

} // namespace earshot::midi
