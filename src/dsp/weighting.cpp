#include "earshot/dsp/weighting.hpp"

#include <cmath>
#include <complex>
#include <stdexcept>
#include <vector>

namespace earshot::dsp {

namespace {

constexpr double pi = 3.14159265358979323846;

// IEC 61672-1 §5.4 / Annex E design constants (hearing-dose.md §3.1), derived, not rounded.
struct Poles {
    double f1, f2, f3, f4;
};

Poles poles() {
    const double fr = 1000.0, fL = std::pow(10.0, 1.5), fH = std::pow(10.0, 3.9), D = std::sqrt(0.5),
                 fA = std::pow(10.0, 2.45);
    // IEC 61672-1 E.2: D^2 = 1/2, and b uses D itself.
    const double c = fL * fL * fH * fH;
    const double b = (1.0 / (1.0 - D)) * (fr * fr + fL * fL * fH * fH / (fr * fr) - D * (fL * fL + fH * fH));
    Poles p{};
    p.f1 = std::sqrt((-b - std::sqrt(b * b - 4.0 * c)) / 2.0);
    p.f4 = std::sqrt((-b + std::sqrt(b * b - 4.0 * c)) / 2.0);
    p.f2 = (3.0 - std::sqrt(5.0)) / 2.0 * fA;
    p.f3 = (3.0 + std::sqrt(5.0)) / 2.0 * fA;
    return p;
}

// Un-normalised analytic magnitudes (linear).
double c_raw(const Poles& p, double f) {
    const double f2 = f * f;
    return p.f4 * p.f4 * f2 / ((f2 + p.f1 * p.f1) * (f2 + p.f4 * p.f4));
}
double a_raw(const Poles& p, double f) {
    const double f2 = f * f;
    return c_raw(p, f) * f2 / (std::sqrt(f2 + p.f2 * p.f2) * std::sqrt(f2 + p.f3 * p.f3));
}

std::complex<double> section_h(const BiquadCoeffs& s, double w) {
    const std::complex<double> z1 = std::polar(1.0, -w), z2 = std::polar(1.0, -2.0 * w);
    return (s.b0 + s.b1 * z1 + s.b2 * z2) / (1.0 + s.a1 * z1 + s.a2 * z2);
}

// Bilinear transform (pole prewarped) of the product of two first-order high-passes s/(s + w_a),
// s/(s + w_b).
BiquadCoeffs hp_pair(double wa, double wb, double fs) {
    const double K = 2.0 * fs;
    const double pa = 2.0 * fs * std::tan(wa / (2.0 * fs)), pb = 2.0 * fs * std::tan(wb / (2.0 * fs));
    // (K(1 - z^-1) / ((K + pa) + (pa - K) z^-1)) * same for pb
    const double na = K / (K + pa), da = (pa - K) / (K + pa);
    const double nb = K / (K + pb), db = (pb - K) / (K + pb);
    BiquadCoeffs s;
    s.b0 = na * nb;
    s.b1 = -2.0 * na * nb;
    s.b2 = na * nb;
    s.a1 = da + db;
    s.a2 = da * db;
    return s;
}

// Fits a numerator N(z) = 1 + n1 z^-1 + n2 z^-2 (up to gain) so that |N| / |D| * |others| matches
// |target| over a log grid up to 20 kHz (or 0.98 Nyquist), least squares on relative power:
// |N|^2 = r0 + 2 r1 cos w + 2 r2 cos 2w is linear in r, then N is the minimum-phase spectral factor.
BiquadCoeffs fit_numerator(double fs, const BiquadCoeffs& den, const std::vector<BiquadCoeffs>& others,
                           double (*target)(const Poles&, double), const Poles& p) {
    const int n = 400;
    const double fmax = std::min(20000.0, 0.98 * fs / 2.0);
    double M[3][3] = {}, v[3] = {};
    for (int i = 0; i < n; ++i) {
        const double f = 10.0 * std::pow(fmax / 10.0, double(i) / double(n - 1));
        const double w = 2.0 * pi * f / fs;
        std::complex<double> ho = 1.0;
        for (const auto& s : others) ho *= section_h(s, w);
        const std::complex<double> z1 = std::polar(1.0, -w), z2 = std::polar(1.0, -2.0 * w);
        const double dm = std::abs(1.0 + den.a1 * z1 + den.a2 * z2);
        const double want = target(p, f) / std::abs(ho) * dm;
        const double T = want * want;
        const double wt = (f <= 16500.0 ? 1.0 : 0.05) / T;
        const double row[3] = {1.0, 2.0 * std::cos(w), 2.0 * std::cos(2.0 * w)};
        for (int a = 0; a < 3; ++a) {
            v[a] += wt * wt * row[a] * T;
            for (int b = 0; b < 3; ++b) M[a][b] += wt * wt * row[a] * row[b];
        }
    }
    // Solve the 3x3 normal equations (Gaussian elimination with partial pivoting).
    double A[3][4];
    for (int a = 0; a < 3; ++a) {
        for (int b = 0; b < 3; ++b) A[a][b] = M[a][b];
        A[a][3] = v[a];
    }
    for (int c = 0; c < 3; ++c) {
        int piv = c;
        for (int r = c + 1; r < 3; ++r)
            if (std::fabs(A[r][c]) > std::fabs(A[piv][c])) piv = r;
        for (int k = 0; k < 4; ++k) std::swap(A[c][k], A[piv][k]);
        for (int r = 0; r < 3; ++r) {
            if (r == c) continue;
            const double m = A[r][c] / A[c][c];
            for (int k = c; k < 4; ++k) A[r][k] -= m * A[c][k];
        }
    }
    const double r0 = A[0][3] / A[0][0], r1 = A[1][3] / A[1][1], r2 = A[2][3] / A[2][2];
    // r2 (x^2 + x^-2) + r1 (x + x^-1) + r0 = 0 with u = x + 1/x: r2 u^2 + r1 u + (r0 - 2 r2) = 0.
    using cd = std::complex<double>;
    std::vector<cd> zeros;
    auto zero_for = [](cd u) {
        const cd s = std::sqrt(u * u - 4.0);
        const cd x1 = (u + s) / 2.0, x2 = (u - s) / 2.0;
        return std::abs(x1) <= std::abs(x2) ? x1 : x2; // the one inside: minimum phase
    };
    if (std::fabs(r2) > 1e-12 * std::fabs(r0)) {
        const cd disc = std::sqrt(cd(r1 * r1 - 4.0 * r2 * (r0 - 2.0 * r2)));
        zeros.push_back(zero_for((-r1 + disc) / (2.0 * r2)));
        zeros.push_back(zero_for((-r1 - disc) / (2.0 * r2)));
    } else {
        zeros.push_back(zero_for(cd(-r0 / r1)));
    }
    BiquadCoeffs s = den;
    s.b0 = 1.0;
    if (zeros.size() == 2) {
        s.b1 = -(zeros[0] + zeros[1]).real();
        s.b2 = (zeros[0] * zeros[1]).real();
    } else {
        s.b1 = -zeros[0].real();
        s.b2 = 0.0;
    }
    return s;
}

double response_of(const BiquadCoeffs* s, int n, double gain, double f, double fs) {
    const double w = 2.0 * pi * f / fs;
    std::complex<double> h = gain;
    for (int i = 0; i < n; ++i) h *= section_h(s[i], w);
    return std::abs(h);
}

} // namespace

double weighting_db(Weighting w, double f_hz) noexcept {
    static const Poles p = poles();
    if (!(f_hz > 0.0)) return -INFINITY;
    const double v =
        w == Weighting::A ? a_raw(p, f_hz) / a_raw(p, 1000.0) : c_raw(p, f_hz) / c_raw(p, 1000.0);
    return 20.0 * std::log10(v);
}

double cascade_response_db(const BiquadCoeffs* sections, int count, double gain, double f_hz,
                           double fs_hz) noexcept {
    return 20.0 * std::log10(response_of(sections, count, gain, f_hz, fs_hz));
}

void AcWeighting::prepare(double fs_hz) {
    if (!(fs_hz >= 8000.0 && fs_hz <= 384000.0))
        throw std::invalid_argument("weighting: sample rate out of range [8000, 384000] Hz");
    const Poles p = poles();
    _fs = fs_hz;
    const double w1 = 2.0 * pi * p.f1, w2 = 2.0 * pi * p.f2, w3 = 2.0 * pi * p.f3;
    // Double real pole at f4 by impulse invariance: (1 - q z^-1)^2, q = exp(-w4 / fs).
    const double q = std::exp(-2.0 * pi * p.f4 / fs_hz);
    BiquadCoeffs den;
    den.a1 = -2.0 * q;
    den.a2 = q * q;

    const BiquadCoeffs hp1 = hp_pair(w1, w1, fs_hz);
    const BiquadCoeffs hp23 = hp_pair(w2, w3, fs_hz);
    const BiquadCoeffs lp_c = fit_numerator(fs_hz, den, {hp1}, c_raw, p);
    const BiquadCoeffs lp_a = fit_numerator(fs_hz, den, {hp1, hp23}, a_raw, p);

    _nc = 2;
    _c[0] = hp1;
    _c[1] = lp_c;
    // A = C * hp23 * N_A / N_C: the C numerator's zeros become poles (inside the unit circle,
    // minimum phase), the A numerator's zeros are new.
    BiquadCoeffs corr;
    corr.b0 = lp_a.b0;
    corr.b1 = lp_a.b1;
    corr.b2 = lp_a.b2;
    corr.a1 = lp_c.b1 / lp_c.b0;
    corr.a2 = lp_c.b2 / lp_c.b0;
    corr.b0 /= lp_c.b0;
    corr.b1 /= lp_c.b0;
    corr.b2 /= lp_c.b0;
    _na = 2;
    _a[0] = hp23;
    _a[1] = corr;
    _c_gain = 1.0 / response_of(_c.data(), _nc, 1.0, 1000.0, fs_hz);
    _a_gain = 1.0 / response_of(_a.data(), _na, 1.0, 1000.0, fs_hz);
    reset();
}

void AcWeighting::reset() noexcept {
    for (auto& z : _zc) z = {0.0, 0.0};
    for (auto& z : _za) z = {0.0, 0.0};
}

double AcWeighting::response_db(Weighting w, double f_hz) const noexcept {
    const double c = response_of(_c.data(), _nc, _c_gain, f_hz, _fs);
    if (w == Weighting::C) return 20.0 * std::log10(c);
    return 20.0 * std::log10(c * response_of(_a.data(), _na, _a_gain, f_hz, _fs));
}

bool AcWeighting::finite() const noexcept {
    double s = 0;
    for (const auto& z : _zc) s += z[0] + z[1];
    for (const auto& z : _za) s += z[0] + z[1];
    return std::isfinite(s);
}

} // namespace earshot::dsp
