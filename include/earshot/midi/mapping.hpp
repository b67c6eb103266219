// earshot::midi mapping — what a control surface's controls do (docs/midi.md).
//
// Two layers:
//   1. Plain config structs (ControllerConfig, Mapping, ActionSpec, ...) with ids as strings:
//      what the YAML `controllers:` section becomes. No parsing here; the *_from_name() helpers
//      give the loader one spelling of every enum.
//   2. The Mapper, built off-RT from one ControllerConfig and a Directory (the musician, input
//      and scene ids in the daemon's index order). Building resolves every id to a small index,
//      checks every range and the scope rule, and reports all errors at once. The built Mapper
//      turns MidiEvents into fixed-size Actions: map(event, view) reads the current mix through
//      a MixView (for toggles, relative encoders and soft takeover) and returns an ActionList.
//
// Scope (SPEC §3.5): a controller bound to a musician (`ControllerConfig::musician`) produces
// actions for that musician only: another musician's id is a build error, global actions
// (talkback, scene, dim_all, panic, learn) are narrowed to the bound musician, and map() drops
// (and counts) anything out of scope as a second line of defence. No ActionType can raise a
// ceiling or a loudness cap: the only gains an action sets are sends, masters and the "more me"
// raise, all bounded by max_db <= +12 dB and still under the limiter.
//
// Thread contract: building, the config structs and MixSnapshot allocate [control thread].
// Mapper::map(), tick(), the learn calls, curve_to_db() and curve_to_position() never allocate,
// never lock and take O(number of mappings) time [RT-safe]; a Mapper is used by one thread.
// Indices are valid for the Directory the Mapper was built with: rebuild on every reload.
//
//   std::vector<BuildError> errs;
//   auto mapper = Mapper::build(controller_cfg, directory, errs);   // nullopt + errs when invalid
//   for (const Action& a : mapper->map(event, mix_view)) apply(a);  // before the next event
#pragma once

#include "earshot/midi/event.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace earshot::midi {

// ---------------------------------------------------------------------------------------------
// Limits and sentinels

inline constexpr int any_channel = -1;               // ControlSource::channel: every channel
inline constexpr uint16_t all_musicians = 0xFFFF;    // Action::musician: everyone (unbound only)
inline constexpr uint16_t no_input = 0xFFFF;         // Action::input: none
inline constexpr uint16_t no_scene = 0xFFFF;         // Action::scene: none
inline constexpr std::size_t max_more_me_inputs = 8; // inputs one "more me" raises
inline constexpr std::size_t max_actions_per_event = 16;
inline constexpr std::size_t max_mappings = 512; // per controller
inline constexpr double gain_min_db = -90.0;     // gain range of the config (configuration.md)
inline constexpr double gain_max_db = 12.0;
inline constexpr double off_db = -std::numeric_limits<double>::infinity(); // silence

// ---------------------------------------------------------------------------------------------
// Config structs (ids as strings)

enum class SourceType : uint8_t {
    cc,         // a 7-bit Control Change
    cc14,       // a 14-bit Control Change pair: MSB on `number`, LSB on `lsb`
    note,       // Note On / Note Off on one note
    program,    // one Program Change number (a press; there is no release)
    pitch_bend, // the channel's pitch bend (14-bit)
};

struct ControlSource {
    SourceType type = SourceType::cc;
    uint8_t number = 0;           // controller (cc, cc14 MSB), note or program number 0-127
    uint8_t lsb = 32;             // cc14 only: the LSB controller (MIDI 1.0: MSB number + 32)
    int8_t channel = any_channel; // 0-15 (MIDI channels 1-16), or any_channel

    friend bool operator==(const ControlSource&, const ControlSource&) = default;
};

/// Whether `e` comes from `s` (type, number and channel filter; either half of a cc14 pair).
/// [RT-safe]
bool matches(const ControlSource& s, const MidiEvent& e) noexcept;
/// "cc 7", "cc14 0/32", "note 36", "program 3", "pitch_bend", plus " ch 1-16" or " any channel".
std::string describe(const ControlSource& s);

enum class ControlKind : uint8_t {
    absolute,                 // a fader or knob: its position is the value
    relative_twos_complement, // encoder: 1..63 = +1..+63 steps, 127..64 = -1..-64
    relative_signed_bit,      // encoder: bit 6 = minus, bits 0-5 = steps (0x01 = +1, 0x41 = -1)
    relative_binary_offset,   // encoder: 64 = no change, 65 = +1, 63 = -1
    momentary,                // a button: on while held (press = on, release = off)
    toggle,                   // a button: each press flips the state; releases are ignored
};

