// The ceiling invariant (SPEC §3.1) as a property test, plus the limiter's latency, transparency,
// release and state-copy contracts.
#include "../common/reference_true_peak.hpp"
#include "earshot/dsp/limiter.hpp"
#include "earshot/dsp/units.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using earshot::dsp::TruePeakLimiter;
using earshot::test::reference_true_peak;

namespace {

constexpr double pi = 3.14159265358979323846;

struct Result {
    std::vector<float> out[2];
    TruePeakLimiter::Stats stats;
};

// Runs `in` (1 or 2 channels) through a limiter in blocks of random size, then flushes with zeros.
Result run(const std::vector<float>* in, int channels, double fs, float ceiling, std::mt19937& rng,
           uint32_t max_block = 512, double lookahead_ms = 1.0, double release_ms = 80.0) {
    TruePeakLimiter lim;
    lim.prepare(fs, channels, lookahead_ms, release_ms);
    lim.set_ceiling(ceiling);
    const std::size_t n = in[0].size() + static_cast<std::size_t>(lim.latency_frames());
    Result r;
    for (int c = 0; c < channels; ++c) {
        r.out[c] = in[c];
        r.out[c].resize(n, 0.0f);
    }
    std::uniform_int_distribution<uint32_t> bs(1, max_block);
    std::size_t pos = 0;
    while (pos < n) {
        const uint32_t b = static_cast<uint32_t>(std::min<std::size_t>(bs(rng), n - pos));
        float* io[2] = {r.out[0].data() + pos, channels > 1 ? r.out[1].data() + pos : nullptr};
        lim.process(io, b);
        pos += b;
    }
    r.stats = lim.take_stats();
    return r;
}

void check_ceiling(const Result& r, int channels, float ceiling, const char* what) {
    const double tp_limit = double(ceiling) * std::pow(10.0, 0.5 / 20.0);
    for (int c = 0; c < channels; ++c) {
        float peak = 0;
        for (float v : r.out[c]) {
            REQUIRE(std::isfinite(v));
            peak = std::max(peak, std::fabs(v));
        }
        INFO(what << " channel " << c << " sample peak " << peak << " ceiling " << ceiling);
        REQUIRE(peak <= ceiling);
        const double tp = reference_true_peak(r.out[c]);
        INFO("true peak " << earshot::dsp::gain_to_db(tp / double(ceiling)) << " dB re ceiling");
        REQUIRE(tp <= tp_limit);
    }
}

std::vector<float> square(std::size_t n, double fs, double f, float amp, double phase = 0) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
        x[i] = std::sin(2 * pi * f * double(i) / fs + phase) >= 0 ? amp : -amp;
    return x;
}

std::vector<float> sine(std::size_t n, double fs, double f, float amp, double phase = 0) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = amp * float(std::sin(2 * pi * f * double(i) / fs + phase));
    return x;
}

} // namespace

TEST_CASE("limiter: latency is the look-ahead, at most 1.5 ms", "[dsp][limiter]") {
    for (double fs : {44100.0, 48000.0, 88200.0, 96000.0, 192000.0}) {
        for (double ms : {0.5, 1.0, 1.5}) {
            TruePeakLimiter lim;
            lim.prepare(fs, 2, ms, 80);
            INFO("fs " << fs << " lookahead " << ms);
            REQUIRE(lim.latency_frames() <= static_cast<int>(std::ceil(1.5e-3 * fs)));
            if (ms * 1e-3 * fs >= 20) REQUIRE(std::abs(lim.latency_frames() - ms * 1e-3 * fs) <= 1.0);
        }
    }
    TruePeakLimiter lim;
    lim.prepare(48000, 1, 1.0, 80);
    lim.set_ceiling(1.0f);
    REQUIRE(lim.latency_frames() == 48);
    std::vector<float> x(200, 0.0f);
    x[10] = 0.5f;
    float* io[1] = {x.data()};
    lim.process(io, 200);
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == (i == 58 ? 0.5f : 0.0f));
}

TEST_CASE("limiter: transparent below the ceiling, no pumping on steady tones", "[dsp][limiter]") {
    std::mt19937 rng(7);
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        for (double f : {40.0, 1000.0, 5000.0, 15000.0}) {
            // A tone 0.6 dB below the ceiling, whose true peak is at the ceiling minus 0.6 dB.
            const float ceiling = 0.5f;
            auto x = sine(static_cast<std::size_t>(fs), fs, f, ceiling * 0.933f, 0.3);
            const std::vector<float> in[1] = {x};
            auto r = run(in, 1, fs, ceiling, rng);
            INFO("fs " << fs << " f " << f);
            REQUIRE(r.stats.active_samples == 0);
            REQUIRE(r.stats.min_gain == 1.0f);
            REQUIRE(r.stats.clamped_samples == 0);
            TruePeakLimiter probe;
            probe.prepare(fs, 1, 1.0, 80);
            const std::size_t lat = static_cast<std::size_t>(probe.latency_frames());
            for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(r.out[0][i + lat] == x[i]);
        }
    }
}

