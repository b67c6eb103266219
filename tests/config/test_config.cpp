// Config loader: the SPEC §2 example, every kind of mistake with its message, line and column,
// all errors at once, and the example configs.
#include "../../src/config/params.hpp"
#include "earshot/config/loader.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace earshot::config;

namespace {

std::vector<ConfigError> errors_of(const std::string& yaml) {
    try {
        (void)load_string(yaml, "t.yaml");
    } catch (const ConfigErrors& e) {
        return e.errors();
    }
    return {};
}

// Exactly one error, at line:col, whose formatted text contains `text`.
void expect_one(const std::string& yaml, int line, int col, const std::string& text) {
    const auto e = errors_of(yaml);
    INFO(yaml);
    REQUIRE(e.size() == 1);
    INFO(e[0].format());
    CHECK(e[0].line == line);
    CHECK(e[0].col == col);
    CHECK(e[0].format().find(text) != std::string::npos);
}

const std::string head =
    "version: 1\ninputs:\n  - id: click\n  - id: vocal\nmusicians:\n"; // musicians at line 6

} // namespace

TEST_CASE("the SPEC §2 example loads with its values", "[config]") {
    const std::string yaml = R"(version: 1
jack:
  client_name: earshot            # JACK client name (default earshot)
inputs:                           # band inputs; order = channel order for `earshot render`
  - id: click                     # [a-z0-9_-]+, unique; JACK input port <client>:<id>
    connect: ["system:capture_1"] # optional; exact port names, or /regex/
  - id: vocal
musicians:
  - id: drums                     # [a-z0-9_-]+, unique; stable identity of the person for dose
    name: Ruben                   # optional display name
    output: stereo                # mono -> port <client>:<id>; stereo -> <client>:<id>_L and _R
    connect: ["system:playback_1", "system:playback_2"]
    calibration:
      sine_dbfs: -20              # a 1 kHz sine whose PEAK is at this level (0 dBFS = amplitude 1.0) ...
      db_spl: 94                  # ... measures this (RMS) sound pressure level at the ear
      reference: field
    protection:
      peak_ceiling_db_spl: 115    # absolute ceiling, PEAK sound pressure level at the ear (see below)
      max_laeq_1s_dba: 100        # optional short-term loudness cap (A-weighted 1 s level)
    mix:
      master_db: 0
      sends:                      # inputs not listed are off
        click: { gain_db: -6 }
        vocal: { gain_db: 0, pan: -0.3, mute: false }   # pan -1..1, stereo outputs only
)";
    const Config c = load_string(yaml, "spec.yaml");
    REQUIRE(c.inputs.size() == 2);
    CHECK(c.inputs[0].connect.size() == 1);
    CHECK(c.inputs[0].connect[0].pattern == "system:capture_1");
    CHECK_FALSE(c.inputs[0].connect[0].is_regex);
    REQUIRE(c.musicians.size() == 1);
    const Musician& m = c.musicians[0];
    CHECK(m.id == "drums");
    CHECK(m.name == "Ruben");
    CHECK(m.channels() == 2);
    CHECK(m.connect.size() == 2);
    CHECK(m.protection.peak_ceiling_db_spl == 115);
    REQUIRE(m.protection.max_laeq_1s_dba.has_value());
    CHECK(*m.protection.max_laeq_1s_dba == 100);
    REQUIRE(m.mix.sends.size() == 2);
    CHECK(m.mix.sends[1].input == "vocal");
    CHECK(m.mix.sends[1].pan == Approx(-0.3));
    CHECK(calibration_offset_db(m.calibration) == Approx(117.0103).margin(1e-4));
    Musician m110 = m;
    m110.protection.peak_ceiling_db_spl = 110;
    CHECK(ceiling_dbfs(m110) == Approx(-7.0103).margin(1e-4));
    CHECK(std::pow(10.0, ceiling_dbfs(m110) / 20) == Approx(0.4462).margin(1e-4));
    CHECK(c.mixer.ramp_ms == 20); // default
    CHECK(c.jack.client_name == "earshot");
}

TEST_CASE("defaults, off gains and regex connects", "[config]") {
    const Config c = load_string(head + R"(  - id: bass
    output: mono
    connect: ["/^system:playback_[0-9]+$/"]
    protection: { peak_ceiling_db_spl: 110 }
    mix:
      master_db: off
      sends:
        click: { gain_db: -inf }
        vocal:
)");
    const Musician& m = c.musicians[0];
    CHECK(m.channels() == 1);
    CHECK(m.connect[0].is_regex);
    CHECK(m.connect[0].pattern == "^system:playback_[0-9]+$");
    CHECK(std::isinf(m.mix.master_db));
    CHECK(std::isinf(m.mix.sends[0].gain_db));
    CHECK(m.mix.sends[1].gain_db == 0.0);
    CHECK(m.calibration.sine_dbfs == -20);
    CHECK(m.calibration.db_spl == 94);
    CHECK(m.protection.lookahead_ms == 1.0);
    CHECK(m.protection.release_ms == 80);
    CHECK_FALSE(m.protection.max_laeq_1s_dba.has_value());
    CHECK(ceiling_dbfs(m) == Approx(110 - 117.0103).margin(1e-4));
}

