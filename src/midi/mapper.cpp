// earshot::midi mapper: config structs -> resolved mappings (build) and MidiEvent -> Actions
// (map). The contract is in include/earshot/midi/mapping.hpp; the model in docs/midi.md.
#include "earshot/midi/mapping.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace earshot::midi {

namespace {

// What an action needs from its control.
enum class ActionClass { continuous, toggle_state, one_shot };

constexpr ActionClass action_class(ActionType t) noexcept {
    switch (t) {
    case ActionType::send_gain:
    case ActionType::master:
        return ActionClass::continuous;
    case ActionType::send_mute:
    case ActionType::more_me:
    case ActionType::talkback:
    case ActionType::dim_all:
    case ActionType::panic:
        return ActionClass::toggle_state;
    case ActionType::scene:
    case ActionType::learn:
        return ActionClass::one_shot;
    }
    return ActionClass::one_shot;
}

constexpr bool is_relative(ControlKind k) noexcept {
    return k == ControlKind::relative_twos_complement || k == ControlKind::relative_signed_bit ||
           k == ControlKind::relative_binary_offset;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

int find_id(const std::vector<std::string>& ids, std::string_view id) {
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == id) return static_cast<int>(i);
    return -1;
}

bool same_db(double a, double b) noexcept {
    if (std::isinf(a) || std::isinf(b)) return a == b;
    return std::fabs(a - b) < 1e-6;
}

double clamp_gain(double db) noexcept {
    if (std::isnan(db) || (std::isinf(db) && db < 0)) return off_db;
    return std::clamp(db, gain_min_db, gain_max_db);
}

double current_gain(const Action& t, const MixView& v) noexcept {
    const double g =
        t.type == ActionType::send_gain ? v.send_gain_db(t.musician, t.input) : v.master_db(t.musician);
    return std::isnan(g) ? off_db : g;
}

bool current_switch(const Action& t, const MixView& v) noexcept {
    switch (t.type) {
    case ActionType::send_mute:
        return v.send_muted(t.musician, t.input);
    case ActionType::more_me:
        return v.more_me(t.musician);
    case ActionType::talkback:
        return v.talkback(t.musician);
    case ActionType::dim_all:
        return v.dimmed(t.musician);
    case ActionType::panic:
        return v.panicked(t.musician);
    default:
        return false;
    }
}

template <typename Enum, std::size_t N>
std::optional<Enum> lookup(std::string_view s,
                           const std::array<std::pair<const char*, Enum>, N>& table) noexcept {
    for (const auto& [n, v] : table)
        if (s == n) return v;
    return std::nullopt;
}

constexpr std::array<std::pair<const char*, ControlKind>, 10> kind_names = {{
    {"absolute", ControlKind::absolute},
    {"relative_twos_complement", ControlKind::relative_twos_complement},
    {"relative", ControlKind::relative_twos_complement},
    {"relative_signed_bit", ControlKind::relative_signed_bit},
    {"relative_binary_offset", ControlKind::relative_binary_offset},
    {"momentary", ControlKind::momentary},
    {"toggle", ControlKind::toggle},
    // spellings found in controller manuals
    {"relative_2s_complement", ControlKind::relative_twos_complement},
    {"relative_sign_magnitude", ControlKind::relative_signed_bit},
    {"relative_offset", ControlKind::relative_binary_offset},
}};
constexpr std::array<std::pair<const char*, Curve>, 4> curve_names = {{
    {"db", Curve::db},
    {"linear_gain", Curve::linear_gain},
    {"audio_taper", Curve::audio_taper},
    {"log", Curve::audio_taper},
}};
constexpr std::array<std::pair<const char*, ActionType>, action_type_count> action_names = {{
    {"send_gain", ActionType::send_gain},
    {"master", ActionType::master},
    {"send_mute", ActionType::send_mute},
    {"more_me", ActionType::more_me},
    {"talkback", ActionType::talkback},
    {"scene", ActionType::scene},
    {"dim_all", ActionType::dim_all},
    {"panic", ActionType::panic},
    {"learn", ActionType::learn},
}};
constexpr std::array<std::pair<const char*, Profile>, 4> profile_names = {{
    {"generic", Profile::generic},
    {"apc_mini", Profile::apc_mini},
    {"launchpad_mini", Profile::launchpad_mini},
    {"nanokontrol2", Profile::nanokontrol2},
}};

} // namespace

// ---------------------------------------------------------------------------------------------
// Names

