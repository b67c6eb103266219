// `earshot render` as a library: WAV I/O, calibration to the SPEC §5 figures at 44.1/48/96 kHz,
// alignment (latency compensation, per-musician look-ahead), the pan law at the ears, the limiter
// in the report, bad input, report.json, and the band generator.
#include "earshot/dsp/true_peak.hpp"
#include "earshot/dsp/units.hpp"
#include "earshot/render/band.hpp"
#include "earshot/render/render.hpp"
#include "earshot/render/wav_io.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using namespace earshot;
namespace fs = std::filesystem;

namespace {

constexpr double pi = 3.14159265358979323846;

// A unique temporary directory, removed with its contents at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("earshot-test-render-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return (path / name).string(); }
};

config::Musician musician(const std::string& id, bool stereo, double ceiling_db_spl = 115.0) {
    config::Musician m;
    m.id = id;
    m.name = id;
    m.output = stereo ? config::OutputKind::stereo : config::OutputKind::mono;
    m.calibration.sine_dbfs = -20;
    m.calibration.db_spl = 94;
    m.protection.peak_ceiling_db_spl = ceiling_db_spl;
    return m;
}

config::Send send(const std::string& input, double gain_db, double pan = 0) {
    config::Send s;
    s.input = input;
    s.gain_db = gain_db;
    s.pan = pan;
    return s;
}

config::Config make_config(std::initializer_list<const char*> inputs) {
    config::Config c;
    c.source = "<test>";
    for (const char* id : inputs) {
        config::Input in;
        in.id = id;
        c.inputs.push_back(in);
    }
    return c;
}

// A sine; with fade_ms > 0 it is switched on with a raised-cosine fade. A calibration tone switched on
// at full level has an onset transient through the C weighting's 20 Hz high-passes that reads about
// 0.3 dB above the steady LCpeak (a sound level meter shows it too); SPEC §5's figures are for the
// steady tone.
std::vector<float> sine(double fs, double seconds, double f, double peak, double fade_ms = 0.0) {
    std::vector<float> x(static_cast<std::size_t>(std::llround(fs * seconds)));
    const double nf = fade_ms * 1e-3 * fs;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double t = static_cast<double>(i);
        const double g = t < nf ? 0.5 - 0.5 * std::cos(pi * t / nf) : 1.0;
        x[i] = static_cast<float>(g * peak * std::sin(2.0 * pi * f * t / fs));
    }
    return x;
}

float max_abs(const std::vector<float>& v) {
    float m = 0.0f;
    for (float x : v) m = std::max(m, std::fabs(x));
    return m;
}

const double minus_inf = -std::numeric_limits<double>::infinity();

// Equality of long signals without printing them on failure.
bool same(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    return a == b;
}
bool same(const std::vector<float>& a, const std::vector<float>& b) {
    return a == b;
}

// The SPEC §5 figures for a 1 kHz sine at -20 dBFS peak with sine_dbfs -20 / db_spl 94.
void check_calibrated(const render::MusicianReport& m) {
    CHECK(m.laeq_dba == Approx(94.00).margin(0.05));
    CHECK(m.lcpeak_dbc == Approx(97.01).margin(0.05));
    CHECK(m.true_peak_db_spl == Approx(97.01).margin(0.05));
    CHECK(m.lafmax_dba == Approx(94.0).margin(0.1));
    CHECK(m.sample_peak_dbfs == Approx(-20.00).margin(0.01));
    CHECK(m.limiter_max_gain_reduction_db == 0.0);
    CHECK(m.limiter_active_s == 0.0);
    CHECK(m.clamped_samples == 0);
    for (const auto& e : m.ears) {
        CHECK(e.laeq_dba == Approx(94.00).margin(0.05));
        CHECK(e.lcpeak_dbc == Approx(97.01).margin(0.05));
    }
}

} // namespace

