#include "params.hpp"

#include <cmath>

namespace earshot::config {

const std::vector<ParamSpec>& param_table() {
    static const double none = std::nan("");
    static const std::vector<ParamSpec> t = {
        {"version", "", 1, 1, none, true, false, "schema version; must be 1"},
        {"mixer.ramp_ms", "ms", 1, 500, 20, false, false, "length of every fader, pan, mute and scene ramp"},
        {"mixer.startup_ramp_ms", "ms", 10, 10000, 2000, false, false,
         "fade-in from silence at start-up, reconnect and for a new musician"},
        {"musicians[].calibration.sine_dbfs", "dBFS", -60, 0, -20, false, false,
         "peak level of the 1 kHz calibration sine"},
        {"musicians[].calibration.db_spl", "dB SPL", 40, 140, 94, false, false,
         "RMS sound pressure level the calibration sine measures at the ear"},
        {"musicians[].protection.peak_ceiling_db_spl", "dB SPL", 80, 140, none, true, false,
         "absolute peak SPL ceiling at the ear (true-peak limiter + clamp)"},
        {"musicians[].protection.max_laeq_1s_dba", "dBA", 80, 110, none, false, false,
         "short-term loudness cap, A-weighted 1 s level (optional; enforced with the protection issue)"},
        {"musicians[].protection.lookahead_ms", "ms", 0.5, 1.5, 1.0, false, false,
         "limiter look-ahead = added latency (changes apply at restart)"},
        {"musicians[].protection.release_ms", "ms", 10, 2000, 80, false, false,
         "limiter release time constant"},
        {"inputs[].measurement.sine_dbfs", "dBFS", -60, 0, -20, false, false,
         "measurement mic: peak level of the 1 kHz calibration sine on this input"},
        {"inputs[].measurement.db_spl", "dB SPL", 40, 140, 94, false, false,
         "measurement mic: RMS SPL at the mic for that sine"},
        {"musicians[].ambient.isolation_db", "dB", 0, 60, 25, false, false,
         "insertion loss between the stage and the ear (IEM seal; 0 for a wedge)"},
        {"control.max_clients", "", 1, 1024, 256, false, false,
         "control socket: concurrent connections (more are refused with an error)"},
        {"dosimetry.keep_days", "days", 8, 3650, 730, false, false,
         "exposure-log retention: older day files are deleted"},
        {"dosimetry.who_mode", "", 1, 2, 1, false, false,
         "WHO/H.870 weekly allowance: 1 = 1.6 Pa2h, 2 = 0.51 Pa2h"},
        {"dosimetry.guard_rate_db_per_min", "dB/min", 0.1, 12, 2, false, false,
         "dose guard: fastest change of its attenuation (2 = 1 dB per 30 s)"},
        {"dosimetry.guard_depth_db", "dB", 0, 40, 12, false, false, "dose guard: deepest attenuation"},
        {"dosimetry.warn_pct[]", "%", 1, 10000, none, false, false,
         "dose warning thresholds (default 50, 80, 100; then every further 100 %)"},
        {"dosimetry.rs2_dba", "dBA", 80, 100, 100, false, false,
         "momentary warning when a musician's LAeq,1s exceeds it (IEC 62368-1 RS2)"},
        {"show.length_min", "min", 1, 1440, none, false, false,
         "planned show length from earshotd's start (instead of show.end)"},
        {"musicians[].mix.master_db", "dB", -90, 12, 0, false, true, "musician's master gain; off = silence"},
        {"musicians[].mix.sends.<input>.gain_db", "dB", -90, 12, 0, false, true, "send gain; off = silence"},
        {"musicians[].mix.sends.<input>.pan", "", -1, 1, 0, false, false,
         "constant-power pan, -1 hard left .. 1 hard right (stereo outputs only)"},
        // MIDI controllers (docs/midi.md)
        {"controllers[].pair_timeout_ms", "ms", 1, 100, 10, false, false,
         "14-bit CC: how long an MSB waits for its LSB before it is applied alone"},
        {"controllers[].dose.amber_pct", "%", 0, 10000, 50, false, false,
         "dose LEDs turn amber at this dose (NIOSH daily %)"},
        {"controllers[].dose.red_pct", "%", 0, 10000, 100, false, false,
         "dose LEDs turn red at this dose (above amber_pct)"},
        {"controllers[].palette.<led>", "", 0, 127, none, false, false,
         "LED value sent for off, green, green_blink, red, red_blink, amber, amber_blink"},
        {"controllers[].dose_leds[].note", "", 0, 127, none, false, false,
         "the pad (note) carrying a dose LED"},
        {"controllers[].dose_leds[].cc", "", 0, 127, none, false, false,
         "the button (CC) carrying a dose LED"},
        {"controllers[].dose_leds[].channel", "", 1, 16, 1, false, false, "MIDI channel of the dose LED"},
        {"controllers[].mappings[].cc", "", 0, 127, none, false, false, "source: a Control Change number"},
        {"controllers[].mappings[].cc14[]", "", 0, 127, none, false, false,
         "source: a 14-bit CC pair [MSB, LSB] (MIDI 1.0: [n, n + 32])"},
        {"controllers[].mappings[].note", "", 0, 127, none, false, false, "source: a note (pad, button)"},
        {"controllers[].mappings[].program", "", 0, 127, none, false, false,
         "source: a Program Change number"},
        {"controllers[].mappings[].channel", "", 1, 16, none, false, false,
         "MIDI channel the control sends on (default: any channel)"},
        {"controllers[].mappings[].min_db", "dB", -90, 12, -60, false, false,
         "gains: bottom of the control's range (just above it is min_db; the bottom is off)"},
        {"controllers[].mappings[].max_db", "dB", -90, 12, 0, false, false,
         "gains: top of the control's range"},
        {"controllers[].mappings[].step_db", "dB", 0.01, 12, 0.5, false, false,
         "relative encoders: dB per step"},
        {"controllers[].mappings[].pickup", "", 0.001, 0.5, 0.02, false, false,
         "soft takeover: pick-up window, fraction of the control's travel"},
        {"controllers[].mappings[].amount_db", "dB", -60, 12, none, false, false,
         "more_me raise (0, 12] (default 6); talkback duck [-60, 0] (default -15); dim_all [-60, 0) (default "
         "-20)"},
    };
    return t;
}

const ParamSpec* find_param(std::string_view key) {
    for (const ParamSpec& p : param_table())
        if (p.key == key) return &p;
    return nullptr;
}

} // namespace earshot::config