const char* name(SourceType t) noexcept {
    switch (t) {
    case SourceType::cc:
        return "cc";
    case SourceType::cc14:
        return "cc14";
    case SourceType::note:
        return "note";
    case SourceType::program:
        return "program";
    case SourceType::pitch_bend:
        return "pitch_bend";
    }
    return "?";
}

const char* name(ControlKind k) noexcept {
    for (const auto& [n, v] : kind_names)
        if (v == k) return n;
    return "?";
}

const char* name(Curve c) noexcept {
    for (const auto& [n, v] : curve_names)
        if (v == c) return n;
    return "?";
}

const char* name(ActionType a) noexcept {
    for (const auto& [n, v] : action_names)
        if (v == a) return n;
    return "?";
}

const char* name(Profile p) noexcept {
    for (const auto& [n, v] : profile_names)
        if (v == p) return n;
    return "?";
}

std::optional<ControlKind> kind_from_name(std::string_view s) noexcept {
    return lookup(s, kind_names);
}
std::optional<Curve> curve_from_name(std::string_view s) noexcept {
    return lookup(s, curve_names);
}
std::optional<ActionType> action_from_name(std::string_view s) noexcept {
    return lookup(s, action_names);
}
std::optional<Profile> profile_from_name(std::string_view s) noexcept {
    return lookup(s, profile_names);
}

std::string to_string(const BuildError& e, std::string_view controller_id) {
    std::string s = "controllers[";
    s += controller_id;
    s += "]";
    if (e.mapping >= 0) s += ".mappings[" + std::to_string(e.mapping) + "]";
    if (!e.key.empty()) s += "." + e.key;
    s += ": ";
    s += e.message;
    return s;
}

// ---------------------------------------------------------------------------------------------
// Sources, curves, encoders, scope

bool matches(const ControlSource& s, const MidiEvent& e) noexcept {
    if (s.channel != any_channel && static_cast<int>(e.channel) != s.channel) return false;
    switch (s.type) {
    case SourceType::cc:
        return e.kind == EventKind::cc && e.number == s.number;
    case SourceType::cc14:
        return e.kind == EventKind::cc && (e.number == s.number || e.number == s.lsb);
    case SourceType::note:
        return (e.kind == EventKind::note_on || e.kind == EventKind::note_off) && e.number == s.number;
    case SourceType::program:
        return e.kind == EventKind::program && e.number == s.number;
    case SourceType::pitch_bend:
        return e.kind == EventKind::pitch_bend;
    }
    return false;
}

std::string describe(const ControlSource& s) {
    std::string d = name(s.type);
    switch (s.type) {
    case SourceType::cc14:
        d += " " + std::to_string(s.number) + "/" + std::to_string(s.lsb);
        break;
    case SourceType::pitch_bend:
        break;
    default:
        d += " " + std::to_string(s.number);
        break;
    }
    d += s.channel == any_channel ? std::string(" any channel") : " ch " + std::to_string(s.channel + 1);
    return d;
}

double curve_to_db(Curve c, double x, double min_db, double max_db) noexcept {
    if (!(x > 0.0)) return off_db; // 0 and NaN: off
    if (x >= 1.0) return max_db;
    double d = max_db;
    switch (c) {
    case Curve::db:
        return min_db + x * (max_db - min_db);
    case Curve::linear_gain:
        d = max_db + 20.0 * std::log10(x);
        break;
    case Curve::audio_taper:
        d = max_db + 60.0 * std::log10(x);
        break;
    }
    return d < min_db ? off_db : d;
}

double curve_to_position(Curve c, double db, double min_db, double max_db) noexcept {
    if (std::isnan(db) || db < min_db) return 0.0; // off (-inf) included
    if (db >= max_db) return 1.0;
    switch (c) {
    case Curve::db:
        return (db - min_db) / (max_db - min_db);
    case Curve::linear_gain:
        return std::pow(10.0, (db - max_db) / 20.0);
    case Curve::audio_taper:
        return std::pow(10.0, (db - max_db) / 60.0);
    }
    return 0.0;
}

int relative_steps(ControlKind k, uint8_t value) noexcept {
    const int v = value & 0x7F;
    switch (k) {
    case ControlKind::relative_twos_complement:
        return v < 64 ? v : v - 128;
    case ControlKind::relative_signed_bit:
        return (v & 0x40) ? -(v & 0x3F) : (v & 0x3F);
    case ControlKind::relative_binary_offset:
        return v - 64;
    default:
        return 0;
    }
}