TEST_CASE("render: WAV round trip and clear errors", "[render][wav]") {
    TempDir d;
    // Values a float WAV must keep exactly: overs, tiny values, negative zero-crossings.
    std::vector<std::vector<float>> ch(2);
    for (int i = 0; i < 10000; ++i) {
        ch[0].push_back(static_cast<float>(std::sin(0.01 * i)) * 3.5f);
        ch[1].push_back(i % 7 == 0 ? 1e-30f : -0.25f * static_cast<float>(i % 5));
    }
    render::write_wav(d.file("rt.wav"), ch, 44100);
    double fs = 0;
    const auto back = render::read_audio(d.file("rt.wav"), &fs);
    REQUIRE(fs == 44100.0);
    REQUIRE(same(back, ch));

    render::AudioReader r(d.file("rt.wav"));
    CHECK(r.info().channels == 2);
    CHECK(r.info().frames == 10000);
    CHECK(r.info().format.find("WAV") != std::string::npos);
    CHECK(r.info().format.find("float") != std::string::npos);
    // Streaming reads of odd sizes give the same frames.
    std::vector<float> buf(2 * 333);
    std::size_t total = 0;
    while (const std::size_t n = r.read(buf.data(), 333)) {
        for (std::size_t i = 0; i < n; ++i) REQUIRE(buf[2 * i] == ch[0][total + i]);
        total += n;
    }
    CHECK(total == 10000);

    // Mono.
    render::write_wav(d.file("mono.wav"), {std::vector<float>(100, 0.5f)}, 96000);
    CHECK(render::read_audio(d.file("mono.wav")).size() == 1);

    // Errors name the file and the reason.
    try {
        render::AudioReader x(d.file("missing.wav"));
        FAIL("no exception for a missing file");
    } catch (const render::AudioError& e) {
        CHECK_THAT(e.what(), Catch::Contains("missing.wav") && Catch::Contains("no such file"));
    }
    { std::ofstream(d.file("text.wav")) << "this is not audio, just text that is long enough to be read\n"; }
    try {
        render::AudioReader x(d.file("text.wav"));
        FAIL("no exception for a text file");
    } catch (const render::AudioError& e) {
        CHECK_THAT(e.what(), Catch::Contains("text.wav") && Catch::Contains("not an audio file"));
    }
}

TEST_CASE("render: a calibrated 1 kHz sine gives the SPEC figures", "[render][calibration]") {
    const double rate = GENERATE(44100.0, 48000.0, 96000.0);
    CAPTURE(rate);
    auto cfg = make_config({"sine"});
    auto mono = musician("mono", false);
    mono.mix.sends = {send("sine", 0.0)};
    // Stereo, centre pan at +3.0103 dB: each ear gets the sine at 0 dB (constant-power pan).
    auto st = musician("stereo", true);
    st.mix.sends = {send("sine", dsp::sine_crest_db, 0.0)};
    cfg.musicians = {mono, st};
    const auto x = sine(rate, 10.0, 1000.0, 0.1, 10.0); // -20 dBFS peak, 10 ms fade-in
    const auto r = render::render_buffers(cfg, rate, {x});
    REQUIRE(r.report.musicians.size() == 2);
    CHECK(r.report.sample_rate == rate);
    CHECK(r.report.frames == x.size());
    CHECK(r.report.duration_s == Approx(10.0));
    for (const auto& m : r.report.musicians) {
        CAPTURE(m.id);
        check_calibrated(m);
        CHECK(m.calibration_offset_db == Approx(117.0103).margin(1e-4));
    }
    // Mono: one channel, both ears report it.
    const auto& mm = r.report.musicians[0];
    CHECK(r.outputs[0].size() == 1);
    CHECK(mm.ears[0].laeq_dba == mm.ears[1].laeq_dba);
    CHECK(mm.ears[0].true_peak_db_spl == mm.ears[1].true_peak_db_spl);
    CHECK(r.outputs[1].size() == 2);
    // The immediate start: the output equals the input from sample 0 (gain 1, aligned).
    for (const auto& m : r.outputs)
        for (const auto& ch : m) {
            REQUIRE(ch.size() == x.size());
            float err = 0.0f;
            for (std::size_t i = 0; i < x.size(); ++i) err = std::max(err, std::fabs(ch[i] - x[i]));
            CHECK(err <= 1e-6f);
        }
}

