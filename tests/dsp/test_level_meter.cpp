// LevelMeter: time-weighting constants and behaviour (hearing-dose.md §3.4, §7.7), Leq, C peak,
// take() read-and-reset, numerical hygiene and the paired (stereo) path.
#include "earshot/dsp/level_meter.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using earshot::dsp::LevelMeter;
using earshot::dsp::Weighting;
using earshot::dsp::weighting_db;

namespace {
constexpr double pi = 3.14159265358979323846;

std::vector<float> tone(double fs, double f, double amp, double seconds) {
    std::vector<float> x(static_cast<std::size_t>(std::lround(fs * seconds)));
    for (std::size_t i = 0; i < x.size(); ++i)
        x[i] = static_cast<float>(amp * std::sin(2 * pi * f * static_cast<double>(i) / fs));
    return x;
}
std::vector<float> silence(double fs, double seconds) {
    return std::vector<float>(static_cast<std::size_t>(std::lround(fs * seconds)), 0.0f);
}
void feed(LevelMeter& m, const std::vector<float>& x) {
    m.process(x.data(), static_cast<uint32_t>(x.size()));
}
double db(double ms) {
    return 10 * std::log10(ms);
}
double leq_ms(const LevelMeter::Interval& iv) {
    return iv.sum_sq_a / static_cast<double>(iv.samples);
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
    CHECK_THROWS_AS(m.prepare(1000), std::invalid_argument);
}

TEST_CASE("meter: Leq, F/S steady state and C peak of a 1 kHz sine", "[dsp][meter]") {
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        INFO("fs = " << fs);
        LevelMeter m;
        m.prepare(fs);
        feed(m, tone(fs, 1000, 0.1, 6)); // S needs about 5 s (> 20 tau for 0.01 dB)... of 6
        (void)m.take();
        const auto x = tone(fs, 1000, 0.1, 1);
        feed(m, x);
        const auto iv = m.take();
        CHECK(iv.samples == x.size());
        // A sine of peak A has mean square A^2/2; A and C are 0 dB at 1 kHz.
        CHECK(db(leq_ms(iv)) == Approx(db(0.005)).margin(0.01));
        CHECK(db(iv.laf_end_ms) == Approx(db(0.005)).margin(0.05));
        CHECK(db(m.las_ms()) == Approx(db(0.005)).margin(0.05));
        // F and S steady-state readings agree within 0.3 dB (IEC 61672-1).
        CHECK(std::fabs(db(iv.laf_end_ms) - db(m.las_ms())) <= 0.3);
        CHECK(std::fabs(db(iv.laf_max_ms) - db(iv.las_max_ms)) <= 0.3);
        // C peak of the sine: its amplitude (sample peak, within 0.05 dB).
        CHECK(20 * std::log10(iv.c_peak) == Approx(20 * std::log10(0.1)).margin(0.05));
        CHECK(iv.laf_end_ms == m.laf_ms());
    }
}

TEST_CASE("meter: A-weighted Leq of other frequencies follows the weighting", "[dsp][meter]") {
    const double fs = 48000;
    for (double f : {100.0, 4000.0, 10000.0}) {
        INFO("f = " << f);
        LevelMeter m;
        m.prepare(fs);
        feed(m, tone(fs, f, 0.5, 1));
        (void)m.take();
        feed(m, tone(fs, f, 0.5, 1));
        const auto iv = m.take();
        CHECK(db(leq_ms(iv) / 0.125) == Approx(weighting_db(Weighting::A, f)).margin(f > 5000 ? 0.2 : 0.05));
    }
}

