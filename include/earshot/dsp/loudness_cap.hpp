// earshot::dsp::LoudnessCap — the slow A-weighted loudness limiter of one musician's mix (issue 7;
// SPEC §2 `protection.max_laeq_1s_dba`, §3 "loudness cap"; hearing-dose.md §5.2 item 3). It keeps
// every sliding 1 s A-weighted level (LAeq,1s) of the louder ear at or below a cap, IEC 62368-1 RS2
// style, without look-ahead.
//
// Signal path (feed-forward, channels linked, in place, no added latency), per 10 ms segment:
//   x_c --sanitise--[diffuse-field correction]--> A-weighting --> x_A^2, summed per segment and ear
//   detector: q = max(150 ms mean [, the trend estimate on a steady rise] [, the mean since a
//             rise, in its first second]); P = 1 s mean + w (q - 1 s mean)+, per ear; w = 0 while
//             the 1 s mean has been 2 dB or more under the cap for 8 s, 1 within 0.5 dB of it
//   g_det -> min(1, sqrt(cap / P_louder ear)): down at once; up at 20 dB/s while under g_slow (the
//             1 s means' own gain), which itself comes up at release_db_per_s (3 dB/s)
//   clamp:    the output's own A-weighted energy per segment is kept; for every 1 s window that ends
//             1..100 segments from now (onset rules below), the output already in it plus the
//             rest at P * g_det^2 must stay within the cap + 0.4 dB. c -> the factor on top of
//             g_det this needs (at most 6 dB deep): down at once, up at 6 dB/s
//   g = g_det * c (>= -60 dB) --> linear ramp across the next segment --> x_c *= g
// The 1 s mean alone is exact on steady signals (g^2 P = cap once the window is full); the fast
// estimates follow a rise (accent, crescendo, fader, step) within 10..150 ms, so the reduction
// comes while the louder passage plays instead of being paid back later; the clamp holds the
// windows where that is not enough. Onsets (docs/protection.md): a crossing (a segment over the cap
// after a whole second without one) or a jump (a segment 8 dB over every segment of the second
// before, or 10 dB over the cap and 6 dB over them). The windows starting in the first second after
// a crossing (but the one on the next 1 s boundary of the segment clock: the dose interval after
// the onset's) and the windows holding the first 30 ms of a jump are not held (no causal limiter
// can hold them); everything else is. Below the cap g is exactly 1 (no pumping).
// The detector is the dose meter's own measure (the same AcWeighting design and, for
// `reference: eardrum`, the same DiffuseFieldCorrection before it). Peaks are the true-peak
// limiter's job (it follows this unit). docs/protection.md has the design, the time constants and
// the measured figures.
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
//   cap.align_to(engine_clock);                      // optional: segments on a common clock
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
    static constexpr double segment_s = 0.01;               // nominal segment length, s
    static constexpr int box_segments = 100;                // the 1 s window: 100 segments
    static constexpr int short_segments = 15;               // the short mean: 150 ms ...
    static constexpr double short_from_db = 2.0;            // ... counts once the 1 s mean is this
    static constexpr double short_full_db = 0.5;            //   close to the cap, fully from this close,
    static constexpr double short_hold_s = 8.0;             //   and lets go over this long
    static constexpr int trend_segments = 5;                // trend: the 50 ms mean ...
    static constexpr int trend_hold_segments = 30;          // ... above the 150 ms one for 300 ms
    static constexpr double trend_margin_db = 0.02;         // ... by at least this much
    static constexpr double default_release_db_per_s = 3.0; // g_det recovery rate, dB/s
    static constexpr double min_release_db_per_s = 0.5;     // set_release_db_per_s() clamps to
    static constexpr double max_release_db_per_s = 20.0;    //   [min, max]
    static constexpr double tolerance_db = 0.4;             // clamp budget: the cap + this
    static constexpr double clamp_depth_db = 6.0;           // clamp: at most this far under g_det
    static constexpr double clamp_release_db_per_s = 6.0;   // clamp: recovery rate, dB/s
    static constexpr double jump_db = 8.0;                  // a jump: this far over the last second
    static constexpr double loud_jump_db = 10.0;            //   (or rise_fast_db, and this far over the cap)
    static constexpr int jump_exempt_segments = 3;          // windows holding these are not held
    static constexpr double rise_db = 3.0;                  // a rise: two segments this far over,
    static constexpr double rise_fast_db = 6.0;             //   or one this far over the last second
    static constexpr double since_from_db = 3.0;            // after a jump, the mean since it counts
    static constexpr double since_full_db = 6.0;            //   from this far over the cap, fully here
    static constexpr int since_hold_segments = 4;           // else it counts fully after 4 segments,
    static constexpr double since_decay_db = 3.0;           //   and not while this far under its mean
    static constexpr double cap_fall_db_per_s = 20.0;       // a lowered cap glides down this fast
    static constexpr double max_reduction_db = 60.0;        // the gain never goes below -60 dB

    /// Designs the detector for fs_hz (segment = round(fs / 100) samples) and channels (1 or 2).
    /// eardrum: the signal is an eardrum level; the detector applies the diffuse-field correction
    /// before the A-weighting, as LevelMeter does (SPEC §2). Resets the state; the cap starts
    /// disabled at 0 dBFS. Throws std::invalid_argument for a rate outside [8, 384] kHz or
    /// channels outside [1, 2]. [control thread]
    void prepare(double fs_hz, int channels, bool eardrum = false);

    /// The cap as an A-weighted mean square re amplitude 1.0 (> 0; NaN is ignored). Raised: at the
    /// next segment boundary (the gain then recovers at the release rate); lowered: it glides down
    /// at cap_fall_db_per_s from the next segment boundary, and the second after that counts as an
    /// onset. [RT-safe]
    void set_cap_ms(double ms) noexcept;
    /// The cap as 10 log10 of that mean square ("dB A-weighted, digital"). [RT-safe]
    void set_cap_db(double db) noexcept;
    double cap_ms() const noexcept { return _cap_ms; }
    double cap_db() const noexcept;
    /// Off: the gain returns to 1 at the release rate and stays there; the detector keeps running,
    /// so switching on acts at once with a full 1 s of history (the second after switching on
    /// counts as an onset). [RT-safe]
    void set_enabled(bool on) noexcept { _enabled = on; }
    bool enabled() const noexcept { return _enabled; }
    /// Gain recovery rate in dB/s, clamped to [0.5, 20]. [RT-safe]
    void set_release_db_per_s(double db_per_s) noexcept;
    double release_db_per_s() const noexcept { return _release_db_per_s; }

    /// Clears the detector (silence before now) and sets the gain to 1. [RT-safe]
    void reset() noexcept;
    /// Puts the open segment's boundary on a common clock: the segment position becomes
    /// clock_samples mod segment_samples(), so caps aligned to the same clock close their segments
    /// together (process_two) and, at 44.1/48/96/192 kHz, on the dose meter's 1 s grid. Meant for
    /// a fresh cap (no history). [RT-safe]
    void align_to(uint64_t clock_samples) noexcept;
    /// Caps n frames of `channels` channels in place (channels beyond the prepared ones are left
    /// alone). [RT-safe]
    void process(float* const* io, int channels, uint32_t n) noexcept;
    /// a.process(io_a, ch_a, n); b.process(io_b, ch_b, n), bit-identical, with both detectors in
    /// lockstep (four double lanes, AVX2 where the CPU has it) when both are stereo, neither is
    /// eardrum-referenced, and both have the same segment length and position; else one after the
    /// other. [RT-safe]
    static void process_two(LoudnessCap& a, float* const* io_a, int ch_a, LoudnessCap& b, float* const* io_b,
                            int ch_b, uint32_t n) noexcept;
    /// The lockstep kernel in use: "avx2" or "sse2". [any thread]
    static const char* two_kernel_name() noexcept;
    /// Forces the baseline lockstep kernel (tests: both variants must agree). [control thread]
    static void force_baseline_two(bool on) noexcept;

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
    /// Copies the running state (detector, windows, onsets, gain) of another cap; its own settings
    /// (cap, enabled, release) are kept and take effect from the next segment boundary. If the
    /// other was prepared differently (rate, channels, eardrum), only the gain is taken and the
    /// detector starts empty. [RT-safe]
    void copy_state_from(const LoudnessCap& o) noexcept;

    double sample_rate() const noexcept { return _fs; }
    int channels() const noexcept { return _channels; }
    bool eardrum() const noexcept { return _eardrum; }
    uint32_t segment_samples() const noexcept { return _seg_len; }
    /// Samples into the open segment (0 .. segment_samples() - 1). [RT-safe]
    uint32_t segment_position() const noexcept { return _seg_pos; }

    /// process_two's detector kernels (x: a's left, right, then b's): the baseline one (two
    /// two-lane passes) and the four-lane one compiled for AVX2 (call it only where the CPU has
    /// it). process_two picks one at start-up. [RT-safe]
    static void detect_two_base(LoudnessCap& a, LoudnessCap& b, const float* const* x, uint32_t n) noexcept;
    static void detect_two_avx2(LoudnessCap& a, LoudnessCap& b, const float* const* x, uint32_t n) noexcept;

