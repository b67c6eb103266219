// Private to the dsp module: one biquad section run on two channels at once (a two-lane GCC/Clang
// vector), for the stereo weighting filters of LevelMeter::process_pair and LoudnessCap. The
// arithmetic is AcWeighting::tdf2's, in the same operation order, so a pair gives bit-identical
// results to two mono runs.
#pragma once

#include "earshot/dsp/weighting.hpp"

#include <array>

namespace earshot::dsp::detail {

typedef double v2d __attribute__((vector_size(16))); // two lanes: left / right (or meter a / b)

struct BiquadPair {
    v2d b0, b1, b2, a1, a2; // coefficients (equal in both lanes)
    v2d z0, z1;             // state, lane 0 / lane 1
    void load(const BiquadCoeffs& c, const std::array<double, 2>& z_a, const std::array<double, 2>& z_b) {
        b0 = v2d{c.b0, c.b0};
        b1 = v2d{c.b1, c.b1};
        b2 = v2d{c.b2, c.b2};
        a1 = v2d{c.a1, c.a1};
        a2 = v2d{c.a2, c.a2};
        z0 = v2d{z_a[0], z_b[0]};
        z1 = v2d{z_a[1], z_b[1]};
    }
    void store(std::array<double, 2>& z_a, std::array<double, 2>& z_b) const {
        z_a = {z0[0], z1[0]};
        z_b = {z0[1], z1[1]};
    }
    v2d run(v2d x) {
        const v2d y = b0 * x + z0;
        z0 = (b1 * x + z1) - a1 * y; // the same operation order as AcWeighting::tdf2
        z1 = b2 * x - a2 * y;
        return y;
    }
};

} // namespace earshot::dsp::detail
