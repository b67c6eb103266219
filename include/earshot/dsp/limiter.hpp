// earshot::dsp::TruePeakLimiter — the look-ahead true-peak limiter that ends every mix (SPEC §3.1).
//
// Signal path (per sample, channels linked):
//   x --sanitize--> delay line (latency_frames) ----------------------------> * g --> clamp(+-C) --> y
//          \--> 4x true-peak estimate e (TruePeakInterpolator, lags 6) --> g_req = min(1, T/e)
//               --> sliding minimum over W = L + 2H + 1 --> release (one-pole, up only)
//               --> box average over L = g
// with H = 6 (the interpolator's half span) and latency = 6 + L + H frames.
//
// Why it cannot overshoot (docs/limiter.md has the full argument): the output sample at time n is
// x[n - latency] * g[n]. Every one of the L values averaged into g[n] is a sliding minimum over a
// window that contains all of g_req for the intervals within +-H samples of that output sample, and
// the release stage only ever lowers a value below that minimum. So g[n] <= g_req of every interval
// touching the output sample: the gain has fully reached the needed reduction before the peak
// leaves the delay line, with H samples to spare on both sides. The clamp at the ceiling is the
// last line of defence (float rounding, and signals above float range) and is counted.
//
// Steady signals whose true peak stays below T never produce g_req < 1, so the gain is exactly 1:
// no pumping. A block whose samples provably cannot reach T (max|x| * abs_sum_bound <= T) while the
// limiter is idle is passed through the delay line without running the detector (fast path).
//
// Thread contract: prepare() allocates [control thread]; everything else is noexcept [RT-safe].
//
//   TruePeakLimiter lim; lim.prepare(48000, 2, 1.0, 80.0); lim.set_ceiling(0.4462f);
//   float* io[2] = {l, r}; lim.process(io, n);        // in place, delayed by lim.latency_frames()
//   auto s = lim.take_stats();                         // max gain reduction, active samples
#pragma once

#include "earshot/dsp/true_peak.hpp"

#include <cstdint>
#include <vector>

namespace earshot::dsp {

class TruePeakLimiter {
public:
    static constexpr int max_channels = 2;
    static constexpr int hold = TruePeakInterpolator::delay; // H, samples

    struct Stats {
        float min_gain = 1.0f;        // lowest gain applied since the last take (linear)
        uint32_t active_samples = 0;  // samples with gain < 1 since the last take
        uint32_t clamped_samples = 0; // samples the final clamp had to cut since the last take
    };

    /// Allocates the delay line for fs and the look-ahead (total latency = round(lookahead * fs),
    /// at least 6 + 8 + 6 frames); release is the time constant of the gain recovery. [control]
    void prepare(double fs_hz, int channels, double lookahead_ms, double release_ms);
    /// Sets the ceiling (linear amplitude, > 0). Takes effect for samples entering from now on;
    /// samples already in the delay line are still held under the clamp. [RT-safe]
    void set_ceiling(float ceiling) noexcept;
    float ceiling() const noexcept { return _ceil; }
    /// Clears the delay line and the gain state (output silent for latency_frames()). [RT-safe]
    void reset() noexcept;
    /// Limits n samples of channels() channels in place. [RT-safe]
    void process(float* const* io, uint32_t n) noexcept;
    /// Frames of delay between input and output.
    int latency_frames() const noexcept { return _latency; }
    int channels() const noexcept { return _channels; }
    /// Gain applied to the last output sample (linear).
    float gain() const noexcept { return _g; }
    /// Returns the statistics since the last call and restarts them. [RT-safe]
    Stats take_stats() noexcept;
    /// Copies the complete running state of another limiter prepared identically. [RT-safe]
    void copy_state_from(const TruePeakLimiter& o) noexcept;

private:
    struct MinEntry {
        uint64_t idx;
        float v;
    };

    void process_slow(float* const* io, uint32_t n) noexcept;
    void slow_block(float* const* io, uint32_t off, uint32_t m) noexcept;
    void fast_delay(float* const* io, uint32_t n) noexcept;

    TruePeakInterpolator _ip;
    int _channels = 0;
    int _latency = 0;                       // frames: delay + L + H
    int _box = 0;                           // L, samples averaged for the gain
    int _window = 0;                        // W = L + 2H + 1, sliding-minimum span
    float _ceil = 1.0f;                     // clamp level, linear
    float _target = 1.0f;                   // detector threshold T, linear (= ceiling)
    double _a_rel = 0.0;                    // release coefficient per sample
    uint32_t _ring_len = 0;                 // power of two; ring is mirrored (2 * len floats per channel)
    std::vector<float> _ring[max_channels]; // sanitised input history, mirrored
    std::vector<MinEntry> _dq;              // monotonic deque of g_req < 1 (ring of _window)
    uint32_t _dq_head = 0, _dq_size = 0;
    std::vector<float> _boxv; // the last L release outputs
    uint32_t _box_pos = 0;
    uint32_t _box_non_unity = 0; // entries of _boxv below 1
    double _box_sum = 0;         // sum of _boxv
    double _r = 1.0;             // release stage output (double: no stagnation near 1)
    float _g = 1.0f;             // last applied gain
    uint64_t _n = 0;             // input samples consumed
    uint32_t _pos = 0;           // ring write position
    uint64_t _quiet_run = 0;     // consecutive newest samples that cannot reach T
    Stats _stats;
};

} // namespace earshot::dsp
