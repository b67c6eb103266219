// `earshot bench` (SPEC §1, §6): runs the engine on a generated band and prints one `name: value`
// per line. Defaults are the reference workload stage-32x16: 48 kHz, 64-frame periods, 32 inputs,
// 16 stereo musicians, every send active, limiter and meters on every ear.
#include "earshot/config/config.hpp"
#include "earshot/engine/engine.hpp"
#include "earshot/render/band.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace earshot::cli {

namespace {

struct BenchOptions {
    int inputs = 32;
    int musicians = 16;
    uint32_t period = 64;
    double rate = 48000;
    double seconds = 30;
    bool mono = false;
};

void bench_usage(std::FILE* f) {
    std::fprintf(
        f, "usage: earshot bench [--inputs N] [--musicians M] [--period FRAMES] [--rate HZ]\n"
           "                     [--seconds S] [--mono]\n"
           "Runs the engine single-threaded on a generated band (every musician gets a send from every\n"
           "input) and prints realtime_factor, period_us_p50/p99/p999/max, dsp_load_pct and more.\n"
           "Defaults: the reference workload stage-32x16 (32 inputs, 16 stereo musicians, 64 frames,\n"
           "48000 Hz) for 30 s of audio.\n");
}

bool parse(int argc, char** argv, BenchOptions& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* name) -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "earshot bench: %s needs a value\n", name);
                return nullptr;
            }
            return argv[++i];
        };
        auto num = [&](const char* name, double lo, double hi, double& out) {
            const char* v = value(name);
            if (!v) return false;
            char* end = nullptr;
            const double d = std::strtod(v, &end);
            if (end == v || *end != '\0' || !(d >= lo && d <= hi)) {
                std::fprintf(stderr, "earshot bench: %s: '%s' is not a number in [%g, %g]\n", name, v, lo,
                             hi);
                return false;
            }
            out = d;
            return true;
        };
        double d = 0;
        if (a == "--inputs") {
            if (!num("--inputs", 1, engine::max_input_slots, d)) return false;
            o.inputs = static_cast<int>(d);
        } else if (a == "--musicians") {
            if (!num("--musicians", 1, 64, d)) return false;
            o.musicians = static_cast<int>(d);
        } else if (a == "--period") {
            if (!num("--period", 16, 8192, d)) return false;
            o.period = static_cast<uint32_t>(d);
        } else if (a == "--rate") {
            if (!num("--rate", 44100, 192000, o.rate)) return false;
        } else if (a == "--seconds") {
            if (!num("--seconds", 1, 3600, o.seconds)) return false;
        } else if (a == "--mono") {
            o.mono = true;
        } else if (a == "--help" || a == "-h") {
            bench_usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "earshot bench: unknown option '%s'\n", a.c_str());
            bench_usage(stderr);
            return false;
        }
    }
    return true;
}

config::Config make_config(const BenchOptions& o) {
    config::Config c;
    for (int i = 0; i < o.inputs; ++i) {
        config::Input in;
        in.id = "in" + std::to_string(i + 1);
        c.inputs.push_back(in);
    }
    for (int m = 0; m < o.musicians; ++m) {
        config::Musician mu;
        mu.id = "musician" + std::to_string(m + 1);
        mu.name = mu.id;
        mu.output = o.mono ? config::OutputKind::mono : config::OutputKind::stereo;
        mu.calibration.sine_dbfs = -20;
        mu.calibration.db_spl = 94;
        mu.protection.peak_ceiling_db_spl = 112; // -5.0 dBFS: the summed band drives the limiter
        mu.protection.max_laeq_1s_dba = 100;
        for (int i = 0; i < o.inputs; ++i) {
            config::Send s;
            s.input = c.inputs[static_cast<std::size_t>(i)].id;
            s.gain_db = -18.0 + double((i * 7 + m * 3) % 13); // -18 .. -6 dB: every send active
            s.pan = o.mono ? 0.0 : double((i * 5 + m) % 11) / 5.0 - 1.0;
            mu.mix.sends.push_back(s);
        }
        c.musicians.push_back(mu);
    }
    return c;
}

double peak_rss_mib() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return -1;
}

} // namespace

