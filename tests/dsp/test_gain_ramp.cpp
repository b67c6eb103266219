// GainRamp: no jumps (SPEC §3.2) and exact arrival.
#include "earshot/dsp/gain_ramp.hpp"
#include "earshot/dsp/units.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using earshot::dsp::GainRamp;

TEST_CASE("gain ramp: full-scale step has no sample jump above |dg|/ramp", "[dsp][ramp]") {
    GainRamp g;
    g.set_ramp_samples(960);
    g.reset(0.0f);
    g.set_target(1.0f);
    std::vector<float> x(3000, 1.0f); // full-scale DC: the worst case for a gain step
    g.apply(x.data(), 3000);
    float max_step = 0;
    for (std::size_t i = 1; i < x.size(); ++i) max_step = std::max(max_step, std::fabs(x[i] - x[i - 1]));
    REQUIRE(max_step <= 1.0f / 960.0f * 1.0001f);
    REQUIRE(x[0] > 0.0f);
    REQUIRE(x[0] <= 1.0f / 960.0f * 1.0001f);
    REQUIRE(x[959] == 1.0f); // arrives exactly at the end of the ramp
    REQUIRE(!g.ramping());
}

TEST_CASE("gain ramp: retargeting mid-ramp stays continuous", "[dsp][ramp]") {
    GainRamp g;
    g.set_ramp_samples(100);
    g.reset(1.0f);
    g.set_target(0.0f);
    std::vector<float> gains(300);
    g.fill(gains.data(), 50);
    g.set_target(0.8f);
    g.fill(gains.data() + 50, 250);
    for (std::size_t i = 1; i < gains.size(); ++i)
        REQUIRE(std::fabs(gains[i] - gains[i - 1]) <= 0.01f * 1.001f);
    REQUIRE(gains[149] == 0.8f);
}

TEST_CASE("gain ramp: mute ramps to exactly zero and goes idle", "[dsp][ramp]") {
    GainRamp g;
    g.set_ramp_samples(64);
    g.reset(0.5f);
    g.set_target(0.0f);
    std::vector<float> dst(128, 0.0f), src(128, 1.0f);
    g.mix_into(dst.data(), src.data(), 128);
    REQUIRE(dst[63] == 0.0f);
    REQUIRE(dst[127] == 0.0f);
    REQUIRE(g.silent());
    REQUIRE(dst[0] > 0.49f);
}

TEST_CASE("units: dB conversions and sanitising", "[dsp][units]") {
    using namespace earshot::dsp;
    REQUIRE(db_to_gain(-6.0206) == Approx(0.5).epsilon(1e-5));
    REQUIRE(db_to_gain(-INFINITY) == 0.0);
    REQUIRE(db_to_gain(-200.0) == 0.0);
    REQUIRE(gain_to_db(0.5) == Approx(-6.0206).epsilon(1e-4));
    REQUIRE(std::isinf(gain_to_db(0.0)));
    REQUIRE(sanitize(NAN) == 0.0f);
    REQUIRE(sanitize(INFINITY) == 0.0f);
    REQUIRE(sanitize(-INFINITY) == 0.0f);
    REQUIRE(sanitize(1e-40f) == 0.0f);
    REQUIRE(sanitize(-0.25f) == -0.25f);
    REQUIRE(clamp_abs(NAN, 1.0f) == 0.0f);
    REQUIRE(clamp_abs(3.0f, 1.0f) == 1.0f);
}