bool in_scope(const Action& a, uint16_t bound) noexcept {
    return bound == all_musicians || a.musician == bound;
}

// ---------------------------------------------------------------------------------------------
// MixSnapshot

MixSnapshot::MixSnapshot(std::size_t n_musicians, std::size_t n_inputs)
    : musicians(n_musicians), inputs(n_inputs), send_db(n_musicians * n_inputs, 0.0),
      mute(n_musicians * n_inputs, 0), master(n_musicians, 0.0), more(n_musicians, 0), talk(n_musicians, 0),
      dim(n_musicians, 0), panic(n_musicians, 0), scenes(n_musicians, -1),
      dose(n_musicians, std::numeric_limits<double>::quiet_NaN()), alert(n_musicians, DoseAlert::none) {}

double MixSnapshot::send_gain_db(uint16_t m, uint16_t i) const noexcept {
    return m < musicians && i < inputs ? send_db[m * inputs + i] : 0.0;
}
bool MixSnapshot::send_muted(uint16_t m, uint16_t i) const noexcept {
    return m < musicians && i < inputs && mute[m * inputs + i] != 0;
}
double MixSnapshot::master_db(uint16_t m) const noexcept {
    return m < musicians ? master[m] : 0.0;
}
bool MixSnapshot::more_me(uint16_t m) const noexcept {
    return m < musicians && more[m] != 0;
}
bool MixSnapshot::talkback(uint16_t m) const noexcept {
    return m == all_musicians ? talk_all : (m < musicians && talk[m] != 0);
}
bool MixSnapshot::dimmed(uint16_t m) const noexcept {
    return m == all_musicians ? dim_all : (m < musicians && dim[m] != 0);
}
bool MixSnapshot::panicked(uint16_t m) const noexcept {
    return m == all_musicians ? panic_all : (m < musicians && panic[m] != 0);
}
int MixSnapshot::scene(uint16_t m) const noexcept {
    return m == all_musicians ? scene_all : (m < musicians ? scenes[m] : -1);
}
double MixSnapshot::dose_pct(uint16_t m) const noexcept {
    return m < musicians ? dose[m] : std::numeric_limits<double>::quiet_NaN();
}
DoseAlert MixSnapshot::dose_alert(uint16_t m) const noexcept {
    return m < musicians ? alert[m] : DoseAlert::none;
}

void MixSnapshot::apply(const Action& a) noexcept {
    const bool all = a.musician == all_musicians;
    const bool one = a.musician < musicians;
    const std::size_t m = a.musician;
    switch (a.type) {
    case ActionType::send_gain:
        if (one && a.input < inputs && !std::isnan(a.db)) send_db[m * inputs + a.input] = clamp_gain(a.db);
        break;
    case ActionType::master:
        if (one && !std::isnan(a.db)) master[m] = clamp_gain(a.db);
        break;
    case ActionType::send_mute:
        if (one && a.input < inputs) mute[m * inputs + a.input] = a.on ? 1 : 0;
        break;
    case ActionType::more_me:
        if (one) more[m] = a.on ? 1 : 0;
        break;
    case ActionType::talkback:
        if (all) talk_all = a.on;
        if (one) talk[m] = a.on ? 1 : 0;
        break;
    case ActionType::dim_all:
        if (all) dim_all = a.on;
        if (one) dim[m] = a.on ? 1 : 0;
        break;
    case ActionType::scene:
        if (all) {
            scene_all = a.scene;
            std::fill(scenes.begin(), scenes.end(), static_cast<int>(a.scene));
        }
        if (one) scenes[m] = a.scene;
        break;
    case ActionType::panic:
        if (all) panic_all = a.on;
        if (one) panic[m] = a.on ? 1 : 0;
        break;
    case ActionType::learn:
        break;
    }
}

// ---------------------------------------------------------------------------------------------
// Building

