#include "earshot/dsp/mix.hpp"

#include <cstring>

namespace earshot::dsp {

namespace {

// Register-blocked kernels over W-float vectors (GCC/Clang vector extensions). A block of B
// vectors per channel is held in registers while every input is added into it, so each input
// sample is loaded once (for both channels of a stereo mix) and dst is read and written once per
// block. The operation order per sample is fixed (dst, then the inputs in order), so the result is
// the same whatever the vector width.
template <int W>
struct Vec {
    typedef float type __attribute__((vector_size(W * sizeof(float))));
};

template <int W, int B>
[[gnu::always_inline]] inline void stereo_block(float* __restrict l, float* __restrict r,
                                                const float* const* x, const float* gl, const float* gr,
                                                int count, uint32_t off) noexcept {
    using V = typename Vec<W>::type;
    V al[B], ar[B];
    for (int b = 0; b < B; ++b) {
        std::memcpy(&al[b], l + off + static_cast<uint32_t>(b * W), sizeof(V));
        std::memcpy(&ar[b], r + off + static_cast<uint32_t>(b * W), sizeof(V));
    }
    for (int k = 0; k < count; ++k) {
        const float* p = x[k] + off;
        const float a = gl[k], c = gr[k];
        for (int b = 0; b < B; ++b) {
            V v;
            std::memcpy(&v, p + b * W, sizeof(V));
            al[b] += a * v;
            ar[b] += c * v;
        }
    }
    for (int b = 0; b < B; ++b) {
        std::memcpy(l + off + static_cast<uint32_t>(b * W), &al[b], sizeof(V));
        std::memcpy(r + off + static_cast<uint32_t>(b * W), &ar[b], sizeof(V));
    }
}

template <int W, int B>
[[gnu::always_inline]] inline void mono_block(float* __restrict d, const float* const* x, const float* g,
                                              int count, uint32_t off) noexcept {
    using V = typename Vec<W>::type;
    V acc[B];
    for (int b = 0; b < B; ++b) std::memcpy(&acc[b], d + off + static_cast<uint32_t>(b * W), sizeof(V));
    for (int k = 0; k < count; ++k) {
        const float* p = x[k] + off;
        const float a = g[k];
        for (int b = 0; b < B; ++b) {
            V v;
            std::memcpy(&v, p + b * W, sizeof(V));
            acc[b] += a * v;
        }
    }
    for (int b = 0; b < B; ++b) std::memcpy(d + off + static_cast<uint32_t>(b * W), &acc[b], sizeof(V));
}

// The tail (n not a multiple of the block): scalar, in the same per-sample order.
[[gnu::always_inline]] inline void stereo_tail(float* l, float* r, const float* const* x, const float* gl,
                                               const float* gr, int count, uint32_t from,
                                               uint32_t n) noexcept {
    for (uint32_t i = from; i < n; ++i) {
        float a = l[i], c = r[i];
        for (int k = 0; k < count; ++k) {
            a += gl[k] * x[k][i];
            c += gr[k] * x[k][i];
        }
        l[i] = a;
        r[i] = c;
    }
}

[[gnu::always_inline]] inline void mono_tail(float* d, const float* const* x, const float* g, int count,
                                             uint32_t from, uint32_t n) noexcept {
    for (uint32_t i = from; i < n; ++i) {
        float a = d[i];
        for (int k = 0; k < count; ++k) a += g[k] * x[k][i];
        d[i] = a;
    }
}

// W floats per vector, B vectors per channel in registers: 2 B accumulators for stereo.
template <int W, int B>
[[gnu::always_inline]] inline void stereo_impl(float* l, float* r, const float* const* x, const float* gl,
                                               const float* gr, int count, uint32_t n) noexcept {
    constexpr uint32_t span = static_cast<uint32_t>(W * B);
    uint32_t i = 0;
    for (; i + span <= n; i += span) stereo_block<W, B>(l, r, x, gl, gr, count, i);
    for (; i + static_cast<uint32_t>(W) <= n; i += static_cast<uint32_t>(W))
        stereo_block<W, 1>(l, r, x, gl, gr, count, i);
    stereo_tail(l, r, x, gl, gr, count, i, n);
}

template <int W, int B>
[[gnu::always_inline]] inline void mono_impl(float* d, const float* const* x, const float* g, int count,
                                             uint32_t n) noexcept {
    constexpr uint32_t span = static_cast<uint32_t>(W * B);
    uint32_t i = 0;
    for (; i + span <= n; i += span) mono_block<W, B>(d, x, g, count, i);
    for (; i + static_cast<uint32_t>(W) <= n; i += static_cast<uint32_t>(W))
        mono_block<W, 1>(d, x, g, count, i);
    mono_tail(d, x, g, count, i, n);
}

// Baseline x86-64 (SSE2, 16 registers): 4 + 4 accumulators of 4 floats.
void stereo_base(float* l, float* r, const float* const* x, const float* gl, const float* gr, int count,
                 uint32_t n) noexcept {
    stereo_impl<4, 4>(l, r, x, gl, gr, count, n);
}
void mono_base(float* d, const float* const* x, const float* g, int count, uint32_t n) noexcept {
    mono_impl<4, 8>(d, x, g, count, n);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EARSHOT_MIX_AVX2 1
// AVX2 (16 ymm registers): 4 + 4 accumulators of 8 floats. No FMA: the same rounding as baseline.
[[gnu::target("avx2")]] void stereo_avx2(float* l, float* r, const float* const* x, const float* gl,
                                         const float* gr, int count, uint32_t n) noexcept {
    stereo_impl<8, 4>(l, r, x, gl, gr, count, n);
}
[[gnu::target("avx2")]] void mono_avx2(float* d, const float* const* x, const float* g, int count,
                                       uint32_t n) noexcept {
    mono_impl<8, 8>(d, x, g, count, n);
}
#endif

using StereoFn = void (*)(float*, float*, const float* const*, const float*, const float*, int,
                          uint32_t) noexcept;
using MonoFn = void (*)(float*, const float* const*, const float*, int, uint32_t) noexcept;

struct Kernels {
    StereoFn stereo = stereo_base;
    MonoFn mono = mono_base;
    bool wide = false;
    Kernels() noexcept {
#ifdef EARSHOT_MIX_AVX2
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) {
            stereo = stereo_avx2;
            mono = mono_avx2;
            wide = true;
        }
#endif
    }
};

const Kernels& kernels() noexcept {
    static const Kernels k; // chosen once, before the first RT cycle (Engine's constructor calls this)
    return k;
}

} // namespace

void mix_sum(float* dst, const float* const* x, const float* g, int count, uint32_t n) noexcept {
    kernels().mono(dst, x, g, count, n);
}

void mix_sum_stereo(float* l, float* r, const float* const* x, const float* gl, const float* gr, int count,
                    uint32_t n) noexcept {
    kernels().stereo(l, r, x, gl, gr, count, n);
}

const char* mix_kernel_name() noexcept {
    return kernels().wide ? "avx2" : "sse2";
}

} // namespace earshot::dsp