TEST_CASE("render: outputs are aligned with the input, whatever each musician's look-ahead",
          "[render][latency]") {
    const double rate = GENERATE(44100.0, 48000.0, 192000.0);
    const uint32_t block = GENERATE(16u, 256u, 1000u);
    CAPTURE(rate, block);
    auto cfg = make_config({"a", "b"});
    auto m1 = musician("short", false);
    m1.protection.lookahead_ms = 0.5;
    m1.mix.sends = {send("a", 0.0)};
    auto m2 = musician("long", true);
    m2.protection.lookahead_ms = 1.5;
    m2.mix.sends = {send("a", 0.0, -1.0), send("b", 0.0, 1.0)};
    cfg.musicians = {m1, m2};
    const std::size_t n = 5000;
    std::vector<float> a(n, 0.0f), b(n, 0.0f);
    const std::vector<std::size_t> at = {0, 15, 16, 255, 256, 999, 1000, 2047, n - 1};
    for (std::size_t k : at) a[k] = 0.25f;
    b[n / 2] = -0.125f;
    render::RenderOptions opt;
    opt.block = block;
    const auto r = render::render_buffers(cfg, rate, {a, b}, opt);
    CHECK(r.report.musicians[0].latency_frames < r.report.musicians[1].latency_frames);
    CHECK(r.report.latency_frames == r.report.musicians[1].latency_frames);
    const auto& s = r.outputs[0][0];
    const auto& ll = r.outputs[1][0];
    const auto& lr = r.outputs[1][1];
    REQUIRE(s.size() == n);
    REQUIRE(ll.size() == n);
    REQUIRE(lr.size() == n);
    // Sample for sample (the index of the first difference, n when there is none).
    auto first_diff = [](const std::vector<float>& x, const std::vector<float>& y) {
        return static_cast<std::size_t>(std::mismatch(x.begin(), x.end(), y.begin()).first - x.begin());
    };
    CHECK(first_diff(s, a) == n);
    CHECK(first_diff(ll, a) == n);
    CHECK(first_diff(lr, b) == n);
}

TEST_CASE("render: pan law at the ears", "[render][pan]") {
    auto cfg = make_config({"sine"});
    auto left = musician("left", true);
    left.mix.sends = {send("sine", -6.0, -1.0)};
    auto centre = musician("centre", true);
    centre.mix.sends = {send("sine", 0.0, 0.0)};
    cfg.musicians = {left, centre};
    const auto x = sine(48000, 3.0, 1000.0, 0.1, 10.0);
    const auto r = render::render_buffers(cfg, 48000, {x});
    const auto& L = r.report.musicians[0];
    // Hard left: R is exact silence (reported as -inf, null in JSON), L at the send gain.
    CHECK(max_abs(r.outputs[0][1]) == 0.0f);
    CHECK(L.ears[1].laeq_dba == minus_inf);
    CHECK(L.ears[1].lcpeak_dbc == minus_inf);
    CHECK(L.ears[1].sample_peak_dbfs == minus_inf);
    CHECK(L.ears[0].sample_peak_dbfs == Approx(-26.0).margin(0.01));
    CHECK(L.ears[0].laeq_dba == Approx(88.0).margin(0.05));
    CHECK(L.laeq_dba == L.ears[0].laeq_dba); // the louder ear
    // Centre: -3.01 dB on each side.
    const auto& C = r.report.musicians[1];
    for (const auto& e : C.ears) {
        CHECK(e.sample_peak_dbfs == Approx(-23.01).margin(0.01));
        CHECK(e.laeq_dba == Approx(90.99).margin(0.05));
    }
    CHECK(C.laeq_dba == Approx(90.99).margin(0.05)); // louder ear, not the sum of both
}

