#include "earshot/dsp/true_peak.hpp"

#include <cmath>
#include <cstring>

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

namespace {

template <int W>
struct VecF {
    typedef float type __attribute__((vector_size(W * sizeof(float))));
};

// W windows per vector: three phase accumulators in registers while the 12 taps run, the same
// order of additions per window as interval_peak() (0 + c[0] w[0] + c[1] w[1] + ...).
template <int W>
[[gnu::always_inline]] inline void peaks_impl(const std::array<std::array<float, 12>, 3>& c,
                                              const float* base, uint32_t m, float* e) noexcept {
    using V = typename VecF<W>::type;
    constexpr int taps = TruePeakInterpolator::taps;
    constexpr int half = TruePeakInterpolator::half;
    uint32_t i = 0;
    for (; i + static_cast<uint32_t>(W) <= m; i += static_cast<uint32_t>(W)) {
        V a0 = {}, a1 = {}, a2 = {};
        for (int j = 0; j < taps; ++j) {
            V w;
            std::memcpy(&w, base + i + static_cast<uint32_t>(j), sizeof(V));
            const auto k = static_cast<std::size_t>(j);
            a0 += c[0][k] * w;
            a1 += c[1][k] * w;
            a2 += c[2][k] * w;
        }
        V x, acc;
        std::memcpy(&x, base + i + static_cast<uint32_t>(half - 1), sizeof(V));
        std::memcpy(&acc, e + i, sizeof(V));
        // |v| and max exactly as interval_peak(): (v < 0 ? -v : v), (y > p ? y : p).
        V p = x < 0 ? -x : x;
        const V y0 = a0 < 0 ? -a0 : a0;
        p = y0 > p ? y0 : p;
        const V y1 = a1 < 0 ? -a1 : a1;
        p = y1 > p ? y1 : p;
        const V y2 = a2 < 0 ? -a2 : a2;
        p = y2 > p ? y2 : p;
        acc = p > acc ? p : acc;
        std::memcpy(e + i, &acc, sizeof(V));
    }
    for (; i < m; ++i) {
        const float* w = base + i;
        float a[3] = {0.0f, 0.0f, 0.0f};
        for (int j = 0; j < taps; ++j)
            for (int k = 0; k < 3; ++k)
                a[k] += c[static_cast<std::size_t>(k)][static_cast<std::size_t>(j)] * w[j];
        float p = w[half - 1] < 0 ? -w[half - 1] : w[half - 1];
        for (int k = 0; k < 3; ++k) {
            const float y = a[k] < 0 ? -a[k] : a[k];
            p = y > p ? y : p;
        }
        e[i] = p > e[i] ? p : e[i];
    }
}

using PeaksFn = void (*)(const std::array<std::array<float, 12>, 3>&, const float*, uint32_t,
                         float*) noexcept;

void peaks_base(const std::array<std::array<float, 12>, 3>& c, const float* base, uint32_t m,
                float* e) noexcept {
    peaks_impl<4>(c, base, m, e);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
[[gnu::target("avx2")]] void peaks_avx2(const std::array<std::array<float, 12>, 3>& c, const float* base,
                                        uint32_t m, float* e) noexcept {
    peaks_impl<8>(c, base, m, e);
}
PeaksFn pick_peaks() noexcept {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? &peaks_avx2 : &peaks_base;
}
#else
PeaksFn pick_peaks() noexcept {
    return &peaks_base;
}
#endif

const PeaksFn peaks_fn = pick_peaks(); // chosen at static initialisation, before any RT cycle

} // namespace

void TruePeakInterpolator::block_peaks(const float* base, uint32_t m, float* e) const noexcept {
    peaks_fn(_c, base, m, e);
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
