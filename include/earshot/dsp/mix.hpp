// earshot::dsp mixing kernels — sums of gained inputs into a mono or stereo bus.
//
// The accumulators of a block of output samples stay in registers while every input is added, so
// each input sample is read once per bus (once for both channels of a stereo bus). An AVX2 variant
// is chosen at run time where the CPU has it (no FMA: every variant rounds the same way, per sample
// dst + g0 x0 + g1 x1 + ... in input order).
//
// Thread contract: pure functions, noexcept, [RT-safe]. The first call picks the variant; the
// engine makes it off the RT thread (mix_kernel_name() in its constructor).
//
//   const float* x[3] = {a, b, c}; const float g[3] = {0.5f, 1.0f, 0.25f};
//   dsp::mix_sum(out, x, g, 3, n);     // out[i] += 0.5 a[i] + b[i] + 0.25 c[i]
#pragma once

#include <cstdint>

namespace earshot::dsp {

/// dst[i] += sum_k g[k] * x[k][i] for i < n. The inputs must not alias dst. [RT-safe]
void mix_sum(float* dst, const float* const* x, const float* g, int count, uint32_t n) noexcept;

/// l[i] += sum_k gl[k] * x[k][i] and r[i] += sum_k gr[k] * x[k][i] for i < n. The inputs must not
/// alias l or r, and l must not alias r. [RT-safe]
void mix_sum_stereo(float* l, float* r, const float* const* x, const float* gl, const float* gr, int count,
                    uint32_t n) noexcept;

/// The variant in use: "avx2" or "sse2". [any thread]
const char* mix_kernel_name() noexcept;

} // namespace earshot::dsp
