// earshot::dsp true peak — 4x oversampled peak estimation (BS.1770 style, our own filter).
//
// TruePeakInterpolator holds the 4x polyphase interpolation filter: phase 0 is the sample itself,
// phases 1..3 (t = m + p/4) are 12-tap Kaiser-windowed sinc interpolators (beta 6, +-6 samples),
// each normalised to unity DC gain. Estimating the peak of the interval [m, m+1) needs the
// samples m-5 .. m+6, so a streaming estimate lags the input by `delay` = 6 samples.
// `abs_sum_bound()` is max over phases of sum|c|: for any signal, |interpolated| <= bound * max|x|,
// which lets the limiter skip the interpolation for blocks that provably cannot reach the ceiling.
//
// TruePeakMeter measures the true peak of a stream (render's report, tests).
//
// Thread contract: constructors and prepare() [control thread]; everything else noexcept [RT-safe].
//
//   TruePeakMeter m; m.process(buf, n); double tp = m.peak();   // amplitude, 4x oversampled
#pragma once

#include <array>
#include <cstdint>

namespace earshot::dsp {

class TruePeakInterpolator {
public:
    static constexpr int half = 6;        // window half span, input samples
    static constexpr int taps = 2 * half; // taps per fractional phase
    static constexpr int phases = 4;      // oversampling factor
    static constexpr int delay = half;    // samples after m before interval [m, m+1) can be estimated

    TruePeakInterpolator();

    /// Peak |.| over the interval [m, m+1): max of |x[m]| and the three interpolated points.
    /// `w` points at x[m-5]; w[0..11] = x[m-5 .. m+6]. [RT-safe]
    float interval_peak(const float* w) const noexcept {
        // The three phases (and a zero lane) in one 4-wide accumulator: 12 vector multiply-adds.
        v4f acc = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int j = 0; j < taps; ++j) acc += _c4[j] * w[j];
        float p = w[half - 1] < 0 ? -w[half - 1] : w[half - 1];
        for (int k = 0; k < 3; ++k) {
            const float y = acc[k] < 0 ? -acc[k] : acc[k];
            p = y > p ? y : p;
        }
        return p;
    }

    /// interval_peak() of m consecutive windows, max-accumulated into e: for i < m,
    /// e[i] = max(e[i], interval_peak(base + i)). Reads base[0 .. m + taps - 1). Vectorised over
    /// the windows (AVX2 where the CPU has it), with interval_peak()'s arithmetic in the same
    /// order, so each value is bit-identical to it. m <= max_block. [RT-safe]
    static constexpr uint32_t max_block = 64;
    void block_peaks(const float* base, uint32_t m, float* e) const noexcept;

    /// Interpolated value at m + p/4 (p = 1..3) for the window w (as above). [RT-safe]
    float interpolate(const float* w, int p) const noexcept;
    /// max over phases of sum |c|: |interpolated| <= bound * max |x| for any x.
    float abs_sum_bound() const noexcept { return _bound; }
    const std::array<float, taps>& coeffs(int p) const noexcept {
        return _c[static_cast<std::size_t>(p - 1)];
    }

private:
    typedef float v4f __attribute__((vector_size(16))); // GCC/Clang vector extension
    std::array<std::array<float, taps>, 3> _c{};        // phases 1..3
    v4f _c4[taps]{}; // the same, interleaved: _c4[j] = {c1[j], c2[j], c3[j], 0}
    float _bound = 1.0f;
};

/// Streaming true-peak meter of one channel. [RT-safe after construction]
class TruePeakMeter {
public:
    void reset() noexcept;
    void process(const float* x, uint32_t n) noexcept;
    /// Flushes the last `delay` samples (call once at the end of a finite signal). [RT-safe]
    void finish() noexcept;
    /// Highest true peak seen (amplitude).
    float peak() const noexcept { return _peak; }

private:
    void push(float x) noexcept;
    TruePeakInterpolator _ip;
    static constexpr uint32_t ring_len = 32;
    std::array<float, 2 * ring_len> _ring{}; // mirrored history
    uint32_t _pos = 0;
    uint64_t _count = 0;
    float _peak = 0.0f;
};

} // namespace earshot::dsp
