// LevelMeter: time-weighting constants and behaviour (hearing-dose.md §3.4, §7.7), Leq, C peak,
// read-and-reset, and numerical hygiene.
#include "earshot/dsp/level_meter.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

using earshot::dsp::LevelMeter;

namespace {
constexpr double pi = 3.14159265358979323846;
std::vector<float> tone(double fs, double f, double amp, double seconds) {
    std::vector<float> x(static_cast<std::size_t>(fs * seconds));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(amp * std::sin(2 * pi * f * double(i) / fs));
    return x;
}
double db(double ms) {
    return 10 * std::log10(ms);
}
} // namespace

TEST_CASE("meter: F and S coefficients (§7.7)", "[dsp][meter]") {
    LevelMeter m;
    m.prepare(48000);
    CHECK(m.alpha_fast() == Approx(1.666528e-4).epsilon(1e-6));
    CHECK(m.alpha_slow() == Approx(2.083312e-5).epsilon(1e-6));
    m.prepare(44100);
    CHECK(m.alpha_fast() == Approx(1.813894e-4).epsilon(1e-6));
    CHECK(m.alpha_slow() == Approx(2.267548e-5).epsilon(1e-6));
}

TEST_CASE("meter: Leq, F/S steady state and C peak of a 1 kHz sine", "[dsp][meter]") {
    LevelMeter m;
    m.prepare(48000);
    auto x = tone(48000, 1000, 0.1, 5);
    m.process(x.data(), 48000 * 4);
    (void)m.take(); // settle
    m.process(x.data() + 48000 * 4, 48000);
    const auto iv = m.take();
    CHECK(iv.samples == 48000);
    CHECK(db(iv.sum_sq_a / double(iv.samples)) == Approx(db(0.005)).margin(0.01));
    CHECK(db(iv.laf_max_ms) == Approx(db(0.005)).margin(0.1));
    CHECK(db(iv.las_max_ms) - db(iv.laf_max_ms) == Approx(0.0).margin(0.3));
    CHECK(20 * std::log10(iv.c_peak) == Approx(20 * std::log10(0.1)).margin(0.05));
}

TEST_CASE("meter: decay rates after a tone stops", "[dsp][meter]") {
    const double fs = 48000;
    LevelMeter m;
    m.prepare(fs);
    auto x = tone(fs, 1000, 0.5, 3);
    m.process(x.data(), static_cast<uint32_t>(x.size()));
    std::vector<float> zero(static_cast<std::size_t>(fs / 10), 0.0f);
    const double f0 = m.laf_ms(), s0 = m.las_ms();
    m.process(zero.data(), static_cast<uint32_t>(zero.size())); // 100 ms of silence
    const double f_rate = (db(f0) - db(m.laf_ms())) / 0.1, s_rate = (db(s0) - db(m.las_ms())) / 0.1;
    CHECK(f_rate == Approx(34.7).margin(1.5));
    CHECK(f_rate >= 25.0);
    CHECK(s_rate == Approx(4.34).margin(0.3));
    CHECK(s_rate >= 3.4);
    CHECK(s_rate <= 5.3);
}

TEST_CASE("meter: 4 kHz tone bursts (§3.4 table)", "[dsp][meter]") {
    const double fs = 48000;
    struct {
        double tb, f, s;
    } rows[] = {{0.2, -1.0, -7.4}, {0.002, -18.0, -27.0}, {0.0005, -24.0, -33.0}};
    for (auto r : rows) {
        LevelMeter steady, burst;
        steady.prepare(fs);
        burst.prepare(fs);
        auto x = tone(fs, 4000, 0.3, 3);
        steady.process(x.data(), static_cast<uint32_t>(x.size()));
        const double la = steady.take().laf_max_ms;
        std::vector<float> b(static_cast<std::size_t>(fs * 2), 0.0f);
        const std::size_t nb = static_cast<std::size_t>(std::lround(r.tb * fs));
        for (std::size_t i = 0; i < nb; ++i) b[static_cast<std::size_t>(fs / 2) + i] = x[i];
        burst.process(b.data(), static_cast<uint32_t>(b.size()));
        const auto iv = burst.take();
        INFO("Tb " << r.tb);
        CHECK(db(iv.laf_max_ms) - db(la) == Approx(r.f).margin(0.3));
        CHECK(db(iv.las_max_ms) - db(la) == Approx(r.s).margin(0.3));
    }
}