TEST_CASE("render: the louder ear sets the musician's level", "[render][ears]") {
    auto cfg = make_config({"a", "b"});
    auto m = musician("m", true);
    m.mix.sends = {send("a", 0.0, -1.0), send("b", -10.0, 1.0)};
    cfg.musicians = {m};
    const auto x = sine(48000, 2.0, 1000.0, 0.1, 10.0);
    const auto r = render::render_buffers(cfg, 48000, {x, x});
    const auto& mr = r.report.musicians[0];
    CHECK(mr.ears[0].laeq_dba == Approx(94.0).margin(0.05));
    CHECK(mr.ears[1].laeq_dba == Approx(84.0).margin(0.05));
    CHECK(mr.laeq_dba == mr.ears[0].laeq_dba);
    CHECK(mr.lcpeak_dbc == mr.ears[0].lcpeak_dbc);
}

TEST_CASE("render: a loud signal is limited at the ceiling and reported", "[render][limiter]") {
    auto cfg = make_config({"square"});
    auto m = musician("loud", true, 110.0); // -7.01 dBFS
    m.mix.sends = {send("square", 0.0, -0.3)};
    cfg.musicians = {m};
    std::vector<float> x(48000 * 3);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = (i / 240) % 2 ? 10.0f : -10.0f; // +20 dBFS, 100 Hz
    const auto r = render::render_buffers(cfg, 48000, {x});
    const auto& mr = r.report.musicians[0];
    const float ceiling = static_cast<float>(dsp::db_to_gain(config::ceiling_dbfs(m)));
    CHECK(mr.ceiling_dbfs == Approx(-7.0103).margin(1e-4));
    for (const auto& ch : r.outputs[0]) CHECK(max_abs(ch) <= ceiling);
    CHECK(mr.sample_peak_dbfs <= mr.ceiling_dbfs + 1e-6);
    CHECK(mr.true_peak_db_spl <= 110.5);
    CHECK(mr.limiter_max_gain_reduction_db > 20.0);
    CHECK(mr.limiter_active_s > 2.5);
    // Counted over the engine run: the file plus the latency frames that flush the limiter.
    CHECK(mr.limiter_active_s <= 3.0 + mr.latency_frames / 48000.0);
}

TEST_CASE("render: true and sample peaks are those of the written output", "[render][peak]") {
    // A band through a hot mix: limited, with inter-sample peaks. The report's true peak must be
    // exactly dsp::TruePeakMeter's on the output, and the sample peak the output's max |sample|.
    const double rate = 48000;
    const auto band = render::generate_band(4, rate, static_cast<std::size_t>(rate * 6), 11);
    auto cfg = make_config({"click", "drums", "bass", "vocal"});
    auto hot = musician("hot", true, 105.0);
    hot.mix.master_db = 9;
    hot.mix.sends = {send("click", 0.0, -0.4), send("drums", 3.0, 0.3), send("bass", 0.0),
                     send("vocal", 0.0, 0.6)};
    auto soft = musician("soft", false, 130.0);
    soft.mix.sends = {send("vocal", -12.0), send("bass", -6.0)};
    cfg.musicians = {hot, soft};
    render::RenderOptions opt;
    opt.block = 77;
    const auto r = render::render_buffers(cfg, rate, band, opt);
    for (std::size_t m = 0; m < 2; ++m) {
        const auto& mr = r.report.musicians[m];
        CAPTURE(mr.id);
        for (int ear = 0; ear < 2; ++ear) {
            const auto& x = r.outputs[m][static_cast<std::size_t>(mr.channels == 2 ? ear : 0)];
            dsp::TruePeakMeter tp;
            tp.process(x.data(), static_cast<uint32_t>(x.size()));
            tp.finish();
            CHECK(mr.ears[ear].true_peak_db_spl ==
                  dsp::gain_to_db(static_cast<double>(tp.peak())) + mr.calibration_offset_db);
            CHECK(mr.ears[ear].sample_peak_dbfs == dsp::gain_to_db(static_cast<double>(max_abs(x))));
        }
    }
    CHECK(r.report.musicians[0].limiter_max_gain_reduction_db > 3.0);
    CHECK(r.report.musicians[0].true_peak_db_spl <= 105.5);
    CHECK(r.report.musicians[0].true_peak_db_spl >
          r.report.musicians[0].sample_peak_dbfs + r.report.musicians[0].calibration_offset_db - 1e-9);
}

