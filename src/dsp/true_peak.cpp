#include "earshot/dsp/true_peak.hpp"

#include <cmath>

namespace earshot::dsp {

namespace {

// Zeroth-order modified Bessel function of the first kind (series; converges fast for beta <= 10).
double bessel_i0(double x) {
    double sum = 1.0, term = 1.0;
    const double q = x * x / 4.0;
    for (int k = 1; k < 50; ++k) {
        term *= q / (static_cast<double>(k) * static_cast<double>(k));
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

constexpr double kaiser_beta = 6.0;
constexpr double half_span = TruePeakInterpolator::half; // window covers |d| <= half input samples

} // namespace

TruePeakInterpolator::TruePeakInterpolator() {
    const double pi = 3.14159265358979323846;
    const double i0b = bessel_i0(kaiser_beta);
    float bound = 1.0f;
    for (int p = 1; p <= 3; ++p) {
        // Window sample j holds x[m - 5 + j]; its distance to t = m + p/4 is d = p/4 + 5 - j.
        std::array<double, taps> c{};
        double sum = 0;
        for (int j = 0; j < taps; ++j) {
            const double d = static_cast<double>(p) / 4.0 + (half_span - 1.0) - static_cast<double>(j);
            const double sinc = std::sin(pi * d) / (pi * d);
            const double r = d / half_span;
            const double w = r * r < 1.0 ? bessel_i0(kaiser_beta * std::sqrt(1.0 - r * r)) / i0b : 0.0;
            c[static_cast<std::size_t>(j)] = sinc * w;
            sum += sinc * w;
        }
        double abs_sum = 0;
        for (int j = 0; j < taps; ++j) {
            const double v = c[static_cast<std::size_t>(j)] / sum;
            _c[static_cast<std::size_t>(p - 1)][static_cast<std::size_t>(j)] = static_cast<float>(v);
            abs_sum += std::fabs(v);
        }
        // Round the bound up a little so float rounding in the dot product can never beat it.
        const float b = static_cast<float>(abs_sum * (1.0 + 1e-5));
        if (b > bound) bound = b;
    }
    _bound = bound;
    for (int j = 0; j < taps; ++j)
        _c4[j] = v4f{_c[0][static_cast<std::size_t>(j)], _c[1][static_cast<std::size_t>(j)],
                     _c[2][static_cast<std::size_t>(j)], 0.0f};
}

float TruePeakInterpolator::interpolate(const float* w, int p) const noexcept {
    const auto& c = _c[static_cast<std::size_t>(p - 1)];
    float y = 0;
    for (int j = 0; j < taps; ++j) y += c[static_cast<std::size_t>(j)] * w[j];
    return y;
}

void TruePeakMeter::reset() noexcept {
    _ring.fill(0.0f);
    _pos = 0;
    _count = 0;
    _peak = 0.0f;
}

void TruePeakMeter::push(float x) noexcept {
    if (!std::isfinite(x)) x = 0.0f;
    _ring[_pos] = x;
    _ring[_pos + ring_len] = x;
    ++_count;
    // The window ends at the newest sample: x[m+6] with m = count-1-6.
    if (_count >= 1) {
        const float* w = &_ring[_pos + ring_len - (TruePeakInterpolator::taps - 1)];
        const float p = _ip.interval_peak(w);
        if (p > _peak) _peak = p;
    }
    _pos = (_pos + 1) & (ring_len - 1);
}

void TruePeakMeter::process(const float* x, uint32_t n) noexcept {
    for (uint32_t i = 0; i < n; ++i) push(x[i]);
}

void TruePeakMeter::finish() noexcept {
    for (int i = 0; i < TruePeakInterpolator::delay; ++i) push(0.0f);
}

} // namespace earshot::dsp
