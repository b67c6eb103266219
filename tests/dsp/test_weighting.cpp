// A and C weighting: the analytic curves against hearing-dose.md §7.6, and the digital filters
// designed at run time against SPEC §4 (0.2 dB to 12.5 kHz, 0.5 dB at 16 kHz) at every rate.
#include "earshot/dsp/weighting.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <complex>
#include <cstdio>
#include <vector>

using namespace earshot::dsp;

namespace {
constexpr double pi = 3.14159265358979323846;

// IEC 61672-1:2013 Table 3 rows (hearing-dose.md §3.2): exact fm, class 1 limits (+upper, -lower;
// lower = -inf where the table has none).
struct Row {
    double fm, up, lo;
};
const Row table3[] = {
    {10.000, 3.0, -INFINITY}, {12.589, 2.5, -INFINITY}, {15.849, 2.0, -4.0}, {19.953, 2.0, -2.0},
    {25.119, 2.0, -1.5},      {31.623, 1.5, -1.5},      {39.811, 1.0, -1.0}, {50.119, 1.0, -1.0},
    {63.096, 1.0, -1.0},      {79.433, 1.0, -1.0},      {100.00, 1.0, -1.0}, {125.89, 1.0, -1.0},
    {158.49, 1.0, -1.0},      {199.53, 1.0, -1.0},      {251.19, 1.0, -1.0}, {316.23, 1.0, -1.0},
    {398.11, 1.0, -1.0},      {501.19, 1.0, -1.0},      {630.96, 1.0, -1.0}, {794.33, 1.0, -1.0},
    {1000.0, 0.7, -0.7},      {1258.9, 1.0, -1.0},      {1584.9, 1.0, -1.0}, {1995.3, 1.0, -1.0},
    {2511.9, 1.0, -1.0},      {3162.3, 1.0, -1.0},      {3981.1, 1.0, -1.0}, {5011.9, 1.5, -1.5},
    {6309.6, 1.5, -2.0},      {7943.3, 1.5, -2.5},      {10000, 2.0, -3.0},  {12589, 2.0, -5.0},
    {15849, 2.5, -16.0},      {19953, 3.0, -INFINITY},
};

// Plain bilinear (no prewarp) A-weighting at fs: the design the SPEC rules out, for the regression check.
double plain_bilinear_a_db(double f, double fs) {
    const double fa[] = {20.598997, 20.598997, 107.65265, 737.86223, 12194.217, 12194.217};
    auto h = [&](double ff) {
        const std::complex<double> z = std::polar(1.0, 2 * pi * ff / fs);
        const std::complex<double> s = 2.0 * fs * (z - 1.0) / (z + 1.0);
        std::complex<double> v = s * s * s * s;
        for (double p : fa) v /= (s + 2 * pi * p);
        return std::abs(v);
    };
    return 20 * std::log10(h(f) / h(1000.0));
}
} // namespace

TEST_CASE("analytic weightings match hearing-dose.md §7.6", "[dsp][weighting]") {
    const struct {
        double f, a, c;
    } v[] = {{10, -70.43, -14.33},    {31.623, -39.44, -3.01}, {100, -19.14, -0.30},   {1000, 0.0, 0.0},
             {1995.26, 1.20, -0.17},  {2511.89, 1.27, -0.30},  {3981.07, 0.97, -0.82}, {10000, -2.49, -4.41},
             {15848.9, -6.60, -8.53}, {19952.6, -9.32, -11.25}};
    for (auto& r : v) {
        INFO("f = " << r.f);
        CHECK(weighting_db(Weighting::A, r.f) == Approx(r.a).margin(0.01));
        CHECK(weighting_db(Weighting::C, r.f) == Approx(r.c).margin(0.01));
    }
    CHECK(weighting_db(Weighting::A, 12000) == Approx(-3.90).margin(0.01));
    CHECK(weighting_db(Weighting::A, 1000) == 0.0);
}