TEST_CASE("render: NaN/Inf input is counted and never reaches the output", "[render][bad-input]") {
    auto cfg = make_config({"in"});
    auto m = musician("m", false);
    m.mix.sends = {send("in", 0.0)};
    cfg.musicians = {m};
    auto x = sine(48000, 1.0, 440.0, 0.1);
    x[1000] = std::numeric_limits<float>::quiet_NaN();
    x[20000] = std::numeric_limits<float>::infinity();
    const auto r = render::render_buffers(cfg, 48000, {x});
    CHECK(r.report.bad_input_blocks == 2);
    const auto& o = r.outputs[0][0];
    CHECK(std::all_of(o.begin(), o.end(), [](float v) { return std::isfinite(v); }));
    CHECK(std::isfinite(r.report.musicians[0].laeq_dba));
}

TEST_CASE("render: files, report.json and a channel-count mismatch", "[render][file][json]") {
    TempDir d;
    auto cfg = make_config({"sine", "quiet"});
    auto st = musician("drums", true);
    st.mix.sends = {send("sine", dsp::sine_crest_db, 0.0)};
    auto mono = musician("bass", false);
    mono.mix.sends = {send("quiet", 0.0)}; // a silent input: every level -inf -> null
    cfg.musicians = {st, mono};
    const double rate = 48000;
    const auto x = sine(rate, 4.0, 1000.0, 0.1, 10.0);
    const std::vector<float> silence(x.size(), 0.0f);
    render::write_wav(d.file("in.wav"), {x, silence}, rate);

    uint64_t last = 0, calls = 0;
    bool monotonic = true;
    const auto rep =
        render::render_file(cfg, d.file("in.wav"), d.file("out"), {}, [&](uint64_t done, uint64_t total) {
            monotonic = monotonic && done >= last && total == x.size();
            last = done;
            ++calls;
        });
    CHECK(monotonic);
    CHECK(last == x.size());
    CHECK(calls > 1);
    CHECK(rep.input_file == d.file("in.wav"));
    check_calibrated(rep.musicians[0]);

    // Files: float, the musician's channel count, same length; the same samples as in memory.
    double fs = 0;
    const auto drums = render::read_audio(d.file("out/drums.wav"), &fs);
    const auto bass = render::read_audio(d.file("out/bass.wav"));
    CHECK(fs == rate);
    REQUIRE(drums.size() == 2);
    REQUIRE(bass.size() == 1);
    CHECK(drums[0].size() == x.size());
    CHECK(bass[0].size() == x.size());
    CHECK(render::AudioReader(d.file("out/drums.wav")).info().format.find("float") != std::string::npos);
    const auto mem = render::render_buffers(cfg, rate, {x, silence});
    CHECK(same(mem.outputs[0], drums));
    CHECK(same(mem.outputs[1], bass));

    // report.json: every SPEC §5 field (except "dose", which the dosimetry module adds), the extras,
    // and null for silence.
    render::write_report(rep, d.file("out/report.json"));
    std::ifstream f(d.file("out/report.json"));
    std::stringstream ss;
    ss << f.rdbuf();
    const auto v = boost::json::parse(ss.str());
    const auto& o = v.as_object();
    CHECK(o.at("sample_rate").as_int64() == 48000);
    CHECK(o.at("duration_s").to_number<double>() == Approx(4.0));
    CHECK(o.at("latency_frames").as_int64() == rep.latency_frames);
    CHECK(o.at("frames").to_number<double>() == static_cast<double>(x.size()));
    for (const char* k : {"block_frames", "bad_input_blocks", "dose_frames_dropped", "input", "config"})
        CHECK(o.contains(k));
    const auto& ms = o.at("musicians").as_array();
    REQUIRE(ms.size() == 2);
    const auto& m0 = ms[0].as_object();
    CHECK(m0.at("id").as_string() == "drums");
    CHECK(m0.at("laeq_dba").to_number<double>() == Approx(94.0).margin(0.05));
    CHECK(m0.at("lafmax_dba").to_number<double>() == Approx(94.0).margin(0.1));
    CHECK(m0.at("lcpeak_dbc").to_number<double>() == Approx(97.01).margin(0.05));
    CHECK(m0.at("true_peak_db_spl").to_number<double>() == Approx(97.01).margin(0.05));
    CHECK(m0.at("sample_peak_dbfs").to_number<double>() == Approx(-20.0).margin(0.01));
    CHECK(m0.at("limiter").as_object().at("max_gain_reduction_db").to_number<double>() == 0.0);
    CHECK(m0.at("limiter").as_object().at("active_s").to_number<double>() == 0.0);
    REQUIRE(m0.contains("dose"));
    for (const char* k : {"niosh_pct", "osha_pct", "osha_action_pct", "eu_lex8h_dba", "who_weekly_pct"})
        CHECK(m0.at("dose").as_object().contains(k));
    for (const char* ear : {"L", "R"}) {
        const auto& e = m0.at("ears").as_object().at(ear).as_object();
        CHECK(e.at("laeq_dba").to_number<double>() == Approx(94.0).margin(0.05));
        CHECK(e.at("lcpeak_dbc").to_number<double>() == Approx(97.01).margin(0.05));
    }
    for (const char* k : {"name", "output", "file", "calibration_reference", "calibration_offset_db",
                          "ceiling_db_spl", "ceiling_dbfs", "latency_frames", "clamped_samples"})
        CHECK(m0.contains(k));
    CHECK(m0.at("output").as_string() == "stereo");
    CHECK(m0.at("file").as_string() == "drums.wav");
    const auto& m1 = ms[1].as_object();
    CHECK(m1.at("output").as_string() == "mono");
    for (const char* k : {"laeq_dba", "lafmax_dba", "lcpeak_dbc", "true_peak_db_spl", "sample_peak_dbfs"})
        CHECK(m1.at(k).is_null());
    CHECK(m1.at("ears").as_object().at("R").as_object().at("laeq_dba").is_null());

    // The input's channel count must match the config's inputs.
    render::write_wav(d.file("three.wav"), {x, x, x}, rate);
    try {
        render::render_file(cfg, d.file("three.wav"), d.file("out2"));
        FAIL("no exception for a channel-count mismatch");
    } catch (const render::RenderError& e) {
        CHECK_THAT(e.what(), Catch::Contains("3 channels") && Catch::Contains("2 inputs") &&
                                 Catch::Contains("sine, quiet"));
    }
    CHECK_THROWS_AS(render::render_buffers(cfg, rate, {x}), render::RenderError);
    CHECK_THROWS_AS(render::render_file(cfg, d.file("nope.wav"), d.file("out3")), render::AudioError);
    render::RenderOptions bad;
    bad.block = 8;
    CHECK_THROWS_AS(render::render_buffers(cfg, rate, {x, silence}, bad), render::RenderError);
}

