// `earshot render` (SPEC §1, §5): the engine offline over a multichannel file; one WAV per musician
// and report.json. Exit codes: 0 ok, 1 error, 2 usage, 78 (EX_CONFIG) config error.
#include "earshot/config/loader.hpp"
#include "earshot/render/render.hpp"
#include "earshot/render/wav_io.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

namespace earshot::cli {

namespace {

constexpr int exit_ok = 0;
constexpr int exit_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_config = 78; // EX_CONFIG

struct RenderArgs {
    std::string config;
    std::string input;
    std::string out_dir = ".";
    uint32_t block = 256;
    bool quiet = false;
    bool per_second = false;
};

void render_usage(std::FILE* f) {
    std::fprintf(
        f,
        "usage: earshot render --config FILE --input AUDIO [--out-dir DIR] [--block N] [--per-second] "
        "[--quiet]\n"
        "\n"
        "Runs the daemon's engine offline over a multichannel audio file (channel i = the i-th entry\n"
        "of `inputs` in the config; any format libsndfile reads, at the file's own rate) and writes\n"
        "DIR/<musician-id>.wav (32-bit float, mono or stereo, same length as the input and aligned\n"
        "with it) and DIR/report.json (calibrated levels per musician and ear; docs/render.md).\n"
        "\n"
        "  --config FILE   the YAML config (required)\n"
        "  --input AUDIO   the multichannel input file (required)\n"
        "  --out-dir DIR   where the outputs go, created if missing (default: .)\n"
        "  --block N       frames per engine call, %u..%u (default: 256)\n"
        "  --per-second    report.json gets each musician's level, loudness-cap and guard action\n"
        "                  and cumulative NIOSH dose for every second (per_second)\n"
        "  --quiet         no progress bar and no summary\n"
        "  --help          this text\n"
        "\n"
        "Exit status: 0 done, 1 error (input, I/O), 2 usage, 78 invalid config (every error printed).\n",
        render::min_block, render::max_block);
}

// 0 = parsed, 1 = --help printed, -1 = usage error (message printed).
int parse(int argc, char** argv, RenderArgs& a) {
    for (int i = 1; i < argc; ++i) {
        const std::string opt = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "earshot render: %s needs a value\n", opt.c_str());
                return false;
            }
            out = argv[++i];
            return true;
        };
        if (opt == "--help" || opt == "-h") {
            render_usage(stdout);
            return 1;
        } else if (opt == "--config") {
            if (!value(a.config)) return -1;
        } else if (opt == "--input") {
            if (!value(a.input)) return -1;
        } else if (opt == "--out-dir") {
            if (!value(a.out_dir)) return -1;
        } else if (opt == "--block") {
            std::string v;
            if (!value(v)) return -1;
            char* end = nullptr;
            const long n = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n < static_cast<long>(render::min_block) ||
                n > static_cast<long>(render::max_block)) {
                std::fprintf(stderr, "earshot render: --block: '%s' is not an integer in [%u, %u]\n",
                             v.c_str(), render::min_block, render::max_block);
                return -1;
            }
            a.block = static_cast<uint32_t>(n);
        } else if (opt == "--quiet" || opt == "-q") {
            a.quiet = true;
        } else if (opt == "--per-second") {
            a.per_second = true;
        } else {
            std::fprintf(stderr, "earshot render: unknown option '%s'\n", opt.c_str());
            return -1;
        }
    }
    if (a.config.empty() || a.input.empty()) {
        std::fprintf(stderr, "earshot render: %s\n",
                     a.config.empty() && a.input.empty() ? "--config and --input are required"
                     : a.config.empty()                  ? "--config is required"
                                                         : "--input is required");
        return -1;
    }
    return 0;
}

// A one-line progress bar on a terminal: redrawn at most 10 times a second, ended by a newline.
class ProgressBar {
public:
    ProgressBar(double fs, bool enabled) : _fs(fs), _on(enabled), _t0(std::chrono::steady_clock::now()) {}

