// earshot::config — the typed, validated configuration (SPEC §2).
//
// A Config is produced only by the loader (loader.hpp), which validates every key against the
// parameter table (docs/configuration.md) and reports all errors at once. Everything in a Config
// is therefore in range; consumers do not re-validate.
//
// Thread contract: plain values, built and read on the control thread; never touched by RT code
// (the engine copies what it needs into its MixGraph).
//
//   config::Config c = config::load_file("configs/club-4piece.yaml");   // throws ConfigErrors
//   double k = config::calibration_offset_db(c.musicians[0].calibration);
#pragma once

#include "earshot/midi/mapping.hpp"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace earshot::config {

/// Where a value was written: 1-based line and column in `file`.
struct Mark {
    std::string file;
    int line = 0;
    int col = 0;
};

/// A JACK port to connect to: an exact port name, or a regular expression written /like this/.
struct ConnectRule {
    std::string pattern; // the name, or the regex without its slashes
    bool is_regex = false;
};

/// Whether `port` (a full JACK port name, "client:port") is selected by `rule`: equal to the name,
/// or matched in full by the regex (ECMAScript syntax, std::regex_match). [control thread];
/// allocates (compiles the regex).
bool connect_matches(const ConnectRule& rule, const std::string& port);

/// Whether a MIDI port name (as RtMidi lists it) is selected by a controller's `port` or
/// `feedback` rule: a plain string is a *substring* of the name, a /regex/ must match the whole
/// name (ECMAScript). [control thread]; allocates.
bool midi_port_matches(const ConnectRule& rule, const std::string& port_name);

/// What `earshot learn TARGET` (and a learn pad's `target:`) binds a control to:
/// `<musician>.master`, `<musician>.send.<input>` (the send's gain) or `<musician>.mute.<input>`.
struct LearnTarget {
    enum class Kind { master, send, mute };
    Kind kind = Kind::master;
    std::string musician;
    std::string input; // send, mute
    std::string str() const;
};
/// Parses a target; nullopt with `err` set when the syntax is wrong (ids are not checked here).
std::optional<LearnTarget> parse_learn_target(std::string_view text, std::string& err);

/// A calibrated measurement microphone: a 1 kHz sine whose peak is at sine_dbfs on this input is
/// db_spl (RMS, field) at the mic. Its A-weighted level is the stage level for `ambient`.
struct Measurement {
    double sine_dbfs = -20.0; // [-60, 0] dBFS peak
    double db_spl = 94.0;     // [40, 140] dB SPL
};

struct Input {
    std::string id;                         // [a-z0-9_-]+, unique; JACK port <client>:<id>
    std::vector<ConnectRule> connect;       // sources to auto-connect
    std::optional<Measurement> measurement; // set: a calibrated stage-level mic (hearing-dose.md §4.4)
    Mark mark;
};

/// Stage noise reaching a musician's ears through the earpieces: (stage LAeq - isolation_db),
/// added by energy to the musician's exposure.
struct Ambient {
    std::string input;        // a measurement input's id
    double isolation_db = 25; // [0, 60] dB, the earpieces' (or the wedge listener's: 0) insertion loss
};

enum class OutputKind { mono, stereo };
enum class Reference { field, eardrum };

struct Calibration {
    double sine_dbfs = -20.0; // peak level (dBFS) of the calibration sine, [-60, 0]
    double db_spl = 94.0;     // RMS SPL it measures at the ear, [40, 140] dB
    Reference reference = Reference::field;
};

struct Protection {
    double peak_ceiling_db_spl = 115.0;    // absolute peak SPL ceiling, [80, 140] dB
    std::optional<double> max_laeq_1s_dba; // short-term loudness cap, [80, 110] dBA
    double lookahead_ms = 1.0;             // limiter look-ahead, [0.5, 1.5] ms
    double release_ms = 80.0;              // limiter release time constant, [10, 2000] ms
};

struct Send {
    std::string input;    // an Input id
    double gain_db = 0.0; // [-90, +12] dB, or -inf ("off")
    double pan = 0.0;     // [-1, 1]; stereo outputs only
    bool mute = false;
    Mark mark;
};

struct Mix {
    double master_db = 0.0;  // [-90, +12] dB, or -inf ("off")
    std::vector<Send> sends; // inputs not listed are off
};

struct Musician {
    std::string id;   // [a-z0-9_-]+, unique; the person's stable identity
    std::string name; // display name (defaults to id)
    OutputKind output = OutputKind::stereo;
    std::vector<ConnectRule> connect; // playback ports for the output(s), in order (L, R)
    Calibration calibration;
    Protection protection;
    Mix mix;
    std::optional<Ambient> ambient; // stage leakage source, if any
    Mark mark;