std::optional<Mapper> Mapper::build(const ControllerConfig& cfg, const Directory& dir,
                                    std::vector<BuildError>& errors) {
    const std::size_t errors_before = errors.size();
    auto err = [&](int mapping, std::string key, std::string msg) {
        errors.push_back(BuildError{mapping, std::move(key), std::move(msg)});
    };

    Mapper m;
    if (dir.musicians.size() >= all_musicians || dir.inputs.size() >= no_input ||
        dir.scenes.size() >= no_scene)
        err(-1, "", "too many musicians, inputs or scenes to index");
    if (cfg.musician) {
        const int b = find_id(dir.musicians, *cfg.musician);
        if (b < 0)
            err(-1, "musician", "no musician '" + *cfg.musician + "'");
        else
            m._bound = static_cast<uint16_t>(b);
    }
    if (!(cfg.pair_timeout_ms >= 1.0 && cfg.pair_timeout_ms <= 100.0))
        err(-1, "pair_timeout_ms", num(cfg.pair_timeout_ms) + " is out of range [1, 100] ms");
    else
        m._pair_timeout_us = static_cast<uint64_t>(std::llround(cfg.pair_timeout_ms * 1000.0));
    if (cfg.mappings.size() > max_mappings)
        err(-1, "mappings",
            std::to_string(cfg.mappings.size()) + " mappings; at most " + std::to_string(max_mappings));
    const bool bound_ok = !cfg.musician || m._bound != all_musicians;

    for (std::size_t n = 0; n < cfg.mappings.size() && n < max_mappings; ++n) {
        const Mapping& mp = cfg.mappings[n];
        const int mi = static_cast<int>(n);
        const ActionSpec& spec = mp.action;
        const ActionClass cls = action_class(spec.type);
        ResolvedMapping r;
        r.source = mp.source;
        r.kind = mp.kind;
        r.curve = mp.curve;
        r.min_db = mp.min_db;
        r.max_db = mp.max_db;
        r.step_db = mp.step_db;
        r.pickup = mp.pickup;
        r.takeover = mp.takeover;
        r.feedback = mp.feedback;

        // The control.
        const ControlSource& s = mp.source;
        if (s.number > 127) err(mi, "source.number", std::to_string(s.number) + " is out of range [0, 127]");
        if (s.type == SourceType::cc14) {
            if (s.lsb > 127) err(mi, "source.lsb", std::to_string(s.lsb) + " is out of range [0, 127]");
            if (s.lsb == s.number)
                err(mi, "source.lsb", "the LSB controller must differ from the MSB controller");
        }
        if (s.channel < any_channel || s.channel > 15)
            err(mi, "source.channel", std::to_string(s.channel + 1) + " is out of range [1, 16] (or any)");

        bool kind_fits_source = false;
        switch (mp.kind) {
        case ControlKind::absolute:
            kind_fits_source =
                s.type == SourceType::cc || s.type == SourceType::cc14 || s.type == SourceType::pitch_bend;
            break;
        case ControlKind::relative_twos_complement:
        case ControlKind::relative_signed_bit:
        case ControlKind::relative_binary_offset:
            kind_fits_source = s.type == SourceType::cc;
            break;
        case ControlKind::momentary:
            kind_fits_source = s.type == SourceType::cc || s.type == SourceType::note;
            break;
        case ControlKind::toggle:
            kind_fits_source =
                s.type == SourceType::cc || s.type == SourceType::note || s.type == SourceType::program;
            break;
        }
        if (!kind_fits_source) {
            std::string why =
                std::string("kind '") + name(mp.kind) + "' does not work with a " + name(s.type) + " control";
            if (mp.kind == ControlKind::momentary && s.type == SourceType::program)
                why += " (a Program Change has no release; use toggle)";
            err(mi, "kind", why);
        }

        bool kind_fits_action = false;
        switch (cls) {
        case ActionClass::continuous:
            kind_fits_action = mp.kind == ControlKind::absolute || is_relative(mp.kind);
            break;
        case ActionClass::toggle_state:
            kind_fits_action = mp.kind == ControlKind::absolute || mp.kind == ControlKind::momentary ||
                               mp.kind == ControlKind::toggle;
            break;
        case ActionClass::one_shot:
            kind_fits_action = mp.kind == ControlKind::momentary || mp.kind == ControlKind::toggle;
            break;
        }
        if (!kind_fits_action)
            err(mi, "kind",
                std::string("kind '") + name(mp.kind) + "' cannot drive '" + name(spec.type) + "' (" +
                    (cls == ActionClass::continuous ? "a gain needs an absolute or relative control"
                     : cls == ActionClass::toggle_state
                         ? "a switch needs a momentary, toggle or absolute control"
                         : "a trigger needs a momentary or toggle button") +
                    ")");

        // Ranges.
        if (cls == ActionClass::continuous) {
            if (!(std::isfinite(mp.min_db) && mp.min_db >= gain_min_db && mp.min_db <= gain_max_db))
                err(mi, "min_db", num(mp.min_db) + " is out of range [-90, 12] dB");
            if (!(std::isfinite(mp.max_db) && mp.max_db >= gain_min_db && mp.max_db <= gain_max_db))
                err(mi, "max_db", num(mp.max_db) + " is out of range [-90, 12] dB");
            else if (std::isfinite(mp.min_db) && !(mp.min_db < mp.max_db))
                err(mi, "max_db", num(mp.max_db) + " must be above min_db (" + num(mp.min_db) + ")");
            if (is_relative(mp.kind) && !(mp.step_db > 0.0 && mp.step_db <= 12.0))
                err(mi, "step_db", num(mp.step_db) + " is out of range (0, 12] dB");
        }
        if (mp.takeover) {
            if (cls != ActionClass::continuous || mp.kind != ControlKind::absolute)
                err(mi, "takeover", "soft takeover needs an absolute control on a gain");
            else if (!(mp.pickup > 0.0 && mp.pickup <= 0.5))
                err(mi, "pickup", num(mp.pickup) + " is out of range (0, 0.5] of the travel");
        }

        // The action's targets.
        Action& a = r.action;
        a.type = spec.type;
        a.mapping = static_cast<uint16_t>(n);
        const bool needs_musician = cls == ActionClass::continuous || spec.type == ActionType::send_mute ||
                                    spec.type == ActionType::more_me;
        if (spec.musician.empty()) {
            if (cfg.musician)
                a.musician = m._bound;
            else if (needs_musician)
                err(mi, "action.musician",
                    std::string("'") + name(spec.type) +
                        "' needs a musician (or bind the controller to one)");
            else
                a.musician = all_musicians;
        } else {
            const int idx = find_id(dir.musicians, spec.musician);
            if (idx < 0)
                err(mi, "action.musician", "no musician '" + spec.musician + "'");
            else if (cfg.musician && bound_ok && static_cast<uint16_t>(idx) != m._bound)
                err(mi, "action.musician",
                    "'" + spec.musician + "' is not this controller's musician '" + *cfg.musician +
                        "': a bound controller changes only its own musician's mix (SPEC §3.5)");
            else
                a.musician = static_cast<uint16_t>(idx);
        }

        const bool wants_input = spec.type == ActionType::send_gain || spec.type == ActionType::send_mute;
        if (wants_input || (spec.type == ActionType::talkback && !spec.input.empty())) {
            const int idx = find_id(dir.inputs, spec.input);
            if (spec.input.empty())
                err(mi, "action.input", std::string("'") + name(spec.type) + "' needs an input");
            else if (idx < 0)
                err(mi, "action.input", "no input '" + spec.input + "'");
            else
                a.input = static_cast<uint16_t>(idx);
        } else if (!spec.input.empty()) {
            err(mi, "action.input", std::string("an input has no meaning for '") + name(spec.type) + "'");
        }

        if (spec.type == ActionType::more_me) {
            if (spec.inputs.empty() || spec.inputs.size() > max_more_me_inputs)
                err(mi, "action.inputs",
                    std::to_string(spec.inputs.size()) + " inputs; 'more_me' raises 1 to " +
                        std::to_string(max_more_me_inputs) + " inputs");
            for (std::size_t k = 0; k < spec.inputs.size() && k < max_more_me_inputs; ++k) {
                const int idx = find_id(dir.inputs, spec.inputs[k]);
                const std::string key = "action.inputs[" + std::to_string(k) + "]";
                if (idx < 0) {
                    err(mi, key, "no input '" + spec.inputs[k] + "'");
                    continue;
                }
                if (std::find(a.inputs.begin(), a.inputs.begin() + a.n_inputs, idx) !=
                    a.inputs.begin() + a.n_inputs)
                    err(mi, key, "input '" + spec.inputs[k] + "' is listed twice");
                a.inputs[a.n_inputs++] = static_cast<uint16_t>(idx);
            }
        } else if (!spec.inputs.empty()) {
            err(mi, "action.inputs", std::string("inputs have no meaning for '") + name(spec.type) + "'");
        }

        if (spec.type == ActionType::scene) {
            const int idx = find_id(dir.scenes, spec.scene);
            if (spec.scene.empty())
                err(mi, "action.scene", "'scene' needs a scene name");
            else if (idx < 0)
                err(mi, "action.scene", "no scene '" + spec.scene + "'");
            else
                a.scene = static_cast<uint16_t>(idx);
        } else if (!spec.scene.empty()) {
            err(mi, "action.scene", std::string("a scene has no meaning for '") + name(spec.type) + "'");
        }

        switch (spec.type) {
        case ActionType::more_me:
            a.db = spec.amount_db.value_or(6.0);
            if (!(a.db > 0.0 && a.db <= 12.0))
                err(mi, "action.amount_db", num(a.db) + " is out of range (0, 12] dB");
            break;
        case ActionType::talkback:
            a.db = spec.amount_db.value_or(-15.0);
            if (!(a.db >= -60.0 && a.db <= 0.0))
                err(mi, "action.amount_db", num(a.db) + " is out of range [-60, 0] dB");
            break;
        case ActionType::dim_all:
            a.db = spec.amount_db.value_or(-20.0);
            if (!(a.db >= -60.0 && a.db < 0.0))
                err(mi, "action.amount_db", num(a.db) + " is out of range [-60, 0) dB");
            break;
        default:
            if (spec.amount_db)
                err(mi, "action.amount_db",
                    std::string("an amount has no meaning for '") + name(spec.type) + "'");
            break;
        }

        m._maps.push_back(r);
    }

    if (errors.size() != errors_before) return std::nullopt;
    m._state.assign(m._maps.size(), MapState{});
    return m;
}