enum class Curve : uint8_t {
    db,          // linear in dB from min_db (just above the bottom) to max_db; bottom = off
    linear_gain, // amplitude proportional to the position; below min_db = off
    audio_taper, // amplitude = position cubed (-18 dB at half travel), "log"; below min_db = off
};

/// What a control does. None of these can raise a ceiling or a cap (SPEC §3.5).
enum class ActionType : uint8_t {
    send_gain, // one send's gain in one musician's mix
    master,    // one musician's master
    send_mute, // mute one send (ramped)
    more_me,   // raise the musician's own inputs by amount_db
    talkback,  // talkback: ducks the mix by amount_db (and opens the talkback input if given)
    scene,     // recall a scene
    dim_all,   // dim every mix (or the bound musician's) by amount_db
    panic,     // a switch: while on, everyone (or the bound musician) is silenced
    learn,     // start MIDI learn: the next control moved is captured
};

inline constexpr std::size_t action_type_count = 9;

struct ActionSpec {
    ActionType type = ActionType::master;
    std::string musician;            // musician id; empty = the bound musician, or everyone for
                                     // talkback/scene/dim_all/panic/learn on an unbound controller
    std::string input;               // send_gain, send_mute: the send's input id;
                                     // talkback: the talkback mic's input (optional)
    std::vector<std::string> inputs; // more_me: the musician's own inputs (1-8 input ids)
    std::string scene;               // scene: its name
    std::optional<double> amount_db; // more_me: raise (0, 12], default +6; talkback: duck
                                     // [-60, 0], default -15; dim_all: dim [-60, 0), default -20
};

struct Mapping {
    ControlSource source;
    ControlKind kind = ControlKind::absolute;
    Curve curve = Curve::db; // absolute gains only
    double min_db = -60.0;   // absolute/relative gains: bottom of the range, dB (>= -90)
    double max_db = 0.0;     // top of the range, dB (<= +12)
    double step_db = 0.5;    // relative: dB per encoder step (0, 12]
    bool takeover = false;   // absolute gains: soft takeover (pick-up)
    double pickup = 0.02;    // pick-up window, fraction of the control's travel (0, 0.5]
    bool feedback = true;    // send LED / motor-fader feedback for this control
    ActionSpec action;
};

/// A per-musician dose LED (green / amber / red at the thresholds).
struct DoseLed {
    std::string musician; // musician id; on a bound controller only its own musician
    ControlSource source; // the pad or button carrying the LED: note or cc
};

struct DoseThresholds {
    double amber_pct = 50.0; // dose % at and above which the LED is amber
    double red_pct = 100.0;  // dose % at and above which the LED is red
};

enum class Profile : uint8_t {
    generic,        // echo: CC value back to motor faders, velocity/value 127/0 to LEDs
    apc_mini,       // Akai APC mini (mk1): note velocities select green/red/yellow/blink
    launchpad_mini, // Novation Launchpad Mini (MK1/MK2, Launchpad S protocol): red/green bits
    nanokontrol2,   // Korg nanoKONTROL2, CC mode, LED Mode = External: same CC, 127/0
};

/// One optional override of the LED values a profile sends, indexed by Led (feedback.hpp).
struct LedPalette {
    std::array<uint8_t, 7> value{}; // 0-127 for off, green, green_blink, red, red_blink, amber, amber_blink
};

struct ControllerConfig {
    std::string id;                      // name for messages ("nk2-drums")
    std::optional<std::string> musician; // bound musician id: this controller changes only that mix
    Profile profile = Profile::generic;  // feedback dialect
    double pair_timeout_ms = 10.0;       // cc14: how long an MSB waits for its LSB [1, 100]
    std::vector<Mapping> mappings;       // at most max_mappings
    std::vector<DoseLed> dose_leds;      // per-musician dose LEDs
    DoseThresholds dose;                 // their colours
    std::optional<LedPalette> palette;   // override the profile's LED values
};

/// The ids the daemon indexes, in its index order (config order). Built per config generation.
struct Directory {
    std::vector<std::string> musicians;
    std::vector<std::string> inputs;
    std::vector<std::string> scenes;
};

/// One build error. `mapping` is the index in ControllerConfig::mappings (-1: the controller
/// itself; `key` then starts with e.g. "dose_leds[0]"); `key` is the path below it.
struct BuildError {
    int mapping = -1;
    std::string key;     // "action.musician", "source.channel", "max_db", ...
    std::string message; // "'bass' is not this controller's musician 'drums' (scope, SPEC §3.5)"
};

