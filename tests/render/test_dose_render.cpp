// Dosimetry end to end through render (SPEC §5 dose object): the calibrated sine's figures, the
// stage leak of a measurement mic (hearing-dose.md §7.8), and reference: eardrum vs field.
#include "earshot/dsp/diffuse_field.hpp"
#include "earshot/render/render.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

using namespace earshot;

namespace {
constexpr double pi = 3.14159265358979323846;

std::vector<float> sine(double fs, double seconds, double peak) {
    std::vector<float> x(static_cast<std::size_t>(fs * seconds));
    const double nf = 0.01 * fs; // 10 ms raised-cosine fade-in (no switch-on transient)
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double g = double(i) < nf ? 0.5 - 0.5 * std::cos(pi * double(i) / nf) : 1.0;
        x[i] = float(g * peak * std::sin(2 * pi * 1000 * double(i) / fs));
    }
    return x;
}

config::Musician musician(const std::string& id, const std::string& input, double gain_db = 0) {
    config::Musician m;
    m.id = id;
    m.name = id;
    m.output = config::OutputKind::stereo;
    m.calibration.sine_dbfs = -20;
    m.calibration.db_spl = 94;
    m.protection.peak_ceiling_db_spl = 125;
    config::Send s;
    s.input = input;
    s.gain_db = gain_db + 3.0103; // centre pan: each ear at the input's level
    m.mix.sends = {s};
    return m;
}
} // namespace

TEST_CASE("render dose: the SPEC §5 sine (60 s, 94 dBA)", "[render][dose]") {
    const double fs = 48000;
    config::Config cfg;
    config::Input in;
    in.id = "sine";
    cfg.inputs = {in};
    cfg.musicians = {musician("drums", "sine")};
    const auto r = render::render_buffers(cfg, fs, {sine(fs, 60, 0.1)});
    const auto& d = r.report.musicians[0].dose;
    CHECK(d.niosh_pct == Approx(1.667).epsilon(0.01));
    CHECK(d.osha_pct == Approx(0.363).epsilon(0.01));
    CHECK(d.osha_action_pct == Approx(0.363).epsilon(0.01));
    CHECK(d.eu_lex8h_dba == Approx(67.19).margin(0.05));
    CHECK(d.who_weekly_pct == Approx(1.047).epsilon(0.01));
    CHECK(d.lcpeak_max_dbc == Approx(97.01).margin(0.1));
    CHECK(d.niosh_seconds_left == Approx(3600 - 60).margin(5)); // 94 dBA: 1 h allowed, 1 min used
    CHECK_FALSE(d.has_ambient);
    cfg.dosimetry.who_mode = 2;
    const auto r2 = render::render_buffers(cfg, fs, {sine(fs, 60, 0.1)});
    CHECK(r2.report.musicians[0].dose.who_weekly_pct == Approx(1.047 * 1.6 / 0.505964).epsilon(0.01));
    CHECK(render::report_json(r2.report).find("\"who_mode\": 2") != std::string::npos);
}

TEST_CASE("render dose: stage leak through the earpieces (§7.8)", "[render][dose][leak]") {
    const double fs = 48000;
    config::Config cfg;
    config::Input mix_in, mic;
    mix_in.id = "mix";
    mic.id = "stage_mic";
    mic.measurement = config::Measurement{-20, 94};
    cfg.inputs = {mix_in, mic};
    auto drummer = musician("drums", "mix");
    drummer.ambient = config::Ambient{"stage_mic", 25};
    auto quiet = musician("keys", "mix"); // no ambient: the mix alone
    cfg.musicians = {drummer, quiet};
    // Mix at 95 dBA at the ear (peak -19 dBFS); stage at 110 dBA at the mic (peak -4 dBFS).
    const auto x = sine(fs, 20, std::pow(10.0, -19.0 / 20));
    const auto stage = sine(fs, 20, std::pow(10.0, -4.0 / 20));
    const auto r = render::render_buffers(cfg, fs, {x, stage});
    const auto& d = r.report.musicians[0].dose;
    REQUIRE(d.has_ambient);
    CHECK(d.stage_laeq_dba == Approx(110.0).margin(0.05));
    CHECK(d.leak_laeq_dba == Approx(85.0).margin(0.05));
    CHECK(d.laeq_dba == Approx(95.41).margin(0.05)); // a drummer behind a 110 dBA kit does not look safe
    CHECK(r.report.musicians[0].laeq_dba == Approx(95.0).margin(0.05)); // the mix alone is still reported
    CHECK(r.report.musicians[1].dose.laeq_dba == Approx(95.0).margin(0.05));
    CHECK(d.niosh_pct > r.report.musicians[1].dose.niosh_pct * 1.09);
    CHECK(render::report_json(r.report).find("\"leak_laeq_dba\"") != std::string::npos);
}

TEST_CASE("render dose: reference eardrum reads ~10 dB below field for a pink field at the eardrum",
          "[render][dose][eardrum]") {
    const double fs = 48000;
    const std::size_t n = static_cast<std::size_t>(fs * 10);
    std::mt19937 rng(5);
    std::normal_distribution<double> g(0, 1);
    std::vector<double> rows(16, 0.0);
    std::vector<float> at_ear(n);
    dsp::DiffuseFieldCorrection df;
    df.prepare(fs);
    std::array<std::array<double, 2>, dsp::DiffuseFieldCorrection::sections> z{};
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < 16; ++k)
            if ((i & ((std::size_t(1) << k) - 1)) == 0) rows[k] = g(rng);
        double x = g(rng);
        for (double r : rows) x += r;
        x *= 0.002;
        // Pink diffuse field -> eardrum: the correction's exact inverse (minimum-phase sections).
        for (int k = 0; k < dsp::DiffuseFieldCorrection::sections; ++k) {
            const dsp::BiquadCoeffs& c = df.section(k);
            auto& st = z[static_cast<std::size_t>(k)];
            const double y = x / c.b0 + st[0];
            st[0] = (c.a1 * x - c.b1 * y) / c.b0 + st[1];
            st[1] = (c.a2 * x - c.b2 * y) / c.b0;
            x = y;
        }
        at_ear[i] = float(x);
    }
    config::Config cfg;
    config::Input in;
    in.id = "iem";
    cfg.inputs = {in};
    auto field = musician("field", "iem");
    auto ear = musician("eardrum", "iem");
    ear.calibration.reference = config::Reference::eardrum;
    cfg.musicians = {field, ear};
    const auto r = render::render_buffers(cfg, fs, {at_ear});
    const double diff = r.report.musicians[0].dose.laeq_dba - r.report.musicians[1].dose.laeq_dba;
    INFO("field " << r.report.musicians[0].dose.laeq_dba << " eardrum "
                  << r.report.musicians[1].dose.laeq_dba);
    CHECK(diff == Approx(10.05).margin(0.5)); // hearing-dose.md §7.8: +10.2 dB (+-0.3, band edges)
    CHECK(r.report.musicians[1].laeq_dba == Approx(r.report.musicians[1].dose.laeq_dba).margin(0.05));
}