private:
    using State = std::array<std::array<double, 2>, 3>; // three TDF II sections: (z1, z2) each
    static constexpr int idle_age = 1 << 20;            // "no onset for a long time"

    template <int L>
    static void detect_lanes(LoudnessCap* const* caps, const float* const* x, uint32_t n) noexcept;
    void detect_pair(const float* const* x, uint32_t n) noexcept;
    void detect_mono(const float* x, int c, uint32_t n) noexcept;
    void ramp_of_chunk(double& ga, double& gs) const noexcept;
    void apply_gain(float* const* io, int channels, uint32_t n) noexcept;
    void finish_chunk(float* const* io, int channels, uint32_t m) noexcept;
    void end_segment() noexcept;

    // Configuration (prepare() and setters).
    double _fs = 0;                                      // sample rate, Hz
    int _channels = 0;                                   // 1 or 2
    bool _eardrum = false;                               // diffuse-field correction before the weighting
    uint32_t _seg_len = 1;                               // segment length, samples
    std::array<BiquadCoeffs, 3> _sec{};                  // A-weighting: C sections 0, 1, then A section 0
    double _cap_ms = 1.0;                                // cap (target), A-weighted mean square re 1.0
    bool _enabled = false;                               // cap on (else the gain returns to 1)
    double _release_db_per_s = default_release_db_per_s; // g_det recovery, dB/s
    double _rel_step = 1;                                // g_det release factor per segment (> 1)
    double _fast_rel_step = 1;                           // ... under the 1 s means' own gain
    double _clamp_rel_step = 1;                          // clamp release factor per segment (> 1)
    double _cap_fall_step = 1;                           // cap glide factor per segment (< 1, power)
    double _jump_ratio = 4;                              // 10^(jump_db / 10)
    double _rise_ratio = 2;                              // 10^(rise_db / 10)
    double _rise_fast_ratio = 4;                         // 10^(rise_fast_db / 10)
    double _loud_jump_ratio = 10;                        // 10^(loud_jump_db / 10)
    double _since_decay_ratio = 2;                       // 10^(since_decay_db / 10)
    double _trend_ratio = 1;                             // 10^(trend_margin_db / 10)
    double _tolerance = 1;                               // 10^(tolerance_db / 10)
    double _weight_fall = 0;                             // short-mean weight decay per segment
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
    std::array<double, box_segments> _peak_ring{};    // louder ear's x_A^2 sum per closed segment
    int _ring_pos = 0;                                // next ring slot to write
    uint32_t _seg_pos = 0;                            // samples into the open segment
    int _seg_phase = 0;                               // the open segment's index mod 100 (clock)
    double _cap_eff_ms = 1.0;                         // the cap in force (glides down to _cap_ms)
    bool _was_enabled = false;                        // enabled at the last segment boundary
    int _crossing_age = idle_age;                     // segments since the last crossing onset
    int _jump_age = idle_age;                         // segments since the last jump
    int _rise_age = idle_age;                         // segments since the last rise
    bool _rise_cross = false;                         // ... a jump out of a second under the cap
    std::array<double, max_channels> _since_sum{};    // x_A^2 since the last rise (first second)
    int _since_n = 0;                                 // segments in it
    std::array<int, max_channels> _rise_count{};      // segments the 50 ms mean led the 150 ms one
    std::array<double, max_channels> _short_weight{}; // how much the 150 ms mean counts (0..1)
    double _g_det = 1;                                // detector gain (smoothed), linear
    double _g_slow = 1;                               // the 1 s means' own gain (smoothed)
    double _g_clamp = 1;                              // clamp factor on top of it (<= 1)
    double _g0 = 1, _g1 = 1;                          // gain at the start / end of the segment
    double _level_ms = 0;                             // detector output (louder ear), re 1.0
    float _min_gain = 1.0f;                           // lowest gain since take_min_gain()
};

} // namespace earshot::dsp