    void update(uint64_t done, uint64_t total) {
        if (!_on || _complete) return;
        const auto now = std::chrono::steady_clock::now();
        if (done < total && now - _last < std::chrono::milliseconds(100)) return;
        _last = now;
        _complete = done >= total; // the tail that flushes the limiter reports 100 % again
        const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
        constexpr int width = 30;
        const int fill = static_cast<int>(frac * width);
        std::string bar(static_cast<std::size_t>(fill), '#');
        bar.append(static_cast<std::size_t>(width - fill), '.');
        const double wall = std::chrono::duration<double>(now - _t0).count();
        const double audio = static_cast<double>(done) / _fs;
        char speed[32] = "";
        if (wall > 0.05) std::snprintf(speed, sizeof(speed), "  %.0fx real time", audio / wall);
        std::fprintf(stderr, "\r[%s] %3.0f%%  %.1f / %.1f s%s ", bar.c_str(), frac * 100.0, audio,
                     static_cast<double>(total) / _fs, speed);
        std::fflush(stderr);
        _drawn = true;
    }
    void end() {
        if (_drawn) std::fputc('\n', stderr);
        _drawn = false;
    }

private:
    double _fs;
    bool _on;
    bool _drawn = false;
    bool _complete = false;
    std::chrono::steady_clock::time_point _t0, _last{};
};

std::string db(double v, const char* unit) {
    if (!std::isfinite(v)) return std::string("-inf ") + unit;
    char b[48];
    std::snprintf(b, sizeof(b), "%.1f %s", v, unit);
    return b;
}

} // namespace

int render_main(int argc, char** argv) {
    RenderArgs a;
    const int p = parse(argc, argv, a);
    if (p > 0) return exit_ok;
    if (p < 0) {
        std::fprintf(stderr, "(earshot render --help for the options)\n");
        return exit_usage;
    }

    config::Config cfg;
    try {
        cfg = config::load_file(a.config);
    } catch (const config::ConfigErrors& e) {
        for (const auto& err : e.errors()) std::fprintf(stderr, "%s\n", err.format().c_str());
        return exit_config;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", a.config.c_str(), e.what());
        return exit_config;
    }

    try {
        double fs = 48000;
        {
            render::AudioReader probe(a.input); // the rate for the progress bar; clear errors early
            fs = probe.info().sample_rate;
        }
        if (!(fs >= 44100.0 && fs <= 192000.0))
            std::fprintf(
                stderr,
                "earshot render: warning: %.0f Hz is outside 44.1-192 kHz, where the A/C weightings are "
                "specified; levels may be off\n",
                fs);
        ProgressBar bar(fs, !a.quiet && isatty(fileno(stderr)));
        const auto t0 = std::chrono::steady_clock::now();
        render::RenderOptions opt;
        opt.block = a.block;
        opt.per_second = a.per_second;
        render::RenderReport r;
        try {
            r = render::render_file(cfg, a.input, a.out_dir, opt,
                                    [&](uint64_t done, uint64_t total) { bar.update(done, total); });
        } catch (...) {
            bar.end();
            throw;
        }
        bar.end();
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const std::string report_path = (std::filesystem::path(a.out_dir) / "report.json").string();
        render::write_report(r, report_path);
        if (!a.quiet) {
            for (const auto& m : r.musicians)
                std::printf(
                    "%-16s LAeq %-11s LAFmax %-11s LCpeak %-11s true peak %-13s limiter %.1f dB, %.2f s\n",
                    m.id.c_str(), db(m.laeq_dba, "dBA").c_str(), db(m.lafmax_dba, "dBA").c_str(),
                    db(m.lcpeak_dbc, "dBC").c_str(), db(m.true_peak_db_spl, "dB SPL").c_str(),
                    m.limiter_max_gain_reduction_db, m.limiter_active_s);
            std::fprintf(
                stderr, "earshot render: %.1f s of audio in %.2f s (%.0fx real time); %zu musician%s -> %s\n",
                r.duration_s, wall, wall > 0 ? r.duration_s / wall : 0.0, r.musicians.size(),
                r.musicians.size() == 1 ? "" : "s", report_path.c_str());
        }
        if (r.bad_input_blocks > 0)
            std::fprintf(stderr,
                         "earshot render: warning: %llu input blocks carried NaN/Inf (replaced by silence)\n",
                         static_cast<unsigned long long>(r.bad_input_blocks));
        return exit_ok;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "earshot render: %s\n", e.what());
        return exit_error;
    }
}

} // namespace earshot::cli