// ---------------------------------------------------------------------------------------------
// Mapping events

void Mapper::push(ActionList& out, const Action& a) noexcept {
    if (!in_scope(a, _bound)) { // unreachable after build(); the second line of defence (SPEC §3.5)
        ++_stats.scope_rejected;
        return;
    }
    if (out.count >= out.items.size()) {
        ++_stats.overflow;
        return;
    }
    out.items[out.count++] = a;
    ++_stats.actions;
}

void Mapper::apply_position(std::size_t i, double x, const MixView& view, ActionList& out) noexcept {
    const ResolvedMapping& mp = _maps[i];
    MapState& st = _state[i];
    if (action_class(mp.action.type) == ActionClass::toggle_state) { // a level-sensitive switch
        const bool on = x >= 0.5;
        st.last_x = x;
        if (on == current_switch(mp.action, view)) return;
        Action a = mp.action;
        a.on = on;
        push(out, a);
        return;
    }
    if (action_class(mp.action.type) != ActionClass::continuous) return;

    if (mp.takeover) {
        // Soft takeover: act only once the control has reached the gain it controls (within the
        // pick-up window, or by passing it since the last message). It stays picked up while the
        // gain is still what this control last set; a change from elsewhere (scene, another
        // controller, the control socket) drops it again.
        const double cur = current_gain(mp.action, view);
        if (!(st.synced && st.sent && same_db(cur, st.last_sent_db))) {
            st.synced = false;
            const double cx = curve_to_position(mp.curve, cur, mp.min_db, mp.max_db);
            const bool near = std::fabs(x - cx) <= mp.pickup;
            const bool crossed = st.last_x >= 0.0 && (st.last_x - cx) * (x - cx) <= 0.0;
            st.synced = near || crossed;
        }
        st.last_x = x;
        if (!st.synced) {
            ++_stats.takeover_waits;
            return;
        }
    } else {
        st.last_x = x;
    }
    Action a = mp.action;
    a.db = curve_to_db(mp.curve, x, mp.min_db, mp.max_db);
    st.last_sent_db = a.db;
    st.sent = true;
    if (same_db(a.db, current_gain(mp.action, view))) return; // already there: no action storm
    push(out, a);
}

