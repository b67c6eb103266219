// The eardrum -> diffuse-field correction (hearing-dose.md §4.3, §7.8).
#include "earshot/dsp/diffuse_field.hpp"
#include "earshot/dsp/level_meter.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

using namespace earshot::dsp;

TEST_CASE("diffuse-field correction follows the table", "[dsp][df]") {
    for (int i = 0; i < DiffuseFieldCorrection::table_size; ++i) {
        const double f = DiffuseFieldCorrection::table_hz[i];
        INFO("f " << f);
        CHECK(DiffuseFieldCorrection::analog_db(f) ==
              Approx(-DiffuseFieldCorrection::table_db[i]).margin(0.11));
    }
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        DiffuseFieldCorrection df;
        df.prepare(fs);
        for (int i = 0; i < DiffuseFieldCorrection::table_size; ++i) {
            const double f = DiffuseFieldCorrection::table_hz[i];
            INFO("fs " << fs << " f " << f);
            CHECK(df.response_db(f) ==
                  Approx(-DiffuseFieldCorrection::table_db[i]).margin(f < 10000 ? 0.5 : 1.0));
        }
        CHECK(std::fabs(df.response_db(50)) < 0.05); // nothing below 100 Hz
    }
}

TEST_CASE("pink noise: field-equivalent vs eardrum levels (§7.8)", "[dsp][df]") {
    const double fs = 48000;
    const std::size_t n = static_cast<std::size_t>(fs * 10);
    // Pink noise: Voss-McCartney, 16 held random rows updated at octave-spaced rates, plus white.
    std::mt19937 rng(11);
    std::normal_distribution<double> g(0, 1);
    std::vector<double> rows(16, 0.0);
    std::vector<float> pink(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < 16; ++k)
            if ((i & ((std::size_t(1) << k) - 1)) == 0) rows[k] = g(rng);
        double s = g(rng);
        for (double r : rows) s += r;
        pink[i] = float(0.005 * s);
    }
    // What a pink diffuse field gives at the eardrum: the correction's exact inverse (each peaking
    // section is minimum phase, so numerator and denominator can be exchanged).
    DiffuseFieldCorrection df;
    df.prepare(fs);
    std::vector<float> at_ear(n);
    std::array<std::array<double, 2>, DiffuseFieldCorrection::sections> z{};
    for (std::size_t i = 0; i < n; ++i) {
        double x = pink[i];
        for (int k = 0; k < DiffuseFieldCorrection::sections; ++k) {
            const BiquadCoeffs& c = df.section(k);
            const double b0 = 1.0 / c.b0, b1 = c.a1 / c.b0, b2 = c.a2 / c.b0, a1 = c.b1 / c.b0,
                         a2 = c.b2 / c.b0;
            auto& st = z[static_cast<std::size_t>(k)];
            const double y = b0 * x + st[0];
            st[0] = b1 * x - a1 * y + st[1];
            st[1] = b2 * x - a2 * y;
            x = y;
        }
        at_ear[i] = float(x);
    }
    auto la = [&](const std::vector<float>& x, bool eardrum) {
        LevelMeter m;
        m.prepare(fs, eardrum);
        m.process(x.data(), static_cast<uint32_t>(fs)); // settle 1 s
        (void)m.take();
        m.process(x.data() + static_cast<std::size_t>(fs),
                  static_cast<uint32_t>(n - static_cast<std::size_t>(fs)));
        const auto iv = m.take();
        return 10 * std::log10(iv.sum_sq_a / double(iv.samples));
    };
    // The same eardrum recording read as `reference: field` and as `reference: eardrum`:
    const double as_field = la(at_ear, false), as_eardrum = la(at_ear, true);
    INFO("eardrum-shaped pink: field " << as_field << " eardrum " << as_eardrum);
    CHECK(as_field - as_eardrum == Approx(10.05).margin(0.5)); // hearing-dose §7.8: +10.2 (+-0.3)
    CHECK(as_eardrum == Approx(la(pink, false)).margin(0.05)); // back to the field level
    // Plain pink noise *at the eardrum* is a different spectrum: ~6.0 dB (numpy, from the table).
    CHECK(la(pink, false) - la(pink, true) == Approx(5.95).margin(0.5));
}