TEST_CASE("limiter: gain is fully reduced when the peak leaves the delay line", "[dsp][limiter]") {
    // An isolated impulse 20 dB over the ceiling: the output sample must be at (not above) the
    // ceiling, with the gain reduction fully in place, not clipped by the clamp.
    std::mt19937 rng(1);
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        std::vector<float> x(4000, 0.0f);
        x[1000] = 5.0f;
        x[2000] = -5.0f;
        const std::vector<float> in[1] = {x};
        auto r = run(in, 1, fs, 0.5f, rng);
        REQUIRE(r.stats.clamped_samples == 0);
        TruePeakLimiter probe;
        probe.prepare(fs, 1, 1.0, 80);
        const std::size_t lat = static_cast<std::size_t>(probe.latency_frames());
        REQUIRE(std::fabs(r.out[0][1000 + lat]) <= 0.5f);
        REQUIRE(std::fabs(r.out[0][1000 + lat]) >= 0.45f);
        REQUIRE(r.out[0][2000 + lat] <= -0.45f);
    }
}

TEST_CASE("limiter: ceiling property, thousands of random signals", "[dsp][limiter][property]") {
    std::mt19937 rng(20261125);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    int signals = 0;
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        for (int trial = 0; trial < 400; ++trial) {
            const int channels = 1 + (trial & 1);
            const std::size_t n = 256 + static_cast<std::size_t>(u(rng) * 3000);
            const float ceiling = float(std::pow(10.0, (-30.0 + 30.0 * u(rng)) / 20.0));
            std::vector<float> in[2];
            for (int c = 0; c < channels; ++c) {
                in[c].resize(n);
                const int kind = static_cast<int>(u(rng) * 5);
                const double gain = std::pow(10.0, (-40.0 + 80.0 * u(rng)) / 20.0); // -40..+40 dBFS
                std::normal_distribution<double> g(0, 1);
                double f1 = 20 + u(rng) * (fs / 2 - 20), f2 = 20 + u(rng) * (fs / 2 - 20),
                       ph = u(rng) * 2 * pi;
                for (std::size_t i = 0; i < n; ++i) {
                    const double t = double(i) / fs;
                    double v = 0;
                    switch (kind) {
                    case 0:
                        v = g(rng);
                        break; // white noise
                    case 1:
                        v = std::sin(2 * pi * f1 * t + ph) + 0.7 * std::sin(2 * pi * f2 * t);
                        break;
                    case 2:
                        v = (u(rng) < 0.01) ? (u(rng) < 0.5 ? -1 : 1) : 0;
                        break; // clicks
                    case 3:
                        v = (i / 300) % 2 ? g(rng) : 0.01 * g(rng);
                        break; // bursts
                    default:
                        v = std::sin(2 * pi * f1 * t + ph) >= 0 ? 1 : -1;
                        break; // square
                    }
                    in[c][i] = float(v * gain);
                }
            }
            auto r = run(in, channels, fs, ceiling, rng, 1 + static_cast<uint32_t>(u(rng) * 1024));
            check_ceiling(r, channels, ceiling, "random");
            ++signals;
        }
    }
    REQUIRE(signals == 1200);
}

TEST_CASE("limiter: adversarial signals", "[dsp][limiter][property]") {
    std::mt19937 rng(3);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const float big = std::numeric_limits<float>::max();
    const float denorm = std::numeric_limits<float>::denorm_min();
    for (double fs : {44100.0, 48000.0, 96000.0}) {
        const std::size_t n = static_cast<std::size_t>(fs / 5);
        for (float ceiling : {1.0f, 0.4462f, 0.05f}) {
            std::vector<std::pair<const char*, std::vector<float>>> cases;
            cases.emplace_back("full-scale square 100 Hz", square(n, fs, 100, 1.0f));
            cases.emplace_back("+40 dBFS square 1 kHz", square(n, fs, 1000, 100.0f));
            cases.emplace_back("+40 dBFS square 7 kHz", square(n, fs, 7000, 100.0f, 1.0));
            for (double ph : {0.0, pi / 8, pi / 4, pi / 3, pi / 2}) {
                cases.emplace_back("fs/4 tone", sine(n, fs, fs / 4, 3.0f, ph));
                cases.emplace_back("fs/2 tone", sine(n, fs, fs / 2, 3.0f, ph + 0.001));
                cases.emplace_back("near fs/2 tone", sine(n, fs, fs / 2 * 0.97, 3.0f, ph));
            }
            std::vector<float> imp(n, 0.0f);
            for (std::size_t i = 100; i < n; i += 997) imp[i] = (i / 997) % 2 ? 100.0f : -100.0f;
            cases.emplace_back("impulses +40 dBFS", imp);
            std::vector<float> dc(n, 0.0f);
            for (std::size_t i = n / 3; i < n; ++i) dc[i] = i < 2 * n / 3 ? 10.0f : -10.0f;
            cases.emplace_back("DC steps", dc);
            std::vector<float> burst(n, 0.0f);
            for (std::size_t i = 0; i < n; ++i)
                burst[i] =
                    ((i / 64) % 7 == 0) ? float(50 * std::sin(2 * pi * 3000 * double(i) / fs)) : 0.001f;
            cases.emplace_back("short bursts", burst);
            std::vector<float> bad = sine(n, fs, 440, 2.0f);
            for (std::size_t i = 0; i < n; i += 37)
                bad[i] = (i / 37) % 4 == 0 ? nan : (i / 37) % 4 == 1 ? inf : (i / 37) % 4 == 2 ? -inf : big;
            cases.emplace_back("NaN/Inf/FLT_MAX", bad);
            std::vector<float> den(n);
            for (std::size_t i = 0; i < n; ++i) den[i] = (i % 2 ? -1.0f : 1.0f) * denorm * float(i % 100);
            cases.emplace_back("denormals", den);
            std::vector<float> alt(n);
            for (std::size_t i = 0; i < n; ++i) alt[i] = (i % 2) ? -big : big;
            cases.emplace_back("alternating FLT_MAX", alt);
            for (auto& [what, sig] : cases) {
                INFO(what << " fs " << fs << " ceiling " << ceiling);
                const std::vector<float> mono[1] = {sig};
                check_ceiling(run(mono, 1, fs, ceiling, rng), 1, ceiling, what);
                const std::vector<float> st[2] = {sig, std::vector<float>(sig.rbegin(), sig.rend())};
                check_ceiling(run(st, 2, fs, ceiling, rng, 64), 2, ceiling, what);
            }
        }
    }
}

