// earshot::dsp mixing kernels — sums of gained inputs, four inputs per pass over the output.
//
// Thread contract: pure functions, noexcept, [RT-safe].
//
//   const float* x[3] = {a, b, c}; const float g[3] = {0.5f, 1.0f, 0.25f};
//   dsp::mix_sum(out, x, g, 3, n);     // out[i] += 0.5 a[i] + b[i] + 0.25 c[i]
#pragma once

#include <cstdint>

namespace earshot::dsp {

/// dst[i] += sum_k g[k] * x[k][i] for i < n. The inputs must not alias dst. [RT-safe]
void mix_sum(float* dst, const float* const* x, const float* g, int count, uint32_t n) noexcept;

} // namespace earshot::dsp
