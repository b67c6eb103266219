// The mixing kernels (mix_sum, mix_sum_stereo) against a scalar reference, and the block peak
// probe abs_max_bits (NaN, Inf, denormals, signed zeros).
#include "earshot/dsp/mix.hpp"
#include "earshot/dsp/units.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace earshot::dsp;

TEST_CASE("mix: mono and stereo kernels equal the scalar sum, every length and count", "[dsp][mix]") {
    INFO("kernel: " << mix_kernel_name());
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int count : {0, 1, 3, 4, 5, 17, 32, 64}) {
        std::vector<std::vector<float>> in(static_cast<std::size_t>(count), std::vector<float>(300));
        std::vector<const float*> x;
        std::vector<float> gl, gr;
        for (auto& v : in) {
            for (float& s : v) s = u(rng);
            x.push_back(v.data());
            gl.push_back(u(rng));
            gr.push_back(u(rng));
        }
        for (uint32_t n : {0u, 1u, 7u, 8u, 31u, 32u, 64u, 100u, 257u, 300u}) {
            INFO("count " << count << ", n " << n);
            std::vector<float> l(300), r(300), m(300);
            for (uint32_t i = 0; i < 300; ++i) l[i] = r[i] = m[i] = 0.25f * u(rng);
            std::vector<float> rl = l, rr = r, rm = m;
            for (uint32_t i = 0; i < n; ++i)
                for (int k = 0; k < count; ++k) {
                    rl[i] += gl[static_cast<std::size_t>(k)] * x[static_cast<std::size_t>(k)][i];
                    rr[i] += gr[static_cast<std::size_t>(k)] * x[static_cast<std::size_t>(k)][i];
                    rm[i] += gl[static_cast<std::size_t>(k)] * x[static_cast<std::size_t>(k)][i];
                }
            mix_sum_stereo(l.data(), r.data(), x.data(), gl.data(), gr.data(), count, n);
            mix_sum(m.data(), x.data(), gl.data(), count, n);
            // The same per-sample order (dst, then the inputs in order) as the reference: exact.
            CHECK(l == rl);
            CHECK(r == rr);
            CHECK(m == rm);
        }
    }
}

TEST_CASE("abs_max_bits: the peak, and NaN/Inf detection", "[dsp][mix]") {
    constexpr float nan = std::numeric_limits<float>::quiet_NaN();
    constexpr float inf = std::numeric_limits<float>::infinity();
    std::vector<float> x(100, 0.0f);
    CHECK(abs_max_bits(x.data(), 100) == 0u);
    CHECK(abs_max_bits(x.data(), 0) == 0u);
    x[3] = -0.0f;
    CHECK(bits_to_float(abs_max_bits(x.data(), 100)) == 0.0f);
    x[10] = 0.5f;
    x[77] = -0.75f;
    x[99] = std::numeric_limits<float>::denorm_min();
    uint32_t b = abs_max_bits(x.data(), 100);
    CHECK_FALSE(bits_non_finite(b));
    CHECK(bits_to_float(b) == 0.75f);
    CHECK(bits_to_float(abs_max_bits(x.data(), 77)) == 0.5f); // length respected
    x[50] = -std::numeric_limits<float>::max();
    CHECK(bits_to_float(abs_max_bits(x.data(), 100)) == std::numeric_limits<float>::max());
    for (float bad : {nan, -nan, inf, -inf}) {
        std::vector<float> y = x;
        y[41] = bad;
        CHECK(bits_non_finite(abs_max_bits(y.data(), 100)));
        CHECK_FALSE(bits_non_finite(abs_max_bits(y.data(), 41))); // before it
    }
}