TEST_CASE("meter: decay rates after a tone stops (§3.4)", "[dsp][meter]") {
    const double fs = 48000;
    LevelMeter m;
    m.prepare(fs);
    feed(m, tone(fs, 1000, 0.5, 6));
    feed(m, silence(fs, 0.01)); // let the weighting filters' own tail pass
    const double f0 = m.laf_ms(), s0 = m.las_ms();
    feed(m, silence(fs, 0.5));
    const double f_rate = (db(f0) - db(m.laf_ms())) / 0.5, s_rate = (db(s0) - db(m.las_ms())) / 0.5;
    CHECK(f_rate == Approx(34.7).margin(0.5));
    CHECK(f_rate >= 25.0);
    CHECK(s_rate == Approx(4.34).margin(0.1));
    CHECK(s_rate >= 3.4);
    CHECK(s_rate <= 5.3);
}

TEST_CASE("meter: 4 kHz tone bursts (§3.4 table, §7.7)", "[dsp][meter]") {
    const double fs = 48000;
    // Reference LA: the steady 4 kHz tone's A-weighted Leq.
    LevelMeter steady;
    steady.prepare(fs);
    const auto x = tone(fs, 4000, 0.3, 3);
    feed(steady, x);
    (void)steady.take();
    feed(steady, tone(fs, 4000, 0.3, 1));
    const double la = leq_ms(steady.take());

    const struct {
        double tb, f, s, e, tol;
    } rows[] = {
        {0.2, -1.0, -7.4, -7.0, 0.3},
        {0.002, -18.0, -27.0, -27.0, 0.5},
        {0.00025, -27.0, -36.0, -36.0, 0.5},
    };
    for (const auto& r : rows) {
        INFO("Tb = " << r.tb);
        LevelMeter m;
        m.prepare(fs);
        std::vector<float> b(static_cast<std::size_t>(fs * 2), 0.0f);
        const auto nb = static_cast<std::size_t>(std::lround(r.tb * fs));
        for (std::size_t i = 0; i < nb; ++i) b[static_cast<std::size_t>(fs / 2) + i] = x[i];
        feed(m, b);
        const auto iv = m.take();
        CHECK(db(iv.laf_max_ms) - db(la) == Approx(r.f).margin(r.tol));
        CHECK(db(iv.las_max_ms) - db(la) == Approx(r.s).margin(r.tol));
        // LAE - LA = 10 log10(Tb / 1 s): the exposure sum over the burst.
        CHECK(db(iv.sum_sq_a / fs) - db(la) == Approx(r.e).margin(r.tol));
    }
}

TEST_CASE("meter: take() reads and resets the interval; F and S carry over", "[dsp][meter]") {
    const double fs = 48000;
    LevelMeter m;
    m.prepare(fs);
    feed(m, tone(fs, 1000, 0.5, 2));
    feed(m, silence(fs, 0.25));
    const double s_end = m.las_ms();
    const auto a = m.take();
    CHECK(a.samples == 108000);
    CHECK(db(a.laf_max_ms) == Approx(db(0.125)).margin(0.1));
    CHECK(db(a.laf_max_ms) - db(a.laf_end_ms) == Approx(34.7 * 0.25).margin(0.5)); // decaying

    // An empty interval: zero sums and maxima, but the running F value.
    const auto e = m.take();
    CHECK(e.samples == 0);
    CHECK(e.sum_sq_a == 0.0);
    CHECK(e.laf_max_ms == 0.0);
    CHECK(e.c_peak == 0.0);
    CHECK(e.laf_end_ms == a.laf_end_ms);

    feed(m, silence(fs, 0.25));
    const auto b = m.take();
    CHECK(b.samples == 12000);
    // Sums and peaks restarted (silence: the filters' tail 0.25 s after the tone, the offset) ...
    INFO("b.sum_sq_a = " << b.sum_sq_a << ", b.c_peak = " << b.c_peak);
    CHECK(b.sum_sq_a < a.sum_sq_a * 1e-12);
    CHECK(b.c_peak < a.c_peak * 1e-6);
    // ... maxima restarted: the max is where F was when the interval began, not the tone's level ...
    CHECK(b.laf_max_ms < a.laf_max_ms / 5);
    CHECK(b.laf_max_ms == Approx(a.laf_end_ms).epsilon(1e-3));
    CHECK(b.las_max_ms == Approx(s_end).epsilon(1e-3));
    // ... and the running F kept decaying from there (it was not restarted at zero).
    CHECK(db(b.laf_max_ms) - db(b.laf_end_ms) == Approx(34.7 * 0.25).margin(0.5));
}

