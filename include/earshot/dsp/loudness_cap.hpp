// earshot::dsp::LoudnessCap — the slow A-weighted loudness limiter of one musician's mix (issue 7;
// SPEC §2 `protection.max_laeq_1s_dba`, §3 "loudness cap"; hearing-dose.md §5.2 item 3). It keeps
// the 1 s A-weighted level (LAeq,1s) of the louder ear at or below a cap, IEC 62368-1 RS2 style.
//
// Signal path (feed-forward, channels linked, in place, no added latency), per 10 ms segment:
//   x_c --sanitise--[diffuse-field correction]--> A-weighting --> x_A^2, summed per segment and ear
//   box:   P = the louder ear's mean square over the last 100 segments (1 s);
//          g_box -> min(1, sqrt(cap / P)): down at once, up at <= release_db_per_s (3 dB/s)
//   clamp: the output's own A-weighted energy per segment (the same squares times g^2); for every
//          1 s window that ends 1..100 segments from now, (output energy already in it) + (the rest
//          at the box's mean power) <= cap. c -> the factor on top of g_box that this needs, at most
//          6 dB deep: down at once, up at 1 dB/s
//   g = g_box * c (>= -60 dB) --> linear ramp across the next segment --> x_c *= g
// The box alone is exact on steady signals (g^2 P = cap once the box is full). The clamp acts only
// when the music's 1 s level rises faster than a 1 s average follows (accents, fills), holding the
// windows still open to the cap; it does not charge the first second of a step (a rise of more than
// 6 dB within 1 s, which no causal limiter can hold) nor the first second after being switched on.
// Below the cap g is exactly 1: no gain change at all (no pumping). The detector is the dose meter's
// own measure (the same AcWeighting design and, for `reference: eardrum`, the same
// DiffuseFieldCorrection before it), so the cap's level is the meter's level. Peaks are the
// true-peak limiter's job (it follows this unit). Settings take effect at the next segment boundary.
// docs/protection.md has the design, the time constants and the measured figures.
//
// Levels are digital: the cap is an A-weighted mean square re amplitude 1.0 (set_cap_ms), or its
// 10 log10 (set_cap_db): cap_db = max_laeq_1s_dba - config::calibration_offset_db(calibration),
// the LevelMeter convention. A NaN/Inf input sample counts as silence in the detector (and is left
// as it is in the signal: the engine sanitises inputs, the limiter after this unit sanitises again).
//
// Thread contract: prepare() [control thread] may throw (rate out of range, like AcWeighting);
// every other method is noexcept and [RT-safe]. The unit holds no heap memory at all.
//
//   LoudnessCap cap; cap.prepare(48000, 2); cap.set_cap_db(100.0 - 117.01); cap.set_enabled(true);
//   float* io[2] = {l, r}; cap.process(io, 2, n);   // in place, no delay
//   float g = cap.gain();                            // current gain, linear (status)
#pragma once

#include "earshot/dsp/diffuse_field.hpp"
#include "earshot/dsp/weighting.hpp"

#include <array>
#include <cstdint>

namespace earshot::dsp {

class LoudnessCap {
public:
    static constexpr int max_channels = 2;
    static constexpr int box_segments = 100;                // detector window: 100 segments
    static constexpr double segment_s = 0.01;               // nominal segment length, s (1 s box)
    static constexpr double default_release_db_per_s = 3.0; // gain recovery rate, dB/s
    static constexpr double min_release_db_per_s = 0.5;     // set_release_db_per_s() clamps to
    static constexpr double max_release_db_per_s = 20.0;    //   [min, max]
    static constexpr double clamp_depth_db = 6.0;           // clamp: at most this far under g_box
    static constexpr double clamp_release_db_per_s = 1.0;   // clamp: recovery rate, dB/s
    static constexpr double step_db = 6.0;                  // a box rise within 1 s that is a step
    static constexpr double max_reduction_db = 60.0;        // the gain never goes below -60 dB

    /// Designs the detector for fs_hz (segment = round(fs / 100) samples) and channels (1 or 2).
    /// eardrum: the signal is an eardrum level; the detector applies the diffuse-field correction
    /// before the A-weighting, as LevelMeter does (SPEC §2). Resets the state; the cap starts
    /// disabled at 0 dBFS. Throws std::invalid_argument for a rate outside [8, 384] kHz or
    /// channels outside [1, 2]. [control thread]
    void prepare(double fs_hz, int channels, bool eardrum = false);

