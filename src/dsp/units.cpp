#include "earshot/dsp/units.hpp"

namespace earshot::dsp {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
uint32_t
abs_max_bits(const float* x, uint32_t n) noexcept {
    int32_t m = 0; // signed: the masked values are >= 0, and SSE2 has a signed 32-bit compare
    for (uint32_t i = 0; i < n; ++i) {
        int32_t b;
        std::memcpy(&b, x + i, sizeof b);
        b &= 0x7fffffff;
        m = b > m ? b : m;
    }
    return static_cast<uint32_t>(m);
}

} // namespace earshot::dsp