TEST_CASE("limiter: denormal input leaves no denormal output", "[dsp][limiter]") {
    std::vector<float> x(1000, std::numeric_limits<float>::denorm_min());
    std::mt19937 rng(5);
    const std::vector<float> in[1] = {x};
    auto r = run(in, 1, 48000, 1.0f, rng);
    for (float v : r.out[0]) REQUIRE(v == 0.0f);
}

TEST_CASE("limiter: gain recovers after a burst with the release time constant", "[dsp][limiter]") {
    const double fs = 48000;
    TruePeakLimiter lim;
    lim.prepare(fs, 1, 1.0, 50.0);
    lim.set_ceiling(0.5f);
    auto x = sine(static_cast<std::size_t>(fs), fs, 1000, 1.0f); // 6 dB over for 0.25 s, then quiet
    for (std::size_t i = 12000; i < x.size(); ++i) x[i] *= 0.25f;
    float* io[1] = {x.data()};
    lim.process(io, 12000);
    REQUIRE(lim.gain() == Approx(0.5).margin(0.01));
    lim.process(io, 0);
    std::vector<float> rest(x.begin() + 12000, x.end());
    float* io2[1] = {rest.data()};
    // After 4 release time constants (200 ms) the gain is within 2 % of 1; after 1 s it is exactly 1.
    lim.process(io2, static_cast<uint32_t>(0.2 * fs) + 60);
    REQUIRE(lim.gain() > 0.98f);
    REQUIRE(lim.gain() < 1.0f);
    float* io3[1] = {rest.data() + static_cast<std::size_t>(0.2 * fs) + 60};
    lim.process(io3, static_cast<uint32_t>(rest.size() - static_cast<std::size_t>(0.2 * fs) - 60));
    REQUIRE(lim.gain() == 1.0f);
}

TEST_CASE("limiter: copy_state_from continues the stream exactly", "[dsp][limiter]") {
    const double fs = 48000;
    auto x = sine(9600, fs, 300, 2.0f);
    auto y = x;
    TruePeakLimiter a, b, c;
    for (auto* l : {&a, &b, &c}) {
        l->prepare(fs, 1, 1.0, 80);
        l->set_ceiling(0.3f);
    }
    float* io[1] = {x.data()};
    a.process(io, 9600);
    float* jo[1] = {y.data()};
    b.process(jo, 4800);
    c.copy_state_from(b);
    float* ko[1] = {y.data() + 4800};
    c.process(ko, 4800);
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == y[i]);
}

TEST_CASE("true peak: block_peaks equals interval_peak window by window", "[dsp][limiter]") {
    earshot::dsp::TruePeakInterpolator ip;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<float> x(64 + 12);
    for (int trial = 0; trial < 200; ++trial) {
        for (float& v : x) v = u(rng) * (trial % 3 == 0 ? 1e-3f : 1.0f);
        for (uint32_t m : {1u, 3u, 4u, 7u, 8u, 9u, 31u, 64u}) {
            std::vector<float> e(64), prior(64);
            for (uint32_t i = 0; i < 64; ++i) e[i] = prior[i] = (i % 5 == 0) ? 1.5f : 0.0f; // max-accumulate
            ip.block_peaks(x.data(), m, e.data());
            for (uint32_t i = 0; i < 64; ++i) {
                const float want = i < m ? std::max(prior[i], ip.interval_peak(x.data() + i)) : prior[i];
                REQUIRE(e[i] == want); // bit for bit
            }
        }
    }
}
