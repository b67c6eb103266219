// earshot::dsp::LevelMeter — the sound level meter of one ear (one output channel).
//
// Per sample: A- and C-weighting (AcWeighting), the A-weighted square accumulated for Leq, the
// F (125 ms) and S (1 s) exponential time weightings of the A-weighted square (IEC 61672-1,
// y += alpha * (x^2 - y), alpha = 1 - exp(-1/(fs*tau))), and the C-weighted absolute peak.
// All values are *digital*: mean squares re amplitude 1.0 and peaks as amplitudes. The
// calibration offset (config::calibration_offset_db) turns them into dB SPL off the RT thread:
// L = 10 log10(ms) + offset_db + ... see docs/dsp.md for the exact convention.
//
// Readout is "take and reset" (x42 style, but on the RT side): the engine calls take() at the
// end of each dose interval and ships the Interval in a DoseFrame.
//
// Thread contract: prepare() [control thread]; process(), take(), reset() [RT-safe], noexcept.
// Non-finite input is treated as 0 (the engine sanitises earlier; this is the second line).
//
//   LevelMeter m; m.prepare(48000.0);
//   m.process(buf, n);
//   LevelMeter::Interval iv = m.take();   // sum of A^2 over the interval, n, LAFmax ms, C peak
#pragma once

#include "earshot/dsp/diffuse_field.hpp"
#include "earshot/dsp/weighting.hpp"

#include <cstdint>

namespace earshot::dsp {

class LevelMeter {
public:
    struct Interval {
        double sum_sq_a = 0;   // sum of A-weighted squares over the interval (amplitude^2 * samples)
        uint64_t samples = 0;  // samples in the interval
        double laf_max_ms = 0; // max of the F-weighted A mean square in the interval
        double las_max_ms = 0; // max of the S-weighted A mean square in the interval
        double c_peak = 0;     // max |C-weighted sample| in the interval (amplitude)
        double laf_end_ms = 0; // F-weighted A mean square at the end of the interval
    };

    /// Designs the weightings and the time constants for fs_hz. Throws like AcWeighting::prepare.
    /// eardrum: the signal is an eardrum (coupler) level; the diffuse-field correction is applied
    /// before the weightings so every level is field-equivalent (SPEC §2, docs/dosimetry.md).
    void prepare(double fs_hz, bool eardrum = false);
    bool eardrum() const noexcept { return _eardrum; }
    /// Clears all state (filters, time weightings, the open interval). [RT-safe]
    void reset() noexcept;
    /// Meters n samples. [RT-safe]
    void process(const float* x, uint32_t n) noexcept;
    /// Meters two channels (the ears of a stereo mix) in lockstep, two lanes per vector: the same
    /// result as a.process(xa, n); b.process(xb, n), about twice as fast. Both meters must be
    /// prepared for the same rate. [RT-safe]
    static void process_pair(LevelMeter& a, LevelMeter& b, const float* xa, const float* xb,
                             uint32_t n) noexcept;
    /// Meters four channels (the ears of two stereo mixes) in lockstep: the same result as four
    /// process() calls. Four lanes per vector where the CPU has AVX2, else two process_pair()
    /// passes. All four must be prepared for the same rate. [RT-safe]
    static void process_quad(LevelMeter* const* m, const float* const* x, uint32_t n) noexcept;
    /// The quad variant in use: "avx2" or "sse2". [any thread]
    static const char* quad_kernel_name() noexcept;
    /// Returns the interval since the last take() and starts a new one. [RT-safe]
    Interval take() noexcept;

    double alpha_fast() const noexcept { return _alpha_f; }
    double alpha_slow() const noexcept { return _alpha_s; }
    /// Current F- and S-weighted A mean squares (live meters). [RT-safe]
    double laf_ms() const noexcept { return _yf; }
    double las_ms() const noexcept { return _ys; }
    const AcWeighting& weighting() const noexcept { return _w; }

    /// The AVX2 body of process_quad (called only where the CPU has AVX2). [RT-safe]
    static void quad_avx2(LevelMeter* const* m, const float* const* x, uint32_t n) noexcept;

private:
    template <int L>
    static void run_lanes(LevelMeter* const* m, const float* const* x, uint32_t n) noexcept;

    AcWeighting _w;             // frequency weighting
    DiffuseFieldCorrection _df; // eardrum -> field (only when _eardrum)
    bool _eardrum = false;
    double _alpha_f = 0;     // F time weighting coefficient (tau 125 ms)
    double _alpha_s = 0;     // S time weighting coefficient (tau 1 s)
    double _yf = 0, _ys = 0; // F and S weighted A mean squares (running)
    Interval _iv;            // the open interval
    double _flip = 1e-25;    // anti-denormal dither, alternating sign
};

} // namespace earshot::dsp
