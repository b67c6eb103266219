// earshot::dsp weighting — IEC 61672-1 A and C frequency weightings, designed at run time for the
// actual sample rate, in double precision.
//
// The analytic responses (weighting_db) follow hearing-dose.md §3.1 (pole frequencies derived from
// fr, fL, fH, D and fA, normalised to exactly 0 dB at 1 kHz). The digital filters (AcWeighting)
// meet SPEC §4: within 0.2 dB of the analytic response up to 12.5 kHz and 0.5 dB at 16 kHz, at
// 44.1, 48 and 96 kHz (and every rate from 44.1 to 384 kHz). A plain bilinear transform does not.
// Design (docs/dsp-weighting.md): the high-pass poles (f1 double, f2, f3) by the bilinear
// transform with each pole prewarped; the double pole at f4 = 12194 Hz by impulse invariance, with
// a numerator fitted at prepare() time (linear least squares on the power response, then its
// minimum-phase spectral factor) so that the C cascade matches the analytic magnitude up to 20 kHz.
// C is 2 sections; A is C's output through 1 more (s^2 / ((s + w2)(s + w3))). The 1 kHz
// normalisation gains are folded into the numerator of each filter's first section.
//
// Thread contract: prepare() allocates nothing but may throw (rate out of range) [control thread];
// process()/reset() are noexcept and [RT-safe]. process() keeps the state out of denormals (a
// +-1e-25 alternating offset on the input) and resets the state to zero if it goes non-finite.
//
//   AcWeighting w; w.prepare(48000.0);
//   double a, c; w.process(x, a, c);      // one sample in, A- and C-weighted samples out
#pragma once

#include <array>
#include <cmath>
#include <cstddef>

namespace earshot::dsp {

enum class Weighting { A, C };

/// Analytic IEC 61672-1 weighting in dB at frequency f (Hz), 0 dB at 1 kHz; -inf for f <= 0.
/// [any thread]
double weighting_db(Weighting w, double f_hz) noexcept;

/// Second-order section, direct form; a0 normalised to 1.
struct BiquadCoeffs {
    double b0 = 1, b1 = 0, b2 = 0, a1 = 0, a2 = 0;
};

/// Magnitude of gain times a cascade of sections at frequency f (Hz) for sample rate fs, in dB.
/// [any thread]
double cascade_response_db(const BiquadCoeffs* sections, int count, double gain, double f_hz,
                           double fs_hz) noexcept;

/// A- and C-weighting of one channel, computed together (A shares C's sections).
class AcWeighting {
public:
    static constexpr int max_sections = 2; // per filter: C uses 2, A adds 1 to C's output

    /// Designs both filters for fs_hz. Throws std::invalid_argument outside [8000, 384000] Hz.
    void prepare(double fs_hz);
    /// Clears the filter state. [RT-safe]
    void reset() noexcept;
    /// One sample in; A- and C-weighted samples out. A non-finite result (NaN/Inf input, overflow)
    /// resets the state and outputs 0 for that sample. [RT-safe]
    void process(double x, double& a_out, double& c_out) noexcept {
        cascade(x + _dither, a_out, c_out);
        _dither = -_dither;
        if (!std::isfinite(a_out + c_out)) [[unlikely]] {
            reset();
            a_out = c_out = 0.0;
        }
    }
    /// False if the filter state has gone non-finite. [RT-safe]
    bool finite() const noexcept;

    /// The designed digital responses at f (Hz), in dB (NaN before prepare()). [any thread]
    double response_db(Weighting w, double f_hz) const noexcept;
    double sample_rate() const noexcept { return _fs; }

    // The design, exposed for tests and docs: C = C sections; A = C output through the A sections.
    // The 1 kHz normalisation is part of section 0's numerator in each.
    int c_section_count() const noexcept { return _nc; }
    int a_section_count() const noexcept { return _na; }
    const BiquadCoeffs& c_section(int i) const noexcept { return _c[static_cast<std::size_t>(i)]; }
    const BiquadCoeffs& a_section(int i) const noexcept { return _a[static_cast<std::size_t>(i)]; }

private:
    friend class LevelMeter; // runs the cascade itself (block-level hygiene, process_pair)
    static constexpr std::size_t nc = 2, na = 1; // sections in use: C, and A after C

    // Transposed direct form II section. (b1 x + z1) does not wait for y: the loop-carried chain is
    // one multiply and two adds.
    static double tdf2(const BiquadCoeffs& s, std::array<double, 2>& z, double x) noexcept {
        const double y = s.b0 * x + z[0];
        z[0] = (s.b1 * x + z[1]) - s.a1 * y;
        z[1] = s.b2 * x - s.a2 * y;
        return y;
    }
    // The bare cascade: no offset, no finiteness check.
    void cascade(double x, double& a_out, double& c_out) noexcept {
        const double c = tdf2(_c[1], _zc[1], tdf2(_c[0], _zc[0], x));
        a_out = tdf2(_a[0], _za[0], c);
        c_out = c;
    }

    double _fs = 0;                              // sample rate, Hz
    std::array<BiquadCoeffs, nc> _c{};           // C-weighting sections
    std::array<BiquadCoeffs, na> _a{};           // extra sections that turn C into A
    int _nc = 0, _na = 0;                        // sections designed (nc, na after prepare())
    std::array<std::array<double, 2>, nc> _zc{}; // C section states (transposed DF II)
    std::array<std::array<double, 2>, na> _za{}; // A section states
    double _dither = 1e-25;                      // anti-denormal offset, sign alternates per sample
};

} // namespace earshot::dsp