TEST_CASE("each kind of mistake: message, line and column", "[config]") {
    SECTION("out of range") {
        expect_one(
            head + "  - id: a\n    protection: { peak_ceiling_db_spl: 150 }\n", 7, 40,
            "t.yaml:7:40: musicians[0].protection.peak_ceiling_db_spl: 150 is out of range [80, 140] dB SPL");
    }
    SECTION("wrong type") {
        expect_one(head + "  - id: a\n    protection:\n      peak_ceiling_db_spl: loud\n", 8, 28,
                   "musicians[0].protection.peak_ceiling_db_spl: expected a number, got 'loud'");
    }
    SECTION("unknown key with a suggestion") {
        expect_one(
            head +
                "  - id: a\n    calibraton: { db_spl: 94 }\n    protection: { peak_ceiling_db_spl: 110 }\n",
            7, 5, "musicians[0].calibraton: unknown key 'calibraton' (did you mean 'calibration'?)");
    }
    SECTION("missing required key") {
        expect_one(head + "  - id: a\n    protection: { max_laeq_1s_dba: 100 }\n", 7, 17,
                   "musicians[0].protection: missing required key 'peak_ceiling_db_spl'");
    }
    SECTION("missing protection altogether") {
        expect_one(head + "  - id: a\n    output: mono\n", 6, 5, "missing required key 'protection'");
    }
    SECTION("duplicate id") {
        expect_one("version: 1\ninputs:\n  - id: click\n  - id: click\n", 4, 9,
                   "inputs[1].id: duplicate input id 'click' (first defined at line 3)");
    }
    SECTION("unknown send input with a suggestion") {
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    mix:\n      sends:\n "
                          "       vocals: { gain_db: 0 }\n",
                   10, 9, "musicians[0].mix.sends.vocals: unknown input 'vocals' (did you mean 'vocal'?)");
    }
    SECTION("bad id characters") {
        expect_one("version: 1\ninputs:\n  - id: Lead Vox\n", 3, 9,
                   "inputs[0].id: 'Lead Vox' is not a valid id ([a-z0-9_-], 1 to 32 characters)");
    }
    SECTION("bad regex") {
        expect_one("version: 1\ninputs:\n  - id: a\n    connect: [\"/system:(capture/\"]\n", 4, 15,
                   "inputs[0].connect[0]: invalid regular expression /system:(capture/");
    }
    SECTION("pan on a mono output") {
        expect_one(head + "  - id: a\n    output: mono\n    protection: { peak_ceiling_db_spl: 110 }\n    "
                          "mix:\n      sends:\n        vocal: { pan: 0.5 }\n",
                   11, 23, "pan has no effect on a mono output");
    }
    SECTION("too many connect entries") {
        expect_one(head + "  - id: a\n    output: mono\n    connect: [a, b]\n    protection: { "
                          "peak_ceiling_db_spl: 110 }\n",
                   8, 14, "2 entries, but this output has 1 channel(s)");
    }
    SECTION("bad version") {
        expect_one("version: 2\ninputs:\n  - id: a\n", 1, 10, "version: 2 is not supported (must be 1)");
    }
    SECTION("missing version") {
        expect_one("inputs:\n  - id: a\n", 1, 1, "t.yaml:1:1: missing required key 'version'");
    }
    SECTION("gain out of range mentions off") {
        expect_one(
            head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    mix: { master_db: 20 }\n", 8,
            23, "20 is out of range [-90, 12] dB (or 'off')");
    }
    SECTION("bad output kind") {
        expect_one(head + "  - id: a\n    output: quad\n    protection: { peak_ceiling_db_spl: 110 }\n", 7,
                   13, "musicians[0].output: expected 'mono' or 'stereo', got 'quad'");
    }
    SECTION("YAML syntax error") {
        const auto e = errors_of("version: 1\ninputs: [a\n  b: c\n");
        REQUIRE(e.size() == 1);
        CHECK(e[0].line >= 2);
        CHECK(e[0].format().find("YAML syntax error") != std::string::npos);
    }
    SECTION("file not found") {
        try {
            (void)load_file("/nonexistent/earshot.yaml");
            FAIL("no error");
        } catch (const ConfigErrors& e) {
            REQUIRE(e.errors().size() == 1);
            CHECK(e.errors()[0].line == 0);
            CHECK(e.errors()[0].format() ==
                  "/nonexistent/earshot.yaml: cannot read the file (missing or not readable)");
        }
    }
}