void Mapper::apply_relative(std::size_t i, int steps, const MixView& view, ActionList& out) noexcept {
    const ResolvedMapping& mp = _maps[i];
    if (steps == 0 || action_class(mp.action.type) != ActionClass::continuous) return;
    const double cur = current_gain(mp.action, view);
    double next = cur;
    if (std::isinf(cur)) { // off: the first step up lands on min_db, down stays off
        if (steps < 0) return;
        next = std::min(mp.max_db, mp.min_db + (steps - 1) * mp.step_db);
    } else if (steps > 0) {
        if (cur >= mp.max_db) return; // never pulled down by turning up
        next = std::min(mp.max_db, cur + steps * mp.step_db);
    } else {
        next = cur + steps * mp.step_db;
        if (next < mp.min_db) next = off_db; // below the range: off
    }
    if (same_db(next, cur)) return;
    Action a = mp.action;
    a.db = next;
    _state[i].last_sent_db = next;
    _state[i].sent = true;
    push(out, a);
}

void Mapper::apply_button(std::size_t i, bool press, const MixView& view, ActionList& out) noexcept {
    const ResolvedMapping& mp = _maps[i];
    const ActionClass cls = action_class(mp.action.type);
    if (cls == ActionClass::one_shot) {
        if (press) push(out, mp.action);
        return;
    }
    if (cls != ActionClass::toggle_state) return;
    bool on = press;
    if (mp.kind == ControlKind::toggle) {
        if (!press) return; // pads that only send momentary notes: flip on the press only
        on = !current_switch(mp.action, view);
    }
    if (on == current_switch(mp.action, view)) return;
    Action a = mp.action;
    a.on = on;
    push(out, a);
}