/// "controllers[<id>].mappings[3].action.musician: <message>".
std::string to_string(const BuildError& e, std::string_view controller_id);

// Names (the spelling the YAML uses). *_from_name() returns nullopt for an unknown name.
const char* name(SourceType t) noexcept;
const char* name(ControlKind k) noexcept;
const char* name(Curve c) noexcept;
const char* name(ActionType a) noexcept;
const char* name(Profile p) noexcept;
std::optional<ControlKind> kind_from_name(std::string_view s) noexcept; // also "relative" = twos complement
std::optional<Curve> curve_from_name(std::string_view s) noexcept;      // also "log" = audio_taper
std::optional<ActionType> action_from_name(std::string_view s) noexcept;
std::optional<Profile> profile_from_name(std::string_view s) noexcept;

// ---------------------------------------------------------------------------------------------
// Curves (pure) — position x in [0, 1] <-> gain in dB

/// x -> dB for a curve over [min_db, max_db]. x <= 0 (and NaN) is off (-inf); x >= 1 is max_db;
/// the result is non-decreasing in x. [RT-safe]
double curve_to_db(Curve c, double x, double min_db, double max_db) noexcept;
/// dB -> the position that gives it (off and anything below the curve's floor -> 0, >= max_db
/// -> 1). Used for pick-up and for motor-fader feedback. [RT-safe]
double curve_to_position(Curve c, double db, double min_db, double max_db) noexcept;

/// Relative encoder value -> signed steps. [RT-safe]
int relative_steps(ControlKind k, uint8_t value) noexcept;

// ---------------------------------------------------------------------------------------------
// Actions (indices, fixed size)

struct Action {
    ActionType type = ActionType::master;
    bool on = false;                   // send_mute / more_me / talkback / dim_all / panic: engaged
    uint8_t n_inputs = 0;              // more_me: entries used in `inputs`
    uint16_t musician = all_musicians; // musician index, or all_musicians
    uint16_t input = no_input;         // send_gain, send_mute: the send; talkback: mic input or none
    uint16_t scene = no_scene;         // scene: scene index
    uint16_t mapping = 0;              // index of the mapping that produced it
    double db = 0.0;                   // send_gain/master: new gain, dB (-inf = off);
                                       // more_me: raise (> 0); talkback: duck (<= 0); dim_all: dim (< 0)
    std::array<uint16_t, max_more_me_inputs> inputs{}; // more_me: input indices

    friend bool operator==(const Action&, const Action&) = default;
};

struct ActionList {
    std::array<Action, max_actions_per_event> items{};
    uint8_t count = 0;

    const Action* begin() const noexcept { return items.data(); }
    const Action* end() const noexcept { return items.data() + count; }
    bool empty() const noexcept { return count == 0; }
    std::size_t size() const noexcept { return count; }
    const Action& operator[](std::size_t i) const noexcept { return items[i]; }
};

/// Scope check (SPEC §3.5): true when `a` may come from a controller bound to `bound`
/// (all_musicians = unbound: everything is in scope). [RT-safe]
bool in_scope(const Action& a, uint16_t bound) noexcept;

// ---------------------------------------------------------------------------------------------
// The current state, read-only

/// A warning shown on a dose LED on top of its colour (docs/midi.md, "Dose LEDs").
enum class DoseAlert : uint8_t {
    none,      // the colour of the dose % only
    notice,    // a dose warning was just given (a threshold reached, the guard over budget): blink
    momentary, // the 1 s level is over the loudness cap or RS2: red, blinking
};

/// What the Mapper and Feedback read. Indices are Directory indices; out-of-range indices must
/// return the defaults (0 dB / false / -1 / NaN / none), never crash. all_musicians asks for
/// the global state (talkback, dim, panic, scene recalled for everyone).
class MixView {
public:
    virtual ~MixView() = default;
    virtual double send_gain_db(uint16_t musician, uint16_t input) const noexcept = 0; // -inf = off
    virtual bool send_muted(uint16_t musician, uint16_t input) const noexcept = 0;
    virtual double master_db(uint16_t musician) const noexcept = 0; // -inf = off
    virtual bool more_me(uint16_t musician) const noexcept = 0;
    virtual bool talkback(uint16_t musician) const noexcept = 0;
    virtual bool dimmed(uint16_t musician) const noexcept = 0;
    virtual bool panicked(uint16_t musician) const noexcept = 0;
    virtual int scene(uint16_t musician) const noexcept = 0;       // last scene recalled, -1 = none
    virtual double dose_pct(uint16_t musician) const noexcept = 0; // NaN = unknown
    virtual DoseAlert dose_alert(uint16_t musician) const noexcept = 0;
};

