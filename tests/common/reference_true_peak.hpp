// Test-only reference true-peak meter, independent of earshot's TruePeakInterpolator:
// 4x oversampling (BS.1770 style) with a longer Kaiser-windowed sinc than the limiter's detector
// (16 taps per phase, +-8 input samples, beta 8), computed in double over the whole signal (zero-padded at
// both ends).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace earshot::test {

inline double ref_bessel_i0(double x) {
    double s = 1, t = 1;
    for (int k = 1; k < 60; ++k) {
        t *= (x * x / 4) / (double(k) * double(k));
        s += t;
    }
    return s;
}

inline double reference_true_peak(const std::vector<float>& x) {
    constexpr int half = 8;
    constexpr double beta = 8.0;
    const double pi = 3.14159265358979323846;
    double c[3][2 * half];
    for (int p = 1; p <= 3; ++p) {
        double sum = 0;
        for (int j = 0; j < 2 * half; ++j) {
            const double d = p / 4.0 + (half - 1) - j;
            const double r = d / half;
            const double w = ref_bessel_i0(beta * std::sqrt(std::max(0.0, 1 - r * r))) / ref_bessel_i0(beta);
            c[p - 1][j] = std::sin(pi * d) / (pi * d) * w;
            sum += c[p - 1][j];
        }
        for (int j = 0; j < 2 * half; ++j) c[p - 1][j] /= sum;
    }
    double peak = 0;
    const long n = static_cast<long>(x.size());
    for (long m = 0; m < n; ++m) {
        peak = std::max(peak, std::fabs(double(x[static_cast<std::size_t>(m)])));
        for (int p = 0; p < 3; ++p) {
            double y = 0;
            for (int j = 0; j < 2 * half; ++j) {
                const long k = m - (half - 1) + j;
                if (k >= 0 && k < n) y += c[p][j] * double(x[static_cast<std::size_t>(k)]);
            }
            peak = std::max(peak, std::fabs(y));
        }
    }
    return peak;
}

} // namespace earshot::test