    int channels() const noexcept { return output == OutputKind::stereo ? 2 : 1; }
};

struct Jack {
    std::string client_name = "earshot"; // [A-Za-z0-9_-]{1,32}
};

struct Mixer {
    double ramp_ms = 20.0;         // fader/mute/pan ramp length, [1, 500] ms
    double startup_ramp_ms = 2000; // fade-in from silence at start-up and reconnect, [10, 10000] ms
};

enum class GuardMode { off, warn, limit };
enum class GuardBudget { niosh, who };

struct Dosimetry {
    int day_starts_min = 6 * 60; // local time the dose day starts, minutes after midnight ("06:00")
    int who_mode = 1;            // H.870 weekly allowance: 1 = 1.6 Pa^2 h, 2 = 0.51 Pa^2 h (75 dBA x 40 h)
    int keep_days = 730;         // exposure-log retention in dose days, [8, 3650]
    // Dose-aware protection (docs/protection.md).
    GuardMode guard = GuardMode::off; // the dose budget guard
    GuardBudget guard_budget = GuardBudget::niosh;
    double guard_rate_db_per_min = 2.0; // fastest attenuation change, [0.1, 12] dB/min (1 dB per 30 s)
    double guard_depth_db = 12.0;       // deepest attenuation, [0, 40] dB
    std::vector<double> warn_pct = {50, 80, 100}; // dose warnings (then every further 100 %), ascending
    double rs2_dba = 100.0;                       // momentary warning level (IEC 62368-1 RS2), [80, 100] dBA
};

/// The planned show (for the dose guard): an end time today, or a length from start-up.
struct Show {
    int end_min = -1;      // local time the show ends, minutes after midnight (-1: not set)
    double length_min = 0; // or its length in minutes from earshotd's start, (0, 1440] (0: not set)
};

/// The daemon's control socket (docs/control-protocol.md).
struct Control {
    std::string group; // group owning the socket; its members may change things ("" = the daemon's group)
    std::string read_group; // optional wider group allowed read-only commands (status, subscribe, scene list)
    int max_clients = 256;  // concurrent connections, [1, 1024]
};

/// A MIDI control surface (docs/midi.md, docs/configuration.md "controllers").
struct Controller {
    enum class Api { alsa, jack };
    std::string id;                         // [a-z0-9_-]+, unique among controllers
    Api api = Api::alsa;                    // RtMidi API: alsa (USB devices on a rig) or jack (JACK MIDI)
    ConnectRule port;                       // the source port to open: substring or /regex/ of its name
    std::optional<ConnectRule> feedback;    // where LED / motor-fader messages go (none: no feedback)
    midi::ControllerConfig midi;            // id, bound musician, profile, mappings, dose LEDs
    std::vector<std::string> learn_targets; // parallel to midi.mappings: a learn pad's `target`
                                            // ("" = the last target touched)
    Mark mark;
};

struct Config {
    int version = 1;
    Jack jack;
    Control control;
    Mixer mixer;
    Dosimetry dosimetry;
    Show show;
    std::vector<Input> inputs;
    std::vector<Musician> musicians;
    std::vector<Controller> controllers; // MIDI control surfaces
    std::string source;                  // file name the config was read from ("<string>" for in-memory)

    /// Index of the input with this id, or -1.
    int input_index(const std::string& id) const noexcept;
    /// Index of the musician with this id, or -1.
    int musician_index(const std::string& id) const noexcept;
};

/// The ids the MIDI core indexes, in the daemon's index order: musicians and inputs in config
/// order, scenes = the scene names the controllers' mappings refer to, in order of appearance.
midi::Directory midi_directory(const Config& cfg);

/// dB to add to a digital level (peak dBFS, or 10 log10 of a mean square re amplitude 1.0 for
/// RMS) to get dB SPL at the ear: db_spl - sine_dbfs + 3.0103 (SPEC §2).
inline double calibration_offset_db(const Calibration& c) noexcept {
    return c.db_spl - c.sine_dbfs + 3.010299956639812;
}

/// Offset for a measurement mic: digital RMS dB (re amplitude 1.0 mean square) -> dB SPL.
inline double measurement_offset_db(const Measurement& m) noexcept {
    return m.db_spl - m.sine_dbfs + 3.010299956639812;
}

/// The musician's digital ceiling in dBFS (peak): peak_ceiling_db_spl - offset, at most 0 dBFS.
inline double ceiling_dbfs(const Musician& m) noexcept {
    const double d = m.protection.peak_ceiling_db_spl - calibration_offset_db(m.calibration);
    return d < 0.0 ? d : 0.0;
}

} // namespace earshot::config