/// A MixView over plain vectors, with the reference meaning of every action in apply(). The
/// tests and the fuzzer use it; the daemon's own mix state is authoritative and may differ in
/// how it realises talkback, dim and panic.
class MixSnapshot final : public MixView {
public:
    MixSnapshot(std::size_t musicians, std::size_t inputs);

    double send_gain_db(uint16_t musician, uint16_t input) const noexcept override;
    bool send_muted(uint16_t musician, uint16_t input) const noexcept override;
    double master_db(uint16_t musician) const noexcept override;
    bool more_me(uint16_t musician) const noexcept override;
    bool talkback(uint16_t musician) const noexcept override;
    bool dimmed(uint16_t musician) const noexcept override;
    bool panicked(uint16_t musician) const noexcept override;
    int scene(uint16_t musician) const noexcept override;
    double dose_pct(uint16_t musician) const noexcept override;
    DoseAlert dose_alert(uint16_t musician) const noexcept override;

    /// Applies an action: gains are set (and clamped to [-90, +12] dB or off), switches set
    /// (panic too: a flag, the masters are not touched), scene remembered. [any thread, no alloc]
    void apply(const Action& a) noexcept;

    std::size_t musicians;
    std::size_t inputs;
    std::vector<double> send_db;  // [m * inputs + i], dB, -inf = off
    std::vector<uint8_t> mute;    // [m * inputs + i]
    std::vector<double> master;   // [m], dB
    std::vector<uint8_t> more;    // [m]
    std::vector<uint8_t> talk;    // [m]
    std::vector<uint8_t> dim;     // [m]
    std::vector<uint8_t> panic;   // [m]
    std::vector<int> scenes;      // [m]
    std::vector<double> dose;     // [m], %
    std::vector<DoseAlert> alert; // [m]
    bool talk_all = false;        // global talkback
    bool dim_all = false;         // global dim
    bool panic_all = false;       // global panic
    int scene_all = -1;           // last scene recalled for everyone
};

// ---------------------------------------------------------------------------------------------
// The Mapper

/// A mapping with its ids resolved; `action` is the template every produced Action starts from.
struct ResolvedMapping {
    ControlSource source;
    ControlKind kind = ControlKind::absolute;
    Curve curve = Curve::db;
    double min_db = -60.0;
    double max_db = 0.0;
    double step_db = 0.5;
    double pickup = 0.02;
    bool takeover = false;
    bool feedback = true;
    Action action;
};

/// MIDI learn: what was captured. For a CC the values it sent while it was moved are kept (up
/// to learn_max_values within learn_window_us of the first) and tell a fader from a relative
/// encoder (guess_cc_motion()).
inline constexpr std::size_t learn_max_values = 8;
inline constexpr uint64_t learn_window_us = 500000;

struct LearnCapture {
    ControlSource source;
    ControlKind motion = ControlKind::absolute; // cc, cc14, pitch bend: absolute or the relative
                                                // encoding seen; note, program: momentary (a button)
    bool unclear = false; // a cc that moved like a relative encoder whose encoding could not be told
    std::array<uint8_t, learn_max_values> values{}; // cc: the values seen, in order
    uint8_t n_values = 0;
};

/// How a CC moved, from the values it sent while it was moved (in order). Relative encoders send
/// small step counts around their zero: two's complement 1..15 up and 113..127 down, signed bit
/// 1..15 up and 65..79 down, binary offset 65..79 up and 49..63 down; a fader or knob sends
/// its positions, each once. Values on both sides of one encoding's zero give that encoding; a
/// repeated value (an encoder turned one way) on the side only one encoding uses (113..127:
/// two's complement, 49..63: binary offset) gives it too. Otherwise a repeat inside those
/// ranges, or a single value of 1, 63, 65 or 127, sets `unclear` (it looks like an encoder, but
/// which one cannot be told: turn it both ways). Anything else is absolute. [RT-safe, pure]
ControlKind guess_cc_motion(const uint8_t* values, std::size_t n, bool& unclear) noexcept;