void Mapper::flush_pairs(uint64_t now_us, const MixView& view, ActionList& out) noexcept {
    for (std::size_t i = 0; i < _maps.size(); ++i) {
        MapState& st = _state[i];
        if (!st.msb_pending || now_us < st.msb_time_us || now_us - st.msb_time_us < _pair_timeout_us)
            continue;
        st.msb_pending = false;
        ++_stats.pairs_timed_out;
        apply_position(i, static_cast<double>(st.msb << 7) / max_14bit, view, out);
    }
}

ActionList Mapper::map(const MidiEvent& e, const MixView& view) noexcept {
    ActionList out;
    ++_stats.events;
    flush_pairs(e.time_us, view, out); // MSBs that waited too long come first (time order)
    if (_learn != LearnState::idle && learn_event(e)) return out;

    bool matched = false;
    for (std::size_t i = 0; i < _maps.size(); ++i) {
        const ResolvedMapping& mp = _maps[i];
        if (!matches(mp.source, e)) continue;
        matched = true;
        switch (mp.source.type) {
        case SourceType::cc:
            if (mp.kind == ControlKind::absolute)
                apply_position(i, e.value / 127.0, view, out);
            else if (is_relative(mp.kind))
                apply_relative(i, relative_steps(mp.kind, static_cast<uint8_t>(e.value)), view, out);
            else
                apply_button(i, e.value >= 64, view, out);
            break;
        case SourceType::cc14: {
            MapState& st = _state[i];
            if (e.number == mp.source.number) { // MSB: wait for its LSB
                if (st.msb_pending) {           // the previous MSB never got one
                    ++_stats.pairs_timed_out;
                    apply_position(i, static_cast<double>(st.msb << 7) / max_14bit, view, out);
                }
                st.msb = static_cast<uint8_t>(e.value & 0x7F);
                st.msb_pending = true;
                st.have_msb = true;
                st.msb_time_us = e.time_us;
            } else if (st.have_msb) { // LSB: completes the pair, or fine-adjusts the last MSB
                st.msb_pending = false;
                apply_position(i, static_cast<double>((st.msb << 7) | (e.value & 0x7F)) / max_14bit, view,
                               out);
            } // an LSB before any MSB carries no position: ignored
            break;
        }
        case SourceType::note:
            apply_button(i, e.kind == EventKind::note_on, view, out);
            break;
        case SourceType::program:
            apply_button(i, true, view, out);
            break;
        case SourceType::pitch_bend:
            apply_position(i, static_cast<double>(std::min<uint16_t>(e.value, max_14bit)) / max_14bit, view,
                           out);
            break;
        }
    }
    if (!matched) ++_stats.unmatched;
    return out;
}

ActionList Mapper::tick(uint64_t now_us, const MixView& view) noexcept {
    ActionList out;
    flush_pairs(now_us, view, out);
    if (_learn == LearnState::watching_cc && now_us >= _watch_time_us &&
        now_us - _watch_time_us >= learn_window_us)
        finish_watch();
    return out;
}

void Mapper::reset() noexcept {
    for (MapState& st : _state) st = MapState{};
}

// ---------------------------------------------------------------------------------------------
// MIDI learn

