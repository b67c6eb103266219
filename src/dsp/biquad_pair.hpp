// Private to the dsp module: one biquad section run on L channels at once (an L-lane GCC/Clang
// vector of doubles), for the weighting filters of LevelMeter (two ears of a stereo mix, or four
// ears of two mixes) and LoudnessCap. The arithmetic is AcWeighting::tdf2's, in the same operation
// order and without FMA contraction, so every lane gives bit-identical results to a mono run.
#pragma once

#include "earshot/dsp/weighting.hpp"

#include <array>

namespace earshot::dsp::detail {

template <int L>
struct VecD {
    typedef double type __attribute__((vector_size(L * sizeof(double))));
};

typedef VecD<2>::type v2d; // two lanes: left / right (or meter a / b)

template <int L>
struct BiquadLanes {
    using V = typename VecD<L>::type;
    V b0, b1, b2, a1, a2; // coefficients (equal in every lane)
    V z0, z1;             // state, one lane per channel

    /// Loads the coefficients and the states z[0..L) (one per lane).
    [[gnu::always_inline]] void load(const BiquadCoeffs& c, std::array<double, 2>* const* z) {
        for (int k = 0; k < L; ++k) {
            b0[k] = c.b0;
            b1[k] = c.b1;
            b2[k] = c.b2;
            a1[k] = c.a1;
            a2[k] = c.a2;
            z0[k] = (*z[k])[0];
            z1[k] = (*z[k])[1];
        }
    }
    [[gnu::always_inline]] void store(std::array<double, 2>* const* z) const {
        for (int k = 0; k < L; ++k) *z[k] = {z0[k], z1[k]};
    }
    /// x -> the section's output, in place (by reference: wide vectors are never passed by value
    /// between functions, whose ABI would depend on the target).
    [[gnu::always_inline]] void step(V& x) {
        const V y = b0 * x + z0;
        z0 = (b1 * x + z1) - a1 * y; // the same operation order as AcWeighting::tdf2
        z1 = b2 * x - a2 * y;
        x = y;
    }

    // Two-lane convenience (left / right).
    void load(const BiquadCoeffs& c, std::array<double, 2>& z_a, std::array<double, 2>& z_b) {
        std::array<double, 2>* z[2] = {&z_a, &z_b};
        load(c, z);
    }
    void store(std::array<double, 2>& z_a, std::array<double, 2>& z_b) const {
        std::array<double, 2>* z[2] = {&z_a, &z_b};
        store(z);
    }
};

using BiquadPair = BiquadLanes<2>;

} // namespace earshot::dsp::detail
