// MixState: the live mix on top of the config, its merge rule and its file (docs/daemon.md).
#include "earshot/config/loader.hpp"
#include "earshot/daemon/mix_state.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>

using namespace earshot;

namespace {

const char* yaml(double master, double tone_gain) {
    static std::string s;
    s = "version: 1\n"
        "inputs:\n  - id: tone\n  - id: kick\n"
        "musicians:\n"
        "  - id: drums\n"
        "    calibration: { sine_dbfs: -20, db_spl: 94 }\n"
        "    protection: { peak_ceiling_db_spl: 110 }\n"
        "    mix:\n      master_db: " +
        std::to_string(master) + "\n      sends:\n        tone: { gain_db: " + std::to_string(tone_gain) +
        ", pan: -0.5 }\n";
    return s.c_str();
}

std::string tmp_path() {
    char t[] = "/tmp/earshot-mix-XXXXXX";
    const int fd = mkstemp(t);
    REQUIRE(fd >= 0);
    close(fd);
    return t;
}

} // namespace

TEST_CASE("sync takes the config, live moves stay until the config changes that value", "[mix]") {
    daemon::MixState st;
    st.sync(config::load_string(yaml(0, -6)));
    const auto* m = st.find("drums");
    REQUIRE(m);
    CHECK(m->master_live == 0);
    CHECK(m->sends.at("tone").live.gain_db == -6);
    CHECK(m->sends.at("tone").live.pan == -0.5);
    CHECK(std::isinf(m->sends.at("kick").live.gain_db)); // not listed: off

    REQUIRE(st.set_master("drums", -10));
    REQUIRE(st.set_send("drums", "kick", {-12, 0.25, false}));
    CHECK_FALSE(st.set_master("nobody", 0));
    CHECK_FALSE(st.set_send("drums", "nothing", {0, 0, false}));
    CHECK(st.dirty());

    // Same config again: the live moves stay.
    st.sync(config::load_string(yaml(0, -6)));
    CHECK(st.find("drums")->master_live == -10);
    CHECK(st.find("drums")->sends.at("kick").live.gain_db == -12);

    // The config's master changed: it wins; the kick move (config unchanged there) stays.
    st.sync(config::load_string(yaml(-3, -6)));
    CHECK(st.find("drums")->master_live == -3);
    CHECK(st.find("drums")->sends.at("kick").live.gain_db == -12);

    const config::Config eff = st.effective(config::load_string(yaml(-3, -6)));
    REQUIRE(eff.musicians.size() == 1);
    CHECK(eff.musicians[0].mix.master_db == -3);
    REQUIRE(eff.musicians[0].mix.sends.size() == 2);
    CHECK(eff.musicians[0].mix.sends[0].input == "tone");
    CHECK(eff.musicians[0].mix.sends[1].input == "kick");
    CHECK(eff.musicians[0].mix.sends[1].gain_db == -12);
    CHECK(eff.musicians[0].mix.sends[1].pan == 0.25);
}

TEST_CASE("the file round-trips, -inf included, and bad files are rejected whole", "[mix]") {
    daemon::MixState st;
    st.sync(config::load_string(yaml(-1.5, -6)));
    st.set_send("drums", "tone", {-std::numeric_limits<double>::infinity(), 0.75, true});
    const std::string path = tmp_path();
    std::string err;
    REQUIRE(st.save(path, err));
    CHECK_FALSE(st.dirty());

    daemon::MixState back;
    REQUIRE(back.load(path, err));
    const auto* m = back.find("drums");
    REQUIRE(m);
    CHECK(m->master_live == -1.5);
    CHECK(std::isinf(m->sends.at("tone").live.gain_db));
    CHECK(m->sends.at("tone").live.mute);
    CHECK(m->sends.at("tone").live.pan == 0.75);
    CHECK(m->sends.at("tone").base.gain_db == -6);

    const char* bad[] = {
        "{not json",
        "[]",
        "{\"version\": 2, \"musicians\": {}}",
        "{\"version\": 1}",
        "{\"version\": 1, \"musicians\": {\"d\": {\"master\": {\"live\": 50, \"base\": 0}, \"sends\": {}}}}",
        "{\"version\": 1, \"musicians\": {\"d\": {\"master\": {\"live\": 0, \"base\": 0}, \"sends\": {\"t\": "
        "{\"live\": {\"gain_db\": 0, \"pan\": 3, \"mute\": false}, \"base\": {\"gain_db\": 0, \"pan\": 0, "
        "\"mute\": false}}}}}}",
        "{\"version\": 1, \"musicians\": {\"d\": {\"master\": {\"live\": 0, \"base\": 0}, \"sends\": {\"t\": "
        "{\"live\": {\"gain_db\": 0, \"pan\": 0}, \"base\": {\"gain_db\": 0, \"pan\": 0, \"mute\": "
        "false}}}}}}",
    };
    for (const char* text : bad) {
        std::ofstream(path) << text;
        daemon::MixState s2;
        std::string e2;
        CHECK_FALSE(s2.load(path, e2));
        CHECK_FALSE(e2.empty());
        CHECK(s2.musicians().empty());
    }
    std::remove(path.c_str());
    daemon::MixState none;
    CHECK(none.load(path, err)); // missing: an empty state
    CHECK(none.musicians().empty());
}