ControlKind guess_cc_motion(const uint8_t* v, std::size_t n, bool& unclear) noexcept {
    unclear = false;
    if (v == nullptr || n == 0) return ControlKind::absolute;
    // The ranges relative encoders use around their zero (15 steps each way is more than any
    // acceleration we have seen).
    bool up_small = false; // 1..15: two's complement and signed bit, up
    bool tc_down = false;  // 113..127: two's complement, down
    bool s65 = false;      // 65..79: signed bit down, binary offset up
    bool bo_down = false;  // 49..63: binary offset, down
    bool other = false;    // a value no encoder sends: a position
    bool repeat = false;   // the same value twice in a row: a fader never does that while moving
    for (std::size_t i = 0; i < n; ++i) {
        const uint8_t x = v[i];
        if (x >= 1 && x <= 15)
            up_small = true;
        else if (x >= 113 && x <= 127)
            tc_down = true;
        else if (x >= 65 && x <= 79)
            s65 = true;
        else if (x >= 49 && x <= 63)
            bo_down = true;
        else
            other = true;
        if (i > 0 && x == v[i - 1]) repeat = true;
    }
    if (other) return ControlKind::absolute;
    const int sides = up_small + tc_down + s65 + bo_down;
    if (sides == 2 && up_small && tc_down) return ControlKind::relative_twos_complement;
    if (sides == 2 && up_small && s65) return ControlKind::relative_signed_bit;
    if (sides == 2 && bo_down && s65) return ControlKind::relative_binary_offset;
    if (repeat && sides == 1 && tc_down) return ControlKind::relative_twos_complement;
    if (repeat && sides == 1 && bo_down) return ControlKind::relative_binary_offset;
    if (repeat) {
        unclear = true;
        return ControlKind::absolute;
    }
    if (n == 1 && (v[0] == 1 || v[0] == 63 || v[0] == 65 || v[0] == 127)) unclear = true;
    return ControlKind::absolute;
}

void Mapper::begin_learn() noexcept {
    _learn = LearnState::waiting;
    _learned.reset();
}

void Mapper::cancel_learn() noexcept {
    _learn = LearnState::idle;
}

std::optional<LearnCapture> Mapper::take_learned() noexcept {
    std::optional<LearnCapture> r = _learned;
    _learned.reset();
    return r;
}

void Mapper::finish_watch() noexcept {
    if (_watch.source.type == SourceType::cc) {
        _watch.source.lsb = ControlSource{}.lsb; // a plain cc has no LSB partner
        _watch.motion = guess_cc_motion(_watch.values.data(), _watch.n_values, _watch.unclear);
    } else
        _watch.motion = ControlKind::absolute; // a 14-bit pair is a fader
    _learned = _watch;
    ++_stats.learned;
    _learn = LearnState::idle;
}

// Returns true when the event was consumed by learning.
bool Mapper::learn_event(const MidiEvent& e) noexcept {
    for (const ResolvedMapping& mp : _maps) // the learn button itself keeps working
        if (mp.action.type == ActionType::learn && matches(mp.source, e)) return false;

    if (_learn == LearnState::watching_cc) {
        ControlSource& w = _watch.source;
        if (e.kind == EventKind::cc && static_cast<int>(e.channel) == w.channel) {
            if (e.number == w.number) { // the control being learned, still moving: consumed
                if (_watch.n_values < _watch.values.size())
                    _watch.values[_watch.n_values++] = static_cast<uint8_t>(e.value & 0x7F);
                if (_watch.n_values == _watch.values.size()) finish_watch();
                return true;
            }
            const bool within = e.time_us < _watch_time_us || e.time_us - _watch_time_us <= _pair_timeout_us;
            if (within && w.type == SourceType::cc && w.number < 32 && e.number == w.number + 32) {
                w.type = SourceType::cc14; // the LSB of a 14-bit pair
                w.lsb = e.number;
                finish_watch();
                return true;
            }
            if (within && w.type == SourceType::cc && w.number >= 32 && w.number < 64 &&
                e.number == w.number - 32) { // an LSB came first: this is its MSB
                w.type = SourceType::cc14;
                w.lsb = w.number;
                w.number = e.number;
                finish_watch();
                return true;
            }
        }
        finish_watch(); // another control moved: the watch is over, and that event acts as usual
        return false;
    }

    LearnCapture c;
    ControlSource& s = c.source;
    s.channel = static_cast<int8_t>(e.channel);
    s.number = e.number;
    switch (e.kind) {
    case EventKind::note_on:
        s.type = SourceType::note;
        c.motion = ControlKind::momentary;
        break;
    case EventKind::program:
        s.type = SourceType::program;
        c.motion = ControlKind::momentary;
        break;
    case EventKind::pitch_bend:
        s.type = SourceType::pitch_bend;
        s.number = 0;
        break;
    case EventKind::cc:
        s.type = SourceType::cc;
        c.values[0] = static_cast<uint8_t>(e.value & 0x7F);
        c.n_values = 1;
        _watch = c;
        _watch_time_us = e.time_us;
        _learn = LearnState::watching_cc;
        return true;
    default:
        return true; // releases and pressure are not "moving a control": ignored
    }
    _learned = c;
    ++_stats.learned;
    _learn = LearnState::idle;
    return true;
}

} // namespace earshot::midi
