#include "earshot/dsp/gain_ramp.hpp"

namespace earshot::dsp {

void GainRamp::apply(float* buf, uint32_t n) noexcept {
    uint32_t i = 0;
    for (; i < n && _left != 0; ++i) buf[i] *= next();
    const float g = _cur;
    if (i == n) return;
    if (g == 1.0f) return;
    for (; i < n; ++i) buf[i] *= g;
}

void GainRamp::mix_into(float* dst, const float* src, uint32_t n) noexcept {
    uint32_t i = 0;
    for (; i < n && _left != 0; ++i) dst[i] += next() * src[i];
    const float g = _cur;
    if (i == n || g == 0.0f) return;
    for (; i < n; ++i) dst[i] += g * src[i];
}

void GainRamp::fill(float* g, uint32_t n) noexcept {
    uint32_t i = 0;
    for (; i < n && _left != 0; ++i) g[i] = next();
    for (; i < n; ++i) g[i] = _cur;
}

} // namespace earshot::dsp