TEST_CASE("render: an empty input gives empty outputs and a null report", "[render][edge]") {
    auto cfg = make_config({"in"});
    auto m = musician("m", true);
    m.mix.sends = {send("in", 0.0)};
    cfg.musicians = {m};
    const auto r = render::render_buffers(cfg, 48000, {std::vector<float>{}});
    CHECK(r.outputs[0][0].empty());
    CHECK(r.report.duration_s == 0.0);
    CHECK(r.report.musicians[0].laeq_dba == minus_inf);
    const auto v = boost::json::parse(render::report_json(r.report));
    CHECK(v.at("musicians").at(0).at("laeq_dba").is_null());
}

TEST_CASE("band: deterministic, independent of the block size, distinct per seed", "[render][band]") {
    const auto a = render::generate_band(6, 48000, 48000 * 4, 7);
    const auto b = render::generate_band(6, 48000, 48000 * 4, 7);
    CHECK(same(a, b));
    // Another seed: other noise, and the further players (channels >= 4) play differently.
    const auto c = render::generate_band(6, 48000, 48000 * 4, 8);
    CHECK(same(a[0], c[0])); // the click is the click
    for (std::size_t ch = 1; ch < 6; ++ch) CHECK(!same(a[ch], c[ch]));
    // Streamed in odd blocks: the same samples.
    render::BandGenerator g(6, 48000, 7);
    std::vector<std::vector<float>> s(6);
    std::vector<std::vector<float>> buf(6, std::vector<float>(997));
    std::vector<float*> p;
    for (auto& v : buf) p.push_back(v.data());
    for (std::size_t done = 0; done < a[0].size();) {
        const std::size_t n = std::min<std::size_t>(997, a[0].size() - done);
        g.generate(p.data(), n);
        for (std::size_t ch = 0; ch < 6; ++ch)
            s[ch].insert(s[ch].end(), buf[ch].begin(), buf[ch].begin() + static_cast<std::ptrdiff_t>(n));
        done += n;
    }
    CHECK(same(s, a));
    CHECK(std::string(render::band_part_name(0)) == "click");
    CHECK(std::string(render::band_part_name(5)) == "drums");
    CHECK(std::string(render::band_part_name(6)) == "bass");
    CHECK(std::string(render::band_part_name(7)) == "vocal");
    CHECK_THROWS_AS(render::BandGenerator(0, 48000, 1), std::invalid_argument);
    CHECK_THROWS_AS(render::BandGenerator(4, 1000, 1), std::invalid_argument);
}