TEST_CASE("digital weightings meet SPEC §4 at every rate", "[dsp][weighting]") {
    for (double fs : {44100.0, 48000.0, 88200.0, 96000.0, 176400.0, 192000.0}) {
        AcWeighting w;
        w.prepare(fs);
        double worst = 0, worst16 = 0;
        for (Weighting k : {Weighting::A, Weighting::C}) {
            for (int i = 0; i <= 24 * 10; ++i) { // 1/24 octave from 10 Hz to 10.2 kHz, then to 12.5 kHz
                const double f = std::min(12500.0, 10.0 * std::pow(2.0, i / 24.0));
                const double e = w.response_db(k, f) - weighting_db(k, f);
                worst = std::max(worst, std::fabs(e));
            }
            worst16 = std::max(worst16, std::fabs(w.response_db(k, 16000) - weighting_db(k, 16000)));
            for (const Row& r : table3) {
                if (r.fm >= fs / 2) continue;
                const double e = w.response_db(k, r.fm) - weighting_db(k, r.fm);
                INFO("fs " << fs << " fm " << r.fm);
                CHECK(e <= r.up);
                CHECK(e >= r.lo);
            }
        }
        INFO("fs " << fs << ": worst error to 12.5 kHz " << worst << " dB, at 16 kHz " << worst16 << " dB");
        CHECK(worst <= 0.2);
        CHECK(worst16 <= 0.5);
        CHECK(w.response_db(Weighting::A, 1000) == Approx(0.0).margin(1e-9));
        CHECK(w.response_db(Weighting::C, 1000) == Approx(0.0).margin(1e-9));
        // Stable: every pole inside the unit circle.
        for (int i = 0; i < w.c_section_count(); ++i) CHECK(std::fabs(w.c_section(i).a2) < 1.0);
        for (int i = 0; i < w.a_section_count(); ++i) CHECK(std::fabs(w.a_section(i).a2) < 1.0);
    }
}

TEST_CASE("the design is not plain bilinear (regression, §7.6)", "[dsp][weighting]") {
    AcWeighting w;
    w.prepare(48000);
    CHECK(plain_bilinear_a_db(12500, 48000) - weighting_db(Weighting::A, 12500) ==
          Approx(-2.67).margin(0.02));
    CHECK(plain_bilinear_a_db(16000, 48000) - weighting_db(Weighting::A, 16000) ==
          Approx(-6.43).margin(0.02));
    CHECK(std::fabs(w.response_db(Weighting::A, 12500) - weighting_db(Weighting::A, 12500)) < 0.1);
    CHECK(std::fabs(w.response_db(Weighting::A, 16000) - weighting_db(Weighting::A, 16000)) < 0.2);
}

TEST_CASE("weighting error table for docs/dsp-weighting.md", "[dsp][weighting][.table]") {
    std::printf("| fs | weighting | 10 kHz | 12.5 kHz | 16 kHz | 20 kHz | worst to 12.5 kHz "
                "|\n|---|---|---|---|---|---|---|\n");
    for (double fs : {44100.0, 48000.0, 96000.0, 192000.0}) {
        AcWeighting w;
        w.prepare(fs);
        for (Weighting k : {Weighting::A, Weighting::C}) {
            double worst = 0;
            for (int i = 0; i <= 24 * 11; ++i) {
                const double f = std::min(12500.0, 10.0 * std::pow(2.0, i / 24.0));
                worst = std::max(worst, std::fabs(w.response_db(k, f) - weighting_db(k, f)));
            }
            auto e = [&](double f) { return w.response_db(k, f) - weighting_db(k, f); };
            std::printf("| %.1f kHz | %c | %+.3f | %+.3f | %+.3f | %+.3f | %.3f |\n", fs / 1000,
                        k == Weighting::A ? 'A' : 'C', e(10000), e(12500), e(16000), e(19953), worst);
        }
    }
    SUCCEED();
}

TEST_CASE("time domain: sines through the filters read the designed gains", "[dsp][weighting]") {
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        for (double f : {100.0, 1000.0, 4000.0, 10000.0}) {
            AcWeighting w;
            w.prepare(fs);
            const int n = static_cast<int>(fs);
            double sa = 0, sc = 0;
            for (int i = 0; i < 2 * n; ++i) {
                double a, c;
                w.process(0.5 * std::sin(2 * pi * f * i / fs), a, c);
                if (i >= n) {
                    sa += a * a;
                    sc += c * c;
                }
            }
            INFO("fs " << fs << " f " << f);
            CHECK(10 * std::log10(sa / n / 0.125) ==
                  Approx(weighting_db(Weighting::A, f)).margin(f > 5000 ? 0.2 : 0.02));
            CHECK(10 * std::log10(sc / n / 0.125) ==
                  Approx(weighting_db(Weighting::C, f)).margin(f > 5000 ? 0.2 : 0.02));
        }
    }
}

TEST_CASE("prepare rejects rates out of range", "[dsp][weighting]") {
    AcWeighting w;
    CHECK_THROWS_AS(w.prepare(4000), std::invalid_argument);
    CHECK_THROWS_AS(w.prepare(500000), std::invalid_argument);
}
