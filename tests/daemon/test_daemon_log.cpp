// The daemon's log lines (sd-daemon priority prefixes, rate limit) and its dose glue (DoseKeeper:
// engine frames -> calibrated intervals -> day figures, freewheel not counted, resume from logs).
#include "earshot/config/loader.hpp"
#include "earshot/daemon/dose_keeper.hpp"
#include "earshot/daemon/log.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

using namespace earshot;

namespace {

std::string read_all(std::FILE* f) {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    char b[4096];
    std::size_t n;
    while ((n = std::fread(b, 1, sizeof b, f)) > 0) s.append(b, n);
    return s;
}

int count(const std::string& s, const std::string& what) {
    int n = 0;
    for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

} // namespace

TEST_CASE("log lines carry sd-daemon prefixes and keyed messages are rate-limited", "[log]") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f);
    daemon::log::configure(f, 3, 0.2);
    daemon::log::error("boom %d", 1);
    daemon::log::notice("hello");
    daemon::log::debug("hidden");
    for (int i = 0; i < 50; ++i) daemon::log::warn_limited("xrun", "xrun %d", i);
    std::string s = read_all(f);
    CHECK(s.find("<3>boom 1\n") != std::string::npos);
    CHECK(s.find("<5>hello\n") != std::string::npos);
    CHECK(s.find("hidden") == std::string::npos);
    CHECK(count(s, "<4>xrun ") == 3); // the burst, then silence
    // After the window, the suppressed count is reported once and the key may print again.
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    daemon::log::flush_suppressed();
    daemon::log::warn_limited("xrun", "xrun again");
    s = read_all(f);
    CHECK(s.find("... 47 more 'xrun' messages suppressed") != std::string::npos);
    CHECK(s.find("<4>xrun again") != std::string::npos);
    daemon::log::configure(stderr);
    std::fclose(f);
}

TEST_CASE("DoseKeeper turns engine frames into the musician's calibrated dose", "[dose]") {
    const std::string dir = (std::filesystem::temp_directory_path() / "earshot-keeper-test").string();
    std::filesystem::remove_all(dir);
    const config::Config cfg = config::load_string("version: 1\n"
                                                   "inputs:\n  - id: tone\n"
                                                   "musicians:\n"
                                                   "  - id: drums\n"
                                                   "    output: stereo\n"
                                                   "    calibration: { sine_dbfs: -20, db_spl: 94 }\n"
                                                   "    protection: { peak_ceiling_db_spl: 110 }\n"
                                                   "    mix: { sends: { tone: { gain_db: 0 } } }\n");
    engine::Engine e(48000, 256);
    REQUIRE(e.apply_config(cfg));
    const double t0 = 1.8e9;
    {
        daemon::DoseKeeper k(dir);
        k.configure(cfg, t0);
        k.bind(e);
        // One second at -20 dBFS peak sine on the left (94 dBA), 3 dB less on the right.
        engine::DoseFrame f;
        f.musician_key = e.musician_key("drums");
        f.samples = 48000;
        f.channels = 2;
        f.ears[0].sum_sq_a = 0.005 * 48000; // mean square of a 0.1-amplitude sine
        f.ears[1].sum_sq_a = 0.0025 * 48000;
        f.ears[0].c_peak = f.ears[1].c_peak = 0.1;
        f.ears[0].laf_max_ms = f.ears[1].laf_max_ms = 0.005;
        for (int i = 0; i < 60; ++i) {
            f.start_sample = uint64_t(i) * 48000;
            k.add(f, true, t0 + i + 1);
        }
        // Freewheel: computed, not heard -> not counted.
        for (int i = 60; i < 90; ++i) {
            f.start_sample = uint64_t(i) * 48000;
            k.add(f, false, t0 + 61);
        }
        dosimetry::DoseStatus st;
        REQUIRE(k.status("drums", t0 + 61, st));
        CHECK(st.today.seconds() == Approx(60));
        CHECK(st.today.laeq_dba() == Approx(94.0).margin(0.01)); // the louder ear
        CHECK(st.today.niosh_pct() == Approx(100.0 * 60 / (8 * 3600 / std::pow(2.0, 9.0 / 3))).epsilon(1e-3));
        const daemon::LastSecond* ls = k.last("drums");
        REQUIRE(ls);
        CHECK(ls->laeq_dba[0] == Approx(94.0).margin(0.01));
        CHECK(ls->laeq_dba[1] == Approx(91.0).margin(0.02));
        CHECK(ls->lcpeak_dbc == Approx(97.01).margin(0.01));
        k.flush();
    }
    // A new keeper (restart) resumes the day from the logs.
    daemon::DoseKeeper k2(dir);
    k2.configure(cfg, t0 + 120);
    dosimetry::DoseStatus st;
    REQUIRE(k2.status("drums", t0 + 120, st));
    CHECK(st.today.seconds() == Approx(60));
    CHECK(st.today.laeq_dba() == Approx(94.0).margin(0.01));
    std::filesystem::remove_all(dir);
}