TEST_CASE("all errors are reported at once, in file order", "[config]") {
    const auto e = errors_of(R"(version: 1
inputz: []
inputs:
  - id: click
  - id: click
musicians:
  - id: a
    protection: { peak_ceiling_db_spl: 20, release_ms: 5000 }
    mix:
      sends:
        clik: { gain_db: 99 }
)");
    REQUIRE(e.size() == 5);
    CHECK(e[0].line == 2); // unknown key inputz
    CHECK(e[0].message.find("did you mean 'inputs'") != std::string::npos);
    CHECK(e[1].line == 5); // duplicate
    CHECK(e[2].line == 8);
    CHECK(e[3].line == 8);
    CHECK(e[2].col < e[3].col);
    CHECK(e[4].line == 11); // unknown input (its gain is not checked further)
    try {
        (void)load_string("version: 1\ninputz: []\ninputs: [{id: a}, {id: a}]\n", "x.yaml");
    } catch (const ConfigErrors& ex) {
        CHECK(std::string(ex.what()).find("x.yaml:2:1: inputz: unknown key") != std::string::npos);
        CHECK(std::string(ex.what()).find('\n') != std::string::npos);
    }
}

TEST_CASE("the example configs load", "[config]") {
    for (const char* f : {"club-4piece.yaml", "stage-32x16.yaml", "band-render.yaml"}) {
        const std::string path = std::string(EARSHOT_SOURCE_DIR) + "/configs/" + f;
        INFO(path);
        Config c;
        try {
            c = load_file(path);
        } catch (const ConfigErrors& e) {
            FAIL(e.what());
        }
        CHECK_FALSE(c.musicians.empty());
        if (std::string(f) == "stage-32x16.yaml") {
            CHECK(c.inputs.size() == 32);
            CHECK(c.musicians.size() == 16);
            for (const Musician& m : c.musicians) CHECK(m.mix.sends.size() == 32);
        }
        if (std::string(f) == "band-render.yaml") {
            REQUIRE(c.inputs.size() == 4);
            CHECK(c.inputs[0].id == "click");
            CHECK(c.inputs[3].id == "vocal");
        }
    }
}

TEST_CASE("every parameter of the table is documented", "[config]") {
    std::ifstream f(std::string(EARSHOT_SOURCE_DIR) + "/docs/configuration.md");
    REQUIRE(f);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string doc = ss.str();
    for (const ParamSpec& p : param_table()) {
        INFO(p.key);
        CHECK(doc.find("`" + std::string(p.key) + "`") != std::string::npos);
    }
}

TEST_CASE("dosimetry, measurement inputs and ambient", "[config]") {
    const Config c = load_string(R"(version: 1
dosimetry: { day_starts: "05:30", who_mode: 2 }
inputs:
  - id: mix
  - id: stage_mic
    measurement: { sine_dbfs: -26, db_spl: 114 }
musicians:
  - id: drums
    protection: { peak_ceiling_db_spl: 110 }
    ambient: { input: stage_mic, isolation_db: 30 }
)");
    CHECK(c.dosimetry.day_starts_min == 5 * 60 + 30);
    CHECK(c.dosimetry.who_mode == 2);
    REQUIRE(c.inputs[1].measurement.has_value());
    CHECK(measurement_offset_db(*c.inputs[1].measurement) == Approx(114 + 26 + 3.0103).margin(1e-4));
    REQUIRE(c.musicians[0].ambient.has_value());
    CHECK(c.musicians[0].ambient->input == "stage_mic");
    CHECK(c.musicians[0].ambient->isolation_db == 30);
    CHECK(load_string("version: 1\ninputs: [{id: a}]\n").dosimetry.day_starts_min == 360);

    expect_one("version: 1\ndosimetry: { day_starts: \"25:00\" }\ninputs: [{id: a}]\n", 2, 26,
               "dosimetry.day_starts: '25:00' is not a local time HH:MM");
    expect_one("version: 1\ndosimetry: { who_mode: 3 }\ninputs: [{id: a}]\n", 2, 24,
               "3 is out of range [1, 2]");
    expect_one(head +
                   "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    ambient: { input: vocal }\n",
               8, 23, "input 'vocal' is not a measurement mic");
    expect_one(head +
                   "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    ambient: { input: stage }\n",
               8, 23, "unknown input 'stage'");
    expect_one(
        head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    ambient: { isolation_db: 20 }\n",
        8, 14, "missing required key 'input'");
}