int bench_main(int argc, char** argv) {
    BenchOptions o;
    if (!parse(argc, argv, o)) return 2;
    const config::Config cfg = make_config(o);
    engine::Engine e(o.rate, o.period);
    if (!e.apply_config(cfg, engine::StartMode::immediate)) {
        std::fprintf(stderr, "earshot bench: could not build the mix graph\n");
        return 1;
    }
    // One second of generated band, looped: keeps the benchmark's own memory small.
    const std::size_t loop = static_cast<std::size_t>(o.rate);
    const auto band = render::generate_band(o.inputs, o.rate, loop, 42);
    std::vector<const float*> ip(static_cast<std::size_t>(e.input_slot_count()), nullptr);
    std::vector<std::vector<float>> outs(static_cast<std::size_t>(e.output_slot_count()),
                                         std::vector<float>(o.period));
    std::vector<float*> op;
    for (auto& v : outs) op.push_back(v.data());

    const uint64_t total = static_cast<uint64_t>(o.seconds * o.rate) / o.period;
    const uint64_t warmup = static_cast<uint64_t>(o.rate) / o.period; // 1 s, not measured
    std::vector<double> us;
    us.reserve(total);
    std::size_t pos = 0;
    double busy = 0;
    engine::DoseFrame df;
    engine::MeterFrame mf;
    for (uint64_t p = 0; p < warmup + total; ++p) {
        if (pos + o.period > loop) pos = 0;
        for (int i = 0; i < o.inputs; ++i) {
            const int slot = e.input_slot(cfg.inputs[static_cast<std::size_t>(i)].id);
            ip[static_cast<std::size_t>(slot)] = band[static_cast<std::size_t>(i)].data() + pos;
        }
        const auto t0 = std::chrono::steady_clock::now();
        e.process(o.period, ip.data(), static_cast<int>(ip.size()), op.data(), static_cast<int>(op.size()));
        const auto t1 = std::chrono::steady_clock::now();
        pos += o.period;
        // The control thread's share (draining frames) is not part of the RT period.
        while (e.pop_dose(df)) {
        }
        while (e.pop_meter(mf)) {
        }
        if (p >= warmup) {
            const double d = std::chrono::duration<double, std::micro>(t1 - t0).count();
            us.push_back(d);
            busy += d;
        }
    }
    std::vector<double> sorted = us;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double q) {
        const std::size_t k =
            std::min(sorted.size() - 1, static_cast<std::size_t>(q * double(sorted.size() - 1) + 0.5));
        return sorted[k];
    };
    const double period_us = double(o.period) / o.rate * 1e6;
    const double audio_s = double(total * o.period) / o.rate;
    std::printf("workload: %s\n",
                (o.inputs == 32 && o.musicians == 16 && o.period == 64 && o.rate == 48000 && !o.mono)
                    ? "stage-32x16"
                    : "custom");
    std::printf("inputs: %d\nmusicians: %d\nchannels_per_musician: %d\nsends: %d\n", o.inputs, o.musicians,
                o.mono ? 1 : 2, o.inputs * o.musicians);
    std::printf("rate_hz: %.0f\nperiod_frames: %u\nperiod_us: %.1f\naudio_s: %.1f\nperiods: %zu\n", o.rate,
                o.period, period_us, audio_s, us.size());
    std::printf("realtime_factor: %.1f\n", audio_s / (busy * 1e-6));
    std::printf("period_us_p50: %.2f\nperiod_us_p99: %.2f\nperiod_us_p999: %.2f\nperiod_us_max: %.2f\n",
                pct(0.5), pct(0.99), pct(0.999), sorted.back());
    std::printf("dsp_load_pct: %.2f\n", busy / double(us.size()) / period_us * 100.0);
    std::printf("p999_load_pct: %.2f\n", pct(0.999) / period_us * 100.0);
    std::printf("latency_frames: %d\n", e.latency_frames());
    std::printf("limiter_clamped_samples: %llu\n",
                static_cast<unsigned long long>(e.counters().clamped_samples.load()));
    std::printf("rss_mib: %.1f\n", peak_rss_mib());
    return 0;
}

} // namespace earshot::cli
