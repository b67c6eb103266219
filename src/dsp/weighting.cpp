// A and C weighting: the analytic IEC 61672-1 curves and their run-time digital design.
// Method and measured accuracy: docs/dsp-weighting.md.
#include "earshot/dsp/weighting.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <stdexcept>

namespace earshot::dsp {

namespace {

constexpr double pi = 3.14159265358979323846;
using cplx = std::complex<double>;

// Pole frequencies of IEC 61672-1 (hearing-dose.md §3.1), derived from the design constants fr,
// fL, fH, D (D^2 = 1/2) and fA, not rounded: f1 = 20.598997, f2 = 107.65265, f3 = 737.86223,
// f4 = 12194.217 Hz.
struct PoleFreqs {
    double f1, f2, f3, f4;
};

PoleFreqs derive_poles() noexcept {
    const double fr = 1000.0, fl = std::pow(10.0, 1.5), fh = std::pow(10.0, 3.9), d = std::sqrt(0.5);
    const double fa = std::pow(10.0, 2.45);
    const double c = fl * fl * fh * fh;
    const double b = (fr * fr + fl * fl * fh * fh / (fr * fr) - d * (fl * fl + fh * fh)) / (1.0 - d);
    const double root = std::sqrt(b * b - 4.0 * c);
    PoleFreqs p{};
    p.f1 = std::sqrt((-b - root) / 2.0);
    p.f4 = std::sqrt((-b + root) / 2.0);
    p.f2 = (3.0 - std::sqrt(5.0)) / 2.0 * fa;
    p.f3 = (3.0 + std::sqrt(5.0)) / 2.0 * fa;
    return p;
}

const PoleFreqs& poles() noexcept {
    static const PoleFreqs p = derive_poles();
    return p;
}

// Squared analytic magnitudes, not normalised.
double c_power_raw(double f) noexcept {
    const PoleFreqs& p = poles();
    const double f2 = f * f, g = p.f4 * p.f4 * f2 / ((f2 + p.f1 * p.f1) * (f2 + p.f4 * p.f4));
    return g * g;
}
double a_power_raw(double f) noexcept {
    const PoleFreqs& p = poles();
    const double f2 = f * f;
    return c_power_raw(f) * f2 * f2 / ((f2 + p.f2 * p.f2) * (f2 + p.f3 * p.f3));
}

cplx section_response(const BiquadCoeffs& s, double w) noexcept {
    const cplx z1 = std::polar(1.0, -w), z2 = z1 * z1;
    return (s.b0 + s.b1 * z1 + s.b2 * z2) / (1.0 + s.a1 * z1 + s.a2 * z2);
}

double cascade_magnitude(const BiquadCoeffs* s, int n, double gain, double f, double fs) noexcept {
    const double w = 2.0 * pi * f / fs;
    cplx h = gain;
    for (int i = 0; i < n; ++i) h *= section_response(s[i], w);
    return std::abs(h);
}

// Product of two first-order high-passes s/(s + wa) * s/(s + wb) by the bilinear transform, each
// pole prewarped (its analog frequency replaced by (2 fs) tan(pi f / fs)) so that the digital
// corner lands on the analog one.
BiquadCoeffs bilinear_highpass_pair(double fa, double fb, double fs) noexcept {
    const double ta = std::tan(pi * fa / fs), tb = std::tan(pi * fb / fs);
    // s/(s + p) with s = 2 fs (1 - z^-1)/(1 + z^-1), p = 2 fs t: (1 - z^-1) / ((1 + t) - (1 - t) z^-1).
    const double ga = 1.0 / (1.0 + ta), gb = 1.0 / (1.0 + tb);
    const double qa = (1.0 - ta) * ga, qb = (1.0 - tb) * gb; // the digital poles
    BiquadCoeffs s;
    s.b0 = ga * gb;
    s.b1 = -2.0 * ga * gb;
    s.b2 = ga * gb;
    s.a1 = -(qa + qb);
    s.a2 = qa * qb;
    return s;
}

// Solves the 3x3 system m x = v (Gaussian elimination, partial pivoting).
std::array<double, 3> solve3(std::array<std::array<double, 3>, 3> m, std::array<double, 3> v) noexcept {
    for (std::size_t c = 0; c < 3; ++c) {
        std::size_t piv = c;
        for (std::size_t r = c + 1; r < 3; ++r)
            if (std::fabs(m[r][c]) > std::fabs(m[piv][c])) piv = r;
        std::swap(m[c], m[piv]);
        std::swap(v[c], v[piv]);
        for (std::size_t r = c + 1; r < 3; ++r) {
            const double k = m[r][c] / m[c][c];
            for (std::size_t j = c; j < 3; ++j) m[r][j] -= k * m[c][j];
            v[r] -= k * v[c];
        }
    }
    std::array<double, 3> x{};
    for (std::size_t i = 3; i-- > 0;) {
        double s = v[i];
        for (std::size_t j = i + 1; j < 3; ++j) s -= m[i][j] * x[j];
        x[i] = s / m[i][i];
    }
    return x;
}

// The root of z^2 - u z + 1 = 0 with |z| <= 1 (the other one is 1/z), for real u. |u| < 2 would
// give a pair on the unit circle (the fitted power touching zero); it is clamped to |u| = 2 (a real
// zero at +-1) so that the coefficients stay real. Large |u| gives z -> 0 without cancellation.
double inner_root(double u) noexcept {
    const double a = std::max(std::fabs(u), 2.0);
    return std::copysign(2.0 / (a + std::sqrt(a * a - 4.0)), u);
}
// The same for complex u.
cplx inner_root(cplx u) noexcept {
    const cplx s = std::sqrt(u * u - 4.0);
    const cplx z1 = (u + s) / 2.0, z2 = (u - s) / 2.0;
    return std::abs(z1) <= std::abs(z2) ? z1 : z2;
}

// The low-pass section of C: the analog double pole at f4 mapped by impulse invariance,
// (1 - q z^-1)^2 with q = exp(-2 pi f4 / fs), and a second-order numerator N(z) chosen so that
// |hp1 * N / D| follows the analytic C magnitude from 10 Hz to 20 kHz (or 0.98 Nyquist).
//
// |N(e^jw)|^2 = r0 + 2 r1 cos w + 2 r2 cos 2w is linear in r, so r comes from a weighted linear
// least-squares fit of the power response (weights 1/target: relative error, close to a dB fit;
// 1/20 of that above 16.5 kHz, so that the band up to 16 kHz gets the accuracy). N is then the
// minimum-phase spectral factor of that power response: with u = z + 1/z the power polynomial is
// r2 u^2 + r1 u + (r0 - 2 r2), and each root u gives one zero of N, the root of z^2 - u z + 1
// inside the unit circle. (For every rate in [8, 384] kHz both zeros lie within |z| < 0.5; the
// test suite sweeps the range.)
BiquadCoeffs fitted_lowpass(const PoleFreqs& p, const BiquadCoeffs& hp1, double fs) noexcept {
    const double q = std::exp(-2.0 * pi * p.f4 / fs);
    BiquadCoeffs lp;
    lp.a1 = -2.0 * q;
    lp.a2 = q * q;

    constexpr int n = 400;
    const double f_lo = 10.0, f_hi = std::min(20000.0, 0.98 * fs / 2.0);
    std::array<std::array<double, 3>, 3> m{};
    std::array<double, 3> v{};
    for (int i = 0; i < n; ++i) {
        const double f = f_lo * std::pow(f_hi / f_lo, static_cast<double>(i) / (n - 1));
        const double w = 2.0 * pi * f / fs;
        const cplx z1 = std::polar(1.0, -w);
        const double den = std::norm(1.0 + lp.a1 * z1 + lp.a2 * z1 * z1);
        const double target = c_power_raw(f) / std::norm(section_response(hp1, w)) * den; // |N|^2 wanted
        const double weight = (f <= 16500.0 ? 1.0 : 0.05) / target;
        const std::array<double, 3> row{1.0, 2.0 * std::cos(w), 2.0 * std::cos(2.0 * w)};
        const double w2 = weight * weight;
        for (std::size_t a = 0; a < 3; ++a) {
            v[a] += w2 * row[a] * target;
            for (std::size_t b = 0; b < 3; ++b) m[a][b] += w2 * row[a] * row[b];
        }
    }
    const std::array<double, 3> r = solve3(m, v);

    // Roots u of r2 u^2 + r1 u + (r0 - 2 r2), then the zeros of N.
    const double qa = r[2], qb = r[1], qc = r[0] - 2.0 * r[2];
    const double disc = qb * qb - 4.0 * qa * qc;
    if (disc >= 0.0) {
        // Two real u: two real zeros.
        const double t = -0.5 * (qb + std::copysign(std::sqrt(disc), qb));
        const double z1 = inner_root(t / qa), z2 = inner_root(qc / t);
        lp.b1 = -(z1 + z2);
        lp.b2 = z1 * z2;
    } else {
        // A complex-conjugate pair of u: a complex-conjugate pair of zeros.
        const cplx z = inner_root(cplx(-qb, std::sqrt(-disc)) / (2.0 * qa));
        lp.b1 = -2.0 * z.real();
        lp.b2 = std::norm(z);
    }
    lp.b0 = 1.0;
    return lp;
}

} // namespace

double weighting_db(Weighting w, double f_hz) noexcept {
    if (!(f_hz > 0.0)) return -std::numeric_limits<double>::infinity();
    const double ratio =
        w == Weighting::A ? a_power_raw(f_hz) / a_power_raw(1000.0) : c_power_raw(f_hz) / c_power_raw(1000.0);
    return 10.0 * std::log10(ratio);
}

double cascade_response_db(const BiquadCoeffs* sections, int count, double gain, double f_hz,
                           double fs_hz) noexcept {
    return 20.0 * std::log10(cascade_magnitude(sections, count, gain, f_hz, fs_hz));
}

void AcWeighting::prepare(double fs_hz) {
    if (!(fs_hz >= 8000.0 && fs_hz <= 384000.0))
        throw std::invalid_argument("weighting: sample rate out of range [8000, 384000] Hz");
    const PoleFreqs& p = poles();
    _fs = fs_hz;

    // C = hp(f1, f1) * lp(f4); A = C * hp(f2, f3).
    _c[0] = bilinear_highpass_pair(p.f1, p.f1, fs_hz);
    _c[1] = fitted_lowpass(p, _c[0], fs_hz);
    _a[0] = bilinear_highpass_pair(p.f2, p.f3, fs_hz);
    _nc = static_cast<int>(nc);
    _na = static_cast<int>(na);

    // Normalise each digital response to exactly 0 dB at 1 kHz, in the first section's numerator.
    const double gc = 1.0 / cascade_magnitude(_c.data(), _nc, 1.0, 1000.0, fs_hz);
    _c[0].b0 *= gc;
    _c[0].b1 *= gc;
    _c[0].b2 *= gc;
    const double ga = 1.0 / cascade_magnitude(_a.data(), _na, 1.0, 1000.0, fs_hz);
    _a[0].b0 *= ga;
    _a[0].b1 *= ga;
    _a[0].b2 *= ga;
    reset();
}

void AcWeighting::reset() noexcept {
    for (auto& z : _zc) z = {0.0, 0.0};
    for (auto& z : _za) z = {0.0, 0.0};
}

double AcWeighting::response_db(Weighting w, double f_hz) const noexcept {
    if (!(_fs > 0.0)) return std::numeric_limits<double>::quiet_NaN();
    double m = cascade_magnitude(_c.data(), _nc, 1.0, f_hz, _fs);
    if (w == Weighting::A) m *= cascade_magnitude(_a.data(), _na, 1.0, f_hz, _fs);
    return 20.0 * std::log10(m);
}

bool AcWeighting::finite() const noexcept {
    bool ok = true;
    for (const auto& z : _zc) ok = ok && std::isfinite(z[0]) && std::isfinite(z[1]);
    for (const auto& z : _za) ok = ok && std::isfinite(z[0]) && std::isfinite(z[1]);
    return ok;
}

} // namespace earshot::dsp