TEST_CASE("band: levels, parts and rates", "[render][band]") {
    const double rate = GENERATE(44100.0, 48000.0, 96000.0);
    const uint32_t seed = GENERATE(1u, 2u, 3u);
    CAPTURE(rate, seed);
    const auto band = render::generate_band(16, rate, static_cast<std::size_t>(rate * 8), seed); // 2 loops
    const std::size_t win = static_cast<std::size_t>(rate / 2); // beat-long windows
    for (std::size_t ch = 0; ch < band.size(); ++ch) {
        CAPTURE(ch);
        const auto& x = band[ch];
        std::vector<double> peaks;
        for (std::size_t w = 0; w + win <= x.size(); w += win) {
            float p = 0.0f;
            for (std::size_t i = w; i < w + win; ++i) p = std::max(p, std::fabs(x[i]));
            peaks.push_back(dsp::gain_to_db(static_cast<double>(p)));
        }
        std::sort(peaks.begin(), peaks.end());
        const double median = peaks[peaks.size() / 2];
        // Regular peaks around -12..-6 dBFS; further players (channels >= 4) vary by -4..+2 dB.
        CHECK(median >= (ch < 4 ? -13.0 : -17.0));
        CHECK(median <= (ch < 4 ? -6.0 : -4.0));
        CHECK(peaks.back() <= -1.0);
        CHECK(std::all_of(x.begin(), x.end(), [](float v) { return std::isfinite(v); }));
        // The click is mostly silence between its blips; the bass is mostly low frequencies.
        std::size_t active = 0;
        for (float v : x) active += std::fabs(v) > 1e-3f;
        const double duty = static_cast<double>(active) / static_cast<double>(x.size());
        if (render::band_part(static_cast<int>(ch)) == render::BandPart::click)
            CHECK(duty < 0.2);
        else if (render::band_part(static_cast<int>(ch)) == render::BandPart::bass) {
            CHECK(duty > 0.5);
            double d2 = 0, e2 = 0; // energy of the first difference vs the signal: low for low-pass content
            for (std::size_t i = 1; i < x.size(); ++i) {
                d2 += double(x[i] - x[i - 1]) * double(x[i] - x[i - 1]);
                e2 += double(x[i]) * double(x[i]);
            }
            CHECK(d2 / e2 < 0.05 * (48000.0 / rate) * (48000.0 / rate)); // ~ (2 pi f / fs)^2: below ~1.7 kHz
        }
    }
}
