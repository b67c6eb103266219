#include "earshot/dsp/mix.hpp"

namespace earshot::dsp {

void mix_sum(float* __restrict dst, const float* const* x, const float* g, int count, uint32_t n) noexcept {
    int k = 0;
    // Four inputs per pass: one load and one store of dst per four multiply-adds.
    for (; k + 4 <= count; k += 4) {
        const float* __restrict a = x[k];
        const float* __restrict b = x[k + 1];
        const float* __restrict c = x[k + 2];
        const float* __restrict d = x[k + 3];
        const float ga = g[k], gb = g[k + 1], gc = g[k + 2], gd = g[k + 3];
        for (uint32_t i = 0; i < n; ++i) dst[i] += ga * a[i] + gb * b[i] + gc * c[i] + gd * d[i];
    }
    for (; k < count; ++k) {
        const float* __restrict a = x[k];
        const float ga = g[k];
        for (uint32_t i = 0; i < n; ++i) dst[i] += ga * a[i];
    }
}

} // namespace earshot::dsp