TEST_CASE("meter: non-finite input is silence; huge and denormal input keep the state finite",
          "[dsp][meter]") {
    const double fs = 48000;
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    // NaN/Inf samples read exactly like zeros in their place.
    auto x = tone(fs, 1000, 0.1, 1), z = x;
    for (std::size_t i = 100; i < x.size(); i += 997) {
        x[i] = (i / 997) % 2 ? nan : -inf;
        z[i] = 0.0f;
    }
    LevelMeter mx, mz;
    mx.prepare(fs);
    mz.prepare(fs);
    feed(mx, x);
    feed(mz, z);
    const auto ix = mx.take(), iz = mz.take();
    CHECK(ix.sum_sq_a == iz.sum_sq_a);
    CHECK(ix.laf_max_ms == iz.laf_max_ms);
    CHECK(ix.las_max_ms == iz.las_max_ms);
    CHECK(ix.c_peak == iz.c_peak);

    // Float max, denormals and non-finite mixed: everything stays finite, then the meter recovers.
    LevelMeter m;
    m.prepare(fs);
    std::vector<float> bad(4800);
    for (std::size_t i = 0; i < bad.size(); ++i)
        bad[i] = i % 4 == 0   ? nan
                 : i % 4 == 1 ? inf
                 : i % 4 == 2 ? std::numeric_limits<float>::max()
                              : std::numeric_limits<float>::denorm_min();
    feed(m, bad);
    auto iv = m.take();
    CHECK(std::isfinite(iv.sum_sq_a));
    CHECK(std::isfinite(iv.laf_max_ms));
    CHECK(std::isfinite(iv.las_max_ms));
    CHECK(std::isfinite(iv.c_peak));
    CHECK(iv.c_peak > 1e37); // the float-max samples were metered, not dropped
    CHECK(m.weighting().finite());
    feed(m, tone(fs, 1000, 0.1, 2));
    (void)m.take();
    feed(m, tone(fs, 1000, 0.1, 1));
    iv = m.take();
    CHECK(db(leq_ms(iv)) == Approx(db(0.005)).margin(0.01)); // recovered
}

TEST_CASE("meter: long silence keeps F and S out of denormals", "[dsp][meter]") {
    const double fs = 48000;
    LevelMeter m;
    m.prepare(fs);
    feed(m, tone(fs, 1000, 0.5, 0.5));
    const auto quiet = silence(fs, 1);
    for (int i = 0; i < 120; ++i) feed(m, quiet); // 2 minutes: F alone would fall ~4000 dB
    CHECK(std::fpclassify(m.laf_ms()) == FP_NORMAL);
    CHECK(std::fpclassify(m.las_ms()) == FP_NORMAL);
    CHECK(m.laf_ms() < 1e-40);
    CHECK(m.las_ms() < 1e-40);
}