TEST_CASE("meter: take() reads and resets the interval", "[dsp][meter]") {
    LevelMeter m;
    m.prepare(48000);
    auto loud = tone(48000, 1000, 0.5, 1), quiet = tone(48000, 1000, 0.05, 1);
    m.process(loud.data(), 48000);
    const auto a = m.take();
    m.process(quiet.data(), 48000);
    const auto b = m.take();
    CHECK(b.samples == 48000);
    CHECK(b.c_peak < a.c_peak / 5);      // the peak restarted
    CHECK(b.sum_sq_a < a.sum_sq_a / 50); // the sum restarted
    CHECK(b.laf_max_ms > b.laf_end_ms);  // F still decaying from the loud second: it carried over
    CHECK(m.take().samples == 0);
}

TEST_CASE("meter: NaN, Inf, huge and denormal input keep the state finite", "[dsp][meter]") {
    LevelMeter m;
    m.prepare(48000);
    std::vector<float> bad(4800);
    for (std::size_t i = 0; i < bad.size(); ++i)
        bad[i] = i % 4 == 0   ? std::numeric_limits<float>::quiet_NaN()
                 : i % 4 == 1 ? std::numeric_limits<float>::infinity()
                 : i % 4 == 2 ? std::numeric_limits<float>::max()
                              : std::numeric_limits<float>::denorm_min();
    m.process(bad.data(), 4800);
    auto iv = m.take();
    CHECK(std::isfinite(iv.sum_sq_a));
    CHECK(std::isfinite(iv.c_peak));
    auto x = tone(48000, 1000, 0.1, 3);
    m.process(x.data(), 48000 * 2);
    (void)m.take();
    m.process(x.data() + 96000, 48000);
    iv = m.take();
    CHECK(db(iv.sum_sq_a / 48000) == Approx(db(0.005)).margin(0.01)); // recovered
    std::vector<float> silence(48000, 0.0f);
    m.process(silence.data(), 48000);
    CHECK(std::isfinite(m.laf_ms()));
}

TEST_CASE("meter: process_pair equals two separate meters", "[dsp][meter]") {
    LevelMeter a, b, pa, pb;
    for (auto* m : {&a, &b, &pa, &pb}) m->prepare(44100);
    auto x = tone(44100, 3000, 0.4, 1), y = tone(44100, 150, 0.7, 1);
    y[100] = std::numeric_limits<float>::quiet_NaN();
    for (uint32_t off = 0; off < 44100; off += 441) {
        a.process(x.data() + off, 441);
        b.process(y.data() + off, 441);
        LevelMeter::process_pair(pa, pb, x.data() + off, y.data() + off, 441);
    }
    const auto ia = a.take(), ib = b.take(), ja = pa.take(), jb = pb.take();
    CHECK(ja.sum_sq_a == Approx(ia.sum_sq_a).epsilon(1e-12));
    CHECK(jb.sum_sq_a == Approx(ib.sum_sq_a).epsilon(1e-12));
    CHECK(ja.laf_max_ms == Approx(ia.laf_max_ms).epsilon(1e-12));
    CHECK(jb.las_max_ms == Approx(ib.las_max_ms).epsilon(1e-12));
    CHECK(ja.c_peak == Approx(ia.c_peak).epsilon(1e-12));
    CHECK(jb.c_peak == Approx(ib.c_peak).epsilon(1e-12));
    CHECK(ja.samples == ia.samples);
}