struct MapperStats {
    uint64_t events = 0;          // events seen by map()
    uint64_t unmatched = 0;       // events no mapping wanted (other notes, channels, releases of toggles)
    uint64_t actions = 0;         // actions produced
    uint64_t takeover_waits = 0;  // absolute moves ignored until the control picks up the gain
    uint64_t scope_rejected = 0;  // actions dropped by the run-time scope check (should stay 0)
    uint64_t overflow = 0;        // actions beyond max_actions_per_event (dropped)
    uint64_t pairs_timed_out = 0; // cc14 MSBs applied alone after pair_timeout_ms
    uint64_t learned = 0;         // controls captured by MIDI learn
};

class Mapper {
public:
    /// Builds a Mapper from a controller's config; on any error returns nullopt and appends
    /// every error found to `errors`. [control thread; allocates]
    static std::optional<Mapper> build(const ControllerConfig& cfg, const Directory& dir,
                                       std::vector<BuildError>& errors);

    /// Maps one event. Apply the returned actions to the mix state before mapping the next
    /// event, so toggles and relative encoders see their own effect. [RT-safe]
    ActionList map(const MidiEvent& e, const MixView& view) noexcept;

    /// Timers: applies cc14 MSBs whose LSB did not come within pair_timeout_ms, and ends the
    /// learn watch of a CC after learn_window_us. Call it every control tick with the same clock
    /// as the events' time_us. [RT-safe]
    ActionList tick(uint64_t now_us, const MixView& view) noexcept;

    // MIDI learn: begin_learn(), then the next control moved (a Note On, a CC, a Program Change
    // or a pitch bend, on this controller, not one mapped to `learn`) is captured as a
    // ControlSource with its channel, and consumed (it does nothing else). A CC is watched for
    // learn_window_us (or until learn_max_values values): every event of that CC meanwhile is
    // consumed too (it is the control being learned, still moving), its values tell a fader from
    // a relative encoder (LearnCapture::motion), and a CC 0-31 followed within pair_timeout_ms
    // by CC+32 on the same channel (or a CC 32-63 by CC-32) is captured as a cc14 pair at once.
    // The watch ends at the window (tick()), at the last value, or when another control moves
    // (that event then acts as usual). Install the binding as soon as take_learned() returns it,
    // before mapping the next event: no event of the learned control acts through the old mappings.
    void begin_learn() noexcept;
    void cancel_learn() noexcept;
    bool learning() const noexcept { return _learn != LearnState::idle; }
    /// The captured control, once (then cleared). [RT-safe]
    std::optional<LearnCapture> take_learned() noexcept;

    /// Forgets pick-up, 14-bit pairing and toggle edge state (a controller was replugged). [RT-safe]
    void reset() noexcept;

    uint16_t bound_musician() const noexcept { return _bound; }
    const std::vector<ResolvedMapping>& mappings() const noexcept { return _maps; }
    const MapperStats& stats() const noexcept { return _stats; }

private:
    enum class LearnState : uint8_t { idle, waiting, watching_cc };

    struct MapState {              // run-time state of one mapping
        double last_x = -1.0;      // previous absolute position received (< 0: none)
        double last_sent_db = 0.0; // gain this mapping last set
        bool sent = false;         // last_sent_db is valid
        bool synced = false;       // soft takeover: the control has picked up the gain
        bool msb_pending = false;  // cc14: an MSB waits for its LSB
        bool have_msb = false;     // cc14: an MSB was seen (LSB-only fine adjustment)
        uint8_t msb = 0;           // cc14: last MSB
        uint64_t msb_time_us = 0;  // cc14: when it came
    };

    Mapper() = default;
    void push(ActionList& out, const Action& a) noexcept;
    void apply_position(std::size_t i, double x, const MixView& view, ActionList& out) noexcept;
    void apply_relative(std::size_t i, int steps, const MixView& view, ActionList& out) noexcept;
    void apply_button(std::size_t i, bool press, const MixView& view, ActionList& out) noexcept;
    void flush_pairs(uint64_t now_us, const MixView& view, ActionList& out) noexcept;
    bool learn_event(const MidiEvent& e) noexcept;
    void finish_watch() noexcept;

    std::vector<ResolvedMapping> _maps;
    std::vector<MapState> _state;    // parallel to _maps
    uint16_t _bound = all_musicians; // bound musician index
    uint64_t _pair_timeout_us = 10000;
    MapperStats _stats;
    LearnState _learn = LearnState::idle;
    LearnCapture _watch;         // learn: the CC being watched
    uint64_t _watch_time_us = 0; // when its first value came
    std::optional<LearnCapture> _learned;
};

} // namespace earshot::midi