TEST_CASE("meter: process_pair equals two separate meters", "[dsp][meter]") {
    for (bool eardrum : {false, true}) {
        INFO("eardrum = " << eardrum);
        LevelMeter a, b, pa, pb;
        for (auto* m : {&a, &b, &pa, &pb}) m->prepare(44100, eardrum);
        auto x = tone(44100, 3000, 0.4, 1), y = tone(44100, 150, 0.7, 1);
        y[100] = std::numeric_limits<float>::quiet_NaN();
        x[2000] = -std::numeric_limits<float>::infinity();
        for (uint32_t off = 0; off < 44100; off += 441) {
            a.process(x.data() + off, 441);
            b.process(y.data() + off, 441);
            LevelMeter::process_pair(pa, pb, x.data() + off, y.data() + off, 441);
        }
        CHECK(pa.laf_ms() == Approx(a.laf_ms()).epsilon(1e-12));
        CHECK(pb.las_ms() == Approx(b.las_ms()).epsilon(1e-12));
        const auto ia = a.take(), ib = b.take(), ja = pa.take(), jb = pb.take();
        CHECK(ja.sum_sq_a == Approx(ia.sum_sq_a).epsilon(1e-12));
        CHECK(jb.sum_sq_a == Approx(ib.sum_sq_a).epsilon(1e-12));
        CHECK(ja.laf_max_ms == Approx(ia.laf_max_ms).epsilon(1e-12));
        CHECK(jb.laf_max_ms == Approx(ib.laf_max_ms).epsilon(1e-12));
        CHECK(ja.las_max_ms == Approx(ia.las_max_ms).epsilon(1e-12));
        CHECK(jb.las_max_ms == Approx(ib.las_max_ms).epsilon(1e-12));
        CHECK(ja.c_peak == Approx(ia.c_peak).epsilon(1e-12));
        CHECK(jb.c_peak == Approx(ib.c_peak).epsilon(1e-12));
        CHECK(ja.laf_end_ms == Approx(ia.laf_end_ms).epsilon(1e-12));
        CHECK(ja.samples == ia.samples);
        CHECK(jb.samples == ib.samples);
    }
}

TEST_CASE("meter: process_quad equals four separate meters, bit for bit", "[dsp][meter]") {
    INFO("quad kernel: " << LevelMeter::quad_kernel_name());
    for (bool eardrum : {false, true}) {
        INFO("eardrum (last meter) = " << eardrum);
        LevelMeter mono[4], quad[4], direct[4];
        for (int k = 0; k < 4; ++k) {
            const bool ed = eardrum && k == 3;
            mono[k].prepare(48000, ed);
            quad[k].prepare(48000, ed);
            direct[k].prepare(48000, ed);
        }
        std::vector<float> x[4] = {tone(48000, 3000, 0.4, 1), tone(48000, 150, 0.7, 1),
                                   tone(48000, 40, 0.9, 1), tone(48000, 11000, 0.2, 1)};
        x[1][100] = std::numeric_limits<float>::quiet_NaN();
        x[2][2000] = -std::numeric_limits<float>::infinity();
        x[3][5000] = std::numeric_limits<float>::denorm_min();
        const bool wide = LevelMeter::quad_kernel_name()[0] == 'a';
        for (uint32_t off = 0; off < 48000; off += 480) {
            LevelMeter* m[4] = {&quad[0], &quad[1], &quad[2], &quad[3]};
            const float* p[4] = {x[0].data() + off, x[1].data() + off, x[2].data() + off, x[3].data() + off};
            LevelMeter::process_quad(m, p, 480);
            for (int k = 0; k < 4; ++k) mono[k].process(x[k].data() + off, 480);
            if (wide && !eardrum) { // the AVX2 body itself, where this CPU has it
                LevelMeter* d[4] = {&direct[0], &direct[1], &direct[2], &direct[3]};
                LevelMeter::quad_avx2(d, p, 480);
            }
        }
        for (int k = 0; k < 4; ++k) {
            INFO("meter " << k);
            CHECK(quad[k].laf_ms() == mono[k].laf_ms());
            CHECK(quad[k].las_ms() == mono[k].las_ms());
            const auto a = mono[k].take(), b = quad[k].take();
            CHECK(b.sum_sq_a == a.sum_sq_a);
            CHECK(b.laf_max_ms == a.laf_max_ms);
            CHECK(b.las_max_ms == a.las_max_ms);
            CHECK(b.c_peak == a.c_peak);
            CHECK(b.samples == a.samples);
            if (wide && !eardrum) {
                const auto c = direct[k].take();
                CHECK(c.sum_sq_a == a.sum_sq_a);
                CHECK(c.c_peak == a.c_peak);
            }
        }
    }
}
