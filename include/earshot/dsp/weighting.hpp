// earshot::dsp weighting — IEC 61672-1 A and C frequency weightings, designed at run time for the
// actual sample rate, in double precision.
//
// The analytic responses (weighting_db) follow hearing-dose.md §3.1 (pole frequencies derived from
// fr, fL, fH, D and fA, normalised to exactly 0 dB at 1 kHz). The digital filters (AcWeighting)
// meet SPEC §4: within 0.2 dB of the analytic response up to 12.5 kHz and 0.5 dB at 16 kHz, at
// 44.1, 48 and 96 kHz (and every rate from 44.1 to 192 kHz). A plain bilinear transform does not.
// Design (docs/dsp-weighting.md): the low-frequency high-pass poles by the bilinear transform with
// prewarping; the double pole at f4 = 12194 Hz by impulse invariance, with a numerator fitted at
// prepare() time (linear least squares on the power response, then its minimum-phase spectral
// factor) so that the whole cascade matches the analytic magnitude up to 20 kHz. C is 2 sections;
// A is C's output through 2 more (the f2/f3 high-passes and the A/C numerator ratio).
//
// Thread contract: prepare() allocates nothing but may throw (rate out of range) [control thread];
// process()/reset() are noexcept and [RT-safe]. Non-finite state is reset to zero.
//
//   AcWeighting w; w.prepare(48000.0);
//   double a, c; w.process(x, a, c);      // one sample in, A- and C-weighted samples out
#pragma once

#include <array>
#include <cstdint>

namespace earshot::dsp {

enum class Weighting { A, C };

/// Analytic IEC 61672-1 weighting in dB at frequency f (Hz), 0 dB at 1 kHz. [any thread]
double weighting_db(Weighting w, double f_hz) noexcept;

/// Second-order section, direct form; a0 normalised to 1.
struct BiquadCoeffs {
    double b0 = 1, b1 = 0, b2 = 0, a1 = 0, a2 = 0;
};

/// Magnitude of a cascade of sections at frequency f (Hz) for sample rate fs, in dB. [any thread]
double cascade_response_db(const BiquadCoeffs* sections, int count, double gain, double f_hz,
                           double fs_hz) noexcept;

/// A- and C-weighting of one channel, computed together (A shares C's sections).
class AcWeighting {
public:
    static constexpr int max_sections = 2; // per filter: C uses 2, A adds 2 to C's output

    /// Designs both filters for fs_hz. Throws std::invalid_argument outside [8000, 384000] Hz.
    void prepare(double fs_hz);
    /// Clears the filter state. [RT-safe]
    void reset() noexcept;
    /// One sample in; A- and C-weighted samples out. [RT-safe]
    void process(double x, double& a_out, double& c_out) noexcept {
        const double c = tdf2(_c[1], _zc[1], tdf2(_c[0], _zc[0], x * _c_gain));
        a_out = tdf2(_a[1], _za[1], tdf2(_a[0], _za[0], c)) * _a_gain;
        c_out = c;
    }
    /// False if the filter state has gone non-finite (the caller then reset()s). [RT-safe]
    bool finite() const noexcept;

    /// The designed digital responses at f (Hz), in dB, for verification. [any thread]
    double response_db(Weighting w, double f_hz) const noexcept;
    double sample_rate() const noexcept { return _fs; }

    // The design, exposed for tests and docs: C = c_gain * C sections; A = C output * a_gain * A sections.
    int c_section_count() const noexcept { return _nc; }
    int a_section_count() const noexcept { return _na; }
    const BiquadCoeffs& c_section(int i) const noexcept { return _c[static_cast<std::size_t>(i)]; }
    const BiquadCoeffs& a_section(int i) const noexcept { return _a[static_cast<std::size_t>(i)]; }
    double c_gain() const noexcept { return _c_gain; }
    double a_gain() const noexcept { return _a_gain; }

private:
    friend class LevelMeter; // processes two channels' filters in lockstep (process_pair)
    // Transposed direct form II section.
    static double tdf2(const BiquadCoeffs& s, std::array<double, 2>& z, double x) noexcept {
        const double y = s.b0 * x + z[0];
        z[0] = s.b1 * x - s.a1 * y + z[1];
        z[1] = s.b2 * x - s.a2 * y;
        return y;
    }

    double _fs = 0;                                        // sample rate, Hz
    std::array<BiquadCoeffs, max_sections> _c{};           // C-weighting sections
    std::array<BiquadCoeffs, max_sections> _a{};           // extra sections that turn C into A
    int _nc = 0, _na = 0;                                  // sections in use
    double _c_gain = 1, _a_gain = 1;                       // overall gains (0 dB at 1 kHz)
    std::array<std::array<double, 2>, max_sections> _zc{}; // C section states (transposed DF II)
    std::array<std::array<double, 2>, max_sections> _za{}; // A section states
};

} // namespace earshot::dsp