    /// The cap as an A-weighted mean square re amplitude 1.0 (> 0; NaN is ignored). [RT-safe]
    void set_cap_ms(double ms) noexcept;
    /// The cap as 10 log10 of that mean square ("dB A-weighted, digital"). [RT-safe]
    void set_cap_db(double db) noexcept;
    double cap_ms() const noexcept { return _cap_ms; }
    double cap_db() const noexcept;
    /// Off: the gain returns to 1 at the release rate and stays there; the detector keeps running,
    /// so switching on acts at once with a full 1 s of history. [RT-safe]
    void set_enabled(bool on) noexcept { _enabled = on; }
    bool enabled() const noexcept { return _enabled; }
    /// Gain recovery rate in dB/s, clamped to [0.5, 20]. [RT-safe]
    void set_release_db_per_s(double db_per_s) noexcept;
    double release_db_per_s() const noexcept { return _release_db_per_s; }

    /// Clears the detector (silence before now) and sets the gain to 1. [RT-safe]
    void reset() noexcept;
    /// Caps n frames of `channels` channels in place (channels beyond the prepared ones are left
    /// alone). [RT-safe]
    void process(float* const* io, int channels, uint32_t n) noexcept;

    /// Gain applied to the last processed sample, linear (<= 1). [RT-safe]
    float gain() const noexcept;
    /// Lowest gain applied since the last call (linear; the ramp under way counts), then restarts.
    /// [RT-safe]
    float take_min_gain() noexcept;
    /// The detector: the louder ear's A-weighted mean square over the last 1 s (10 ms steps),
    /// re amplitude 1.0. [RT-safe]
    double level_ms() const noexcept { return _level_ms; }
    /// Always 0: the unit adds no delay. [any thread]
    int latency_frames() const noexcept { return 0; }
    /// Copies the running state (detector, box, gain) of another cap; its own settings (cap,
    /// enabled, release) are kept. If the other was prepared differently (rate, channels,
    /// eardrum), only the gain is taken and the detector starts empty. [RT-safe]
    void copy_state_from(const LoudnessCap& o) noexcept;

    double sample_rate() const noexcept { return _fs; }
    int channels() const noexcept { return _channels; }
    bool eardrum() const noexcept { return _eardrum; }
    uint32_t segment_samples() const noexcept { return _seg_len; }

private:
    using State = std::array<std::array<double, 2>, 3>; // three TDF II sections: (z1, z2) each

    void detect_mono(const float* x, int c, uint32_t n, double ga, double gs) noexcept;
    void detect_pair(const float* xl, const float* xr, uint32_t n, double ga, double gs) noexcept;
    void apply_gain(float* const* io, int channels, uint32_t n) noexcept;
    void end_segment() noexcept;

    // Configuration (prepare() and setters).
    double _fs = 0;                                      // sample rate, Hz
    int _channels = 0;                                   // 1 or 2
    bool _eardrum = false;                               // diffuse-field correction before the weighting
    uint32_t _seg_len = 1;                               // segment length, samples
    double _box_norm = 1;                                // 1 / (box_segments * _seg_len)
    std::array<BiquadCoeffs, 3> _sec{};                  // A-weighting: C sections 0, 1, then A section 0
    double _cap_ms = 1.0;                                // cap, A-weighted mean square re 1.0
    bool _enabled = false;                               // cap on (else the gain returns to 1)
    double _release_db_per_s = default_release_db_per_s; // box gain recovery, dB/s
    double _rel_step = 1;                                // box release gain factor per segment (> 1)
    double _clamp_rel_step = 1;                          // clamp release gain factor per segment (> 1)
    double _step_ratio = 4;                              // 10^(step_db / 10)
    double _clamp_floor = 0.5;                           // 10^(-clamp_depth_db / 20)
    double _gain_floor = 1e-3;                           // 10^(-max_reduction_db / 20)

    // Running state (RT).
    std::array<DiffuseFieldCorrection, max_channels> _df; // eardrum -> field (when _eardrum)
    std::array<State, max_channels> _z{};                 // weighting filter states
    double _dither = 1e-25;                               // anti-denormal offset, alternating sign
    std::array<double, max_channels> _seg_sum{};          // sum of x_A^2 in the open segment
    std::array<double, max_channels> _seg_out{};          // sum of (g x_A)^2 in the open segment
    std::array<std::array<double, box_segments>, max_channels> _ring{};     // closed x_A^2 sums
    std::array<std::array<double, box_segments>, max_channels> _out_ring{}; // closed (g x_A)^2 sums
    std::array<double, box_segments> _level_ring{}; // box level (louder ear) per segment
    int _ring_pos = 0;                              // next ring slot to write
    uint32_t _seg_pos = 0;                          // samples into the open segment
    bool _seg_enabled = false;                      // enabled throughout the open segment
    int _uncharged_left = box_segments;             // segments the clamp books at <= share
    double _g_box = 1;                              // box gain (smoothed), linear
    double _g_clamp = 1;                            // clamp factor on top of it (<= 1)
    double _g0 = 1, _g1 = 1;                        // gain at the start / end of the segment
    double _level_ms = 0;                           // detector output (louder ear), re 1.0
    float _min_gain = 1.0f;                         // lowest gain since take_min_gain()
};

} // namespace earshot::dsp
