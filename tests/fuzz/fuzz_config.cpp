// libFuzzer target for the YAML config loader (tests/fuzz/run_fuzz.sh config SECONDS).
//
// The loader must never crash or hang, and may throw nothing but ConfigErrors. Beyond "no crash",
// every outcome is checked against the loader's contract, and a breach aborts (= a finding):
//   - a rejected input yields at least one error, each with the file name and a sane position,
//     sorted by (line, col);
//   - an accepted input yields a Config whose values are all inside the documented ranges.
#include "earshot/config/loader.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace earshot::config;

void require(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_config: contract broken: %s\n", what);
    std::abort();
}

bool in(double v, double lo, double hi) {
    return v >= lo && v <= hi;
}
bool gain_ok(double g) {
    return (std::isinf(g) && g < 0) || in(g, -90, 12);
}

void check_errors(const ConfigErrors& e) {
    const auto& errs = e.errors();
    require(!errs.empty(), "ConfigErrors with no error");
    for (std::size_t i = 0; i < errs.size(); ++i) {
        require(errs[i].file == "fuzz.yaml", "error without the file name");
        require(errs[i].line >= 0 && errs[i].col >= 0, "negative position");
        require(!errs[i].message.empty(), "empty message");
        if (i > 0)
            require(errs[i - 1].line < errs[i].line ||
                        (errs[i - 1].line == errs[i].line && errs[i - 1].col <= errs[i].col),
                    "errors not sorted by position");
    }
}

void check_config(const Config& c) {
    require(c.version == 1, "version");
    require(!c.jack.client_name.empty() && c.jack.client_name.size() <= 32, "client name");
    require(in(c.mixer.ramp_ms, 1, 500) && in(c.mixer.startup_ramp_ms, 10, 10000), "mixer");
    require(!c.inputs.empty() && c.inputs.size() <= 256, "input count");
    require(c.musicians.size() <= 64, "musician count");
    for (const Input& i : c.inputs) {
        require(!i.id.empty() && i.id.size() <= 32, "input id");
        require(c.input_index(i.id) >= 0, "input lookup");
    }
    for (const Musician& m : c.musicians) {
        require(!m.id.empty() && m.id.size() <= 32, "musician id");
        require(m.connect.size() <= static_cast<std::size_t>(m.channels()), "connect entries");
        require(in(m.calibration.sine_dbfs, -60, 0) && in(m.calibration.db_spl, 40, 140), "calibration");
        require(in(m.protection.peak_ceiling_db_spl, 80, 140), "ceiling");
        require(ceiling_dbfs(m) <= 0.0 && std::isfinite(ceiling_dbfs(m)), "digital ceiling");
        require(!m.protection.max_laeq_1s_dba || in(*m.protection.max_laeq_1s_dba, 80, 110), "laeq cap");
        require(in(m.protection.lookahead_ms, 0.5, 1.5) && in(m.protection.release_ms, 10, 2000), "limiter");
        require(gain_ok(m.mix.master_db), "master");
        for (const Send& s : m.mix.sends) {
            require(c.input_index(s.input) >= 0, "send to an unknown input");
            require(gain_ok(s.gain_db) && in(s.pan, -1, 1), "send values");
            require(m.output == OutputKind::stereo || s.pan == 0.0, "pan on mono");
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        check_config(load_string(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml"));
    } catch (const ConfigErrors& e) {
        check_errors(e); // the expected outcome for most inputs
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_config: unexpected exception: %s\n", e.what());
        std::abort(); // anything but ConfigErrors is a bug
    } catch (...) {
        std::fprintf(stderr, "fuzz_config: unexpected non-standard exception\n");
        std::abort();
    }
    return 0;
}
