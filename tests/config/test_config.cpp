// Config loader: the SPEC §2 example, every kind of mistake with its message, line and column,
// all errors at once, and the example configs.
#include "../../src/config/params.hpp"
#include "earshot/config/loader.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
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
    CHECK(connect_matches(m.connect[0], "system:playback_12"));
    CHECK_FALSE(connect_matches(m.connect[0], "system:playback_1x"));
    CHECK(connect_matches(ConnectRule{"system:capture_1", false}, "system:capture_1"));
    CHECK_FALSE(connect_matches(ConnectRule{"system:capture_1", false}, "system:capture_10"));
    CHECK_FALSE(connect_matches(ConnectRule{"capture", true}, "system:capture_1")); // whole name only
    CHECK(connect_matches(ConnectRule{".*capture.*", true}, "system:capture_1"));
    CHECK(std::isinf(m.mix.master_db));
    CHECK(std::isinf(m.mix.sends[0].gain_db));
    CHECK(m.mix.sends[1].gain_db == 0.0);
    CHECK(m.calibration.sine_dbfs == -20);
    CHECK(m.calibration.db_spl == 94);
    CHECK(m.protection.lookahead_ms == 1.0);
    CHECK(m.protection.release_ms == 80);
    CHECK_FALSE(m.protection.max_laeq_1s_dba.has_value());
    CHECK(ceiling_dbfs(m) == Approx(110 - 117.0103).margin(1e-4));
    CHECK(m.name == "bass"); // the name defaults to the id
    CHECK(c.mixer.startup_ramp_ms == 2000);
    CHECK(c.input_index("vocal") == 1);
    CHECK(c.input_index("vox") == -1);
    CHECK(c.musician_index("bass") == 0);
    CHECK(c.musician_index("drums") == -1);
}

TEST_CASE("error formatting", "[config]") {
    ConfigError e{"a.yaml", 3, 7, "inputs[0].id", "bad"};
    CHECK(e.format() == "a.yaml:3:7: inputs[0].id: bad");
    e.key_path.clear();
    CHECK(e.format() == "a.yaml:3:7: bad");
    e.line = 0;
    CHECK(e.format() == "a.yaml: bad");
    const ConfigErrors all(
        {ConfigError{"a.yaml", 1, 1, "x", "one"}, ConfigError{"a.yaml", 2, 5, "y", "two"}});
    CHECK(std::string(all.what()) == "a.yaml:1:1: x: one\na.yaml:2:5: y: two");
    CHECK(all.errors().size() == 2);
}

TEST_CASE("each kind of mistake: message, line and column", "[config]") {
    SECTION("a mono output named like an input (same JACK port name)") {
        expect_one(
            head + "  - id: vocal\n    output: mono\n    protection: { peak_ceiling_db_spl: 110 }\n", 6, 9,
            "musicians[0].id: 'vocal' names this mono output's JACK port, which input 'vocal' (line 4) "
            "already uses");
        // Stereo outputs are <id>_L / <id>_R: no clash.
        CHECK(errors_of(head + "  - id: vocal\n    protection: { peak_ceiling_db_spl: 110 }\n").empty());
    }
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
    SECTION("regex with a huge repetition count (undefined behaviour in std::regex)") {
        expect_one("version: 1\ninputs:\n  - id: a\n    connect: [\"/x{03333333333333333333333,3}/\"]\n", 4,
                   15,
                   "inputs[0].connect[0]: invalid regular expression /x{03333333333333333333333,3}/: a "
                   "repetition count or back-reference has more than 9 digits");
        expect_one("version: 1\ninputs:\n  - id: a\n    connect: ['/(a)\\12345678901/']\n", 4, 15,
                   "more than 9 digits");
        // nine digits are fine for the check; std::regex itself then refuses the size
        expect_one("version: 1\ninputs:\n  - id: a\n    connect: [\"/x{999999999}/\"]\n", 4, 15,
                   "inputs[0].connect[0]: invalid regular expression /x{999999999}/: ");
        CHECK(load_string("version: 1\ninputs:\n  - id: a\n    connect: [\"/system:capture_[0-9]{1,2}/\"]\n")
                  .inputs[0]
                  .connect[0]
                  .is_regex);
    }
    SECTION("empty regex") {
        expect_one("version: 1\ninputs:\n  - id: a\n    connect: [system:capture_1, //]\n", 4, 33,
                   "inputs[0].connect[1]: empty regular expression //");
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
        expect_one("version: 1\ninputs: [a\n  b: c\n", 3, 4,
                   "t.yaml:3:4: YAML syntax error: end of sequence flow not found");
    }
    SECTION("duplicate musician id") {
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n  - protection: { "
                          "peak_ceiling_db_spl: 110 }\n    id: a\n",
                   9, 9, "musicians[1].id: duplicate musician id 'a' (first defined at line 6)");
    }
    SECTION("a key written twice in one mapping") {
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    output: mono\n    "
                          "output: stereo\n",
                   9, 5, "musicians[0].output: duplicate key 'output' (first defined at line 8)");
    }
    SECTION("a key repeated through an alias") {
        // yaml-cpp gives an alias the node (and so the position) of its anchor
        expect_one("version: 1\ninputs: [{id: a}]\njack: { &k client_name: x, *k : y }\n", 3, 9,
                   "jack.client_name: duplicate key 'client_name' (first defined at line 3)");
    }
    SECTION("a send written twice") {
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    mix:\n      sends:\n"
                          "        vocal: { gain_db: -3 }\n        vocal: { gain_db: 0 }\n",
                   11, 9, "musicians[0].mix.sends.vocal: duplicate key 'vocal' (first defined at line 10)");
    }
    SECTION("unknown key with nothing close lists the allowed keys") {
        expect_one("version: 1\njack: { port_prefix: x }\ninputs: [{id: a}]\n", 2, 9,
                   "jack.port_prefix: unknown key 'port_prefix' (allowed: client_name)");
    }
    SECTION("a short unknown key gets no far-fetched suggestion") {
        const auto e = errors_of("version: 1\ninputs: [{id: a, xy: 1}]\n");
        REQUIRE(e.size() == 1);
        CHECK(e[0].message.find("did you mean") == std::string::npos);
    }
    SECTION("too many connect entries on a stereo output") {
        expect_one(head + "  - id: a\n    connect: [a, b, c]\n    protection: { peak_ceiling_db_spl: 110 }\n",
                   7, 14, "musicians[0].connect: 3 entries, but this output has 2 channel(s)");
    }
    SECTION("bad JACK client name") {
        expect_one(
            "version: 1\njack:\n  client_name: my client\ninputs: [{id: a}]\n", 3, 16,
            "jack.client_name: 'my client' is not a valid client name ([A-Za-z0-9_-], 1 to 32 characters)");
    }
    SECTION("no inputs") {
        expect_one("version: 1\ninputs: []\n", 2, 9, "inputs: 0 inputs: between 1 and 256 allowed");
        expect_one("version: 1\nmusicians: []\n", 1, 1, "t.yaml:1:1: missing required key 'inputs'");
    }
    SECTION("a number that is not finite or not representable") {
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: .nan }\n", 7, 40,
                   "expected a number, got '.nan'");
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: 1e400 }\n", 7, 40,
                   "expected a number, got '1e400'");
        expect_one(head + "  - id: a\n    protection: { peak_ceiling_db_spl: off }\n", 7, 40,
                   "expected a number, got 'off'");
    }
    SECTION("a non-integer version") {
        expect_one("version: 1.5\ninputs: [{id: a}]\n", 1, 10, "version: 1.5 is not supported (must be 1)");
    }
    SECTION("an id that is not a string") {
        expect_one("version: 1\ninputs:\n  - id: [a, b]\n", 3, 9,
                   "inputs[0].id: expected an id ([a-z0-9_-], 1 to 32 characters), got a list");
    }
    SECTION("a send to a rejected input reports the input only") {
        expect_one("version: 1\ninputs:\n  - id: Vox\nmusicians:\n  - id: a\n    protection: { "
                   "peak_ceiling_db_spl: 110 }\n    mix: { sends: { Vox: { gain_db: 0 } } }\n",
                   3, 9, "inputs[0].id: 'Vox' is not a valid id");
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

TEST_CASE("errors are sorted by position, not by the order they are found", "[config]") {
    // Inputs are validated before musicians, but here the musicians come first in the file.
    const auto e = errors_of(R"(version: 1
musicians:
  - id: a
    protection: { peak_ceiling_db_spl: 150 }
inputs:
  - id: Bad
jack: { client_name: "" }
)");
    REQUIRE(e.size() == 3);
    CHECK(e[0].line == 4);
    CHECK(e[0].key_path == "musicians[0].protection.peak_ceiling_db_spl");
    CHECK(e[1].line == 6);
    CHECK(e[1].key_path == "inputs[0].id");
    CHECK(e[2].line == 7);
    CHECK(e[2].key_path == "jack.client_name");
}

TEST_CASE("limits on list sizes", "[config]") {
    std::string yaml = "version: 1\ninputs: [{id: a}]\nmusicians:\n";
    for (int i = 0; i < 65; ++i)
        yaml += "  - { id: m" + std::to_string(i) + ", protection: { peak_ceiling_db_spl: 110 } }\n";
    expect_one(yaml, 4, 3, "musicians: 65 musicians: at most 64 allowed");
    std::string inputs = "version: 1\ninputs:\n";
    for (int i = 0; i < 257; ++i) inputs += "  - id: in" + std::to_string(i) + "\n";
    expect_one(inputs, 3, 3, "inputs: 257 inputs: between 1 and 256 allowed");
    inputs = "version: 1\ninputs:\n  - id: a\n    connect: [";
    for (int i = 0; i < 40; ++i)
        inputs += std::string(i ? ", " : "") + "\"system:capture_" + std::to_string(i) + "\"";
    inputs += "]\n";
    CHECK(load_string(inputs).inputs[0].connect.size() == 40); // inputs take any number of sources
}

TEST_CASE("reference: eardrum is accepted", "[config]") {
    const Config c = load_string(head + R"(  - id: a
    calibration: { sine_dbfs: -12, db_spl: 100, reference: eardrum }
    protection: { peak_ceiling_db_spl: 120 }
)");
    const Musician& m = c.musicians[0];
    CHECK(m.calibration.reference == Reference::eardrum);
    CHECK(calibration_offset_db(m.calibration) == Approx(115.0103).margin(1e-4));
    CHECK(ceiling_dbfs(m) == 0.0); // 120 dB SPL would be +4.99 dBFS: capped at full scale
    expect_one(head + "  - id: a\n    calibration: { reference: coupler }\n    protection: { "
                      "peak_ceiling_db_spl: 110 }\n",
               7, 31, "musicians[0].calibration.reference: expected 'field' or 'eardrum', got 'coupler'");
}

TEST_CASE("the example configs load", "[config]") {
    for (const char* f : {"club-4piece.yaml", "stage-32x16.yaml", "band-render.yaml", "midi-example.yaml"}) {
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
            for (const Musician& m : c.musicians) {
                INFO(m.id);
                CHECK(m.output == OutputKind::stereo);
                CHECK(m.protection.max_laeq_1s_dba.has_value());
                CHECK(std::isfinite(m.mix.master_db));
                REQUIRE(m.mix.sends.size() == 32); // every input, each active
                for (const Send& s : m.mix.sends) CHECK((std::isfinite(s.gain_db) && !s.mute));
            }
        }
        if (std::string(f) == "club-4piece.yaml") {
            REQUIRE(c.musicians.size() == 4);
            const Musician& gtr = c.musicians[static_cast<std::size_t>(c.musician_index("guitar"))];
            CHECK(gtr.output == OutputKind::mono);
            for (const Musician& m : c.musicians)
                CHECK((m.protection.peak_ceiling_db_spl >= 110 && m.protection.peak_ceiling_db_spl <= 115));
        }
        if (std::string(f) == "band-render.yaml") {
            REQUIRE(c.inputs.size() == 4);
            CHECK(c.inputs[0].id == "click");
            CHECK(c.inputs[3].id == "vocal");
        }
    }
}

TEST_CASE("the table's defaults are the defaults a loaded config gets", "[config]") {
    // A config that writes nothing optional: every value is the loader's default.
    const Config c = load_string(R"(version: 1
inputs:
  - id: a
  - id: mic
    measurement: {}
musicians:
  - id: m
    protection: { peak_ceiling_db_spl: 110 }
    ambient: { input: mic }
    mix: { sends: { a: } }
controllers:
  - id: pad
    port: pad
    dose: {}
    dose_leds: [ { musician: m, note: 1 } ]
    mappings:
      - { cc: 7, action: master, musician: m }
)");
    const Musician& m = c.musicians[0];
    REQUIRE(c.controllers.size() == 1);
    const earshot::midi::ControllerConfig& k = c.controllers[0].midi;
    const earshot::midi::Mapping& mp = k.mappings.at(0);
    const std::map<std::string, double> loaded = {
        {"mixer.ramp_ms", c.mixer.ramp_ms},
        {"mixer.startup_ramp_ms", c.mixer.startup_ramp_ms},
        {"musicians[].calibration.sine_dbfs", m.calibration.sine_dbfs},
        {"musicians[].calibration.db_spl", m.calibration.db_spl},
        {"musicians[].protection.lookahead_ms", m.protection.lookahead_ms},
        {"musicians[].protection.release_ms", m.protection.release_ms},
        {"inputs[].measurement.sine_dbfs", c.inputs[1].measurement->sine_dbfs},
        {"inputs[].measurement.db_spl", c.inputs[1].measurement->db_spl},
        {"musicians[].ambient.isolation_db", m.ambient->isolation_db},
        {"dosimetry.keep_days", c.dosimetry.keep_days},
        {"dosimetry.who_mode", c.dosimetry.who_mode},
        {"control.max_clients", c.control.max_clients},
        {"dosimetry.guard_rate_db_per_min", c.dosimetry.guard_rate_db_per_min},
        {"dosimetry.guard_depth_db", c.dosimetry.guard_depth_db},
        {"dosimetry.rs2_dba", c.dosimetry.rs2_dba},
        {"musicians[].mix.master_db", m.mix.master_db},
        {"musicians[].mix.sends.<input>.gain_db", m.mix.sends[0].gain_db},
        {"musicians[].mix.sends.<input>.pan", m.mix.sends[0].pan},
        {"controllers[].pair_timeout_ms", k.pair_timeout_ms},
        {"controllers[].dose.amber_pct", k.dose.amber_pct},
        {"controllers[].dose.red_pct", k.dose.red_pct},
        {"controllers[].dose_leds[].channel", k.dose_leds.at(0).source.channel + 1.0},
        {"controllers[].mappings[].min_db", mp.min_db},
        {"controllers[].mappings[].max_db", mp.max_db},
        {"controllers[].mappings[].step_db", mp.step_db},
        {"controllers[].mappings[].pickup", mp.pickup},
    };
    for (const ParamSpec& p : param_table()) {
        INFO(p.key);
        CHECK(p.min <= p.max);
        if (std::isnan(p.def)) {
            // no default: required, or optional with "not set" meaning off
            CHECK((p.required || p.key == "musicians[].protection.max_laeq_1s_dba" ||
                   p.key == "dosimetry.warn_pct[]" || p.key == "show.length_min" ||
                   p.key.rfind("controllers[]", 0) == 0)); // MIDI numbers name controls: no default
            continue;
        }
        CHECK((p.def >= p.min && p.def <= p.max));
        const auto it = loaded.find(std::string(p.key));
        REQUIRE(it != loaded.end());
        CHECK(it->second == p.def);
    }
    CHECK_FALSE(m.protection.max_laeq_1s_dba.has_value());
}

TEST_CASE("dose guard, warnings and show settings", "[config]") {
    const Config d = load_string("version: 1\ninputs: [{id: a}]\n");
    CHECK(d.dosimetry.guard == GuardMode::off);
    CHECK(d.dosimetry.warn_pct == std::vector<double>{50, 80, 100});
    CHECK(d.show.end_min == -1);
    const Config c = load_string("version: 1\n"
                                 "dosimetry: { guard: limit, guard_budget: who, guard_rate_db_per_min: 1, "
                                 "guard_depth_db: 20, warn_pct: [25, 50, 100], rs2_dba: 95 }\n"
                                 "show: { end: \"23:30\" }\n"
                                 "inputs: [{id: a}]\n");
    CHECK(c.dosimetry.guard == GuardMode::limit);
    CHECK(c.dosimetry.guard_budget == GuardBudget::who);
    CHECK(c.dosimetry.guard_rate_db_per_min == 1);
    CHECK(c.dosimetry.guard_depth_db == 20);
    CHECK(c.dosimetry.warn_pct == std::vector<double>{25, 50, 100});
    CHECK(c.dosimetry.rs2_dba == 95);
    CHECK(c.show.end_min == 23 * 60 + 30);
    CHECK(load_string("version: 1\nshow: { length_min: 180 }\ninputs: [{id: a}]\n").show.length_min == 180);
    expect_one("version: 1\ndosimetry: { guard: always }\ninputs: [{id: a}]\n", 2, 21,
               "dosimetry.guard: 'always' is not one of off, warn, limit");
    expect_one("version: 1\ndosimetry: { warn_pct: [50, 40] }\ninputs: [{id: a}]\n", 2, 29,
               "dosimetry.warn_pct[1]: thresholds must be in ascending order");
    expect_one("version: 1\ndosimetry: { warn_pct: [50, x] }\ninputs: [{id: a}]\n", 2, 29,
               "dosimetry.warn_pct[1]: expected a number");
    expect_one("version: 1\ndosimetry: { rs2_dba: 120 }\ninputs: [{id: a}]\n", 2, 23,
               "dosimetry.rs2_dba: 120 is out of range [80, 100] dBA");
    expect_one("version: 1\nshow: { end: \"25:00\" }\ninputs: [{id: a}]\n", 2, 14,
               "show.end: '25:00' is not");
    expect_one("version: 1\nshow: { end: \"22:00\", length_min: 60 }\ninputs: [{id: a}]\n", 2, 35,
               "not both");
}

TEST_CASE("control socket settings", "[config]") {
    const Config c =
        load_string("version: 1\ncontrol: { group: audio, read_group: _monitor-1, max_clients: 32 }\n"
                    "inputs: [{id: a}]\nmusicians: []\n");
    CHECK(c.control.group == "audio");
    CHECK(c.control.read_group == "_monitor-1");
    CHECK(c.control.max_clients == 32);
    expect_one("version: 1\ncontrol: { group: Audio }\ninputs: [{id: a}]\n", 2, 19,
               "control.group: 'Audio' is not a group name");
    expect_one("version: 1\ncontrol: { max_clients: 0 }\ninputs: [{id: a}]\n", 2, 25,
               "control.max_clients: 0 is out of range [1, 1024]");
    expect_one("version: 1\ncontrol: { grup: x }\ninputs: [{id: a}]\n", 2, 12, "did you mean 'group'?");
}

TEST_CASE("number syntax", "[config]") {
    const std::string pre =
        head + "  - id: a\n    protection: { peak_ceiling_db_spl: 110 }\n    mix: { master_db: ";
    CHECK(load_string(pre + "+6 }\n").musicians[0].mix.master_db == 6.0);
    CHECK(load_string(pre + "-1.5e1 }\n").musicians[0].mix.master_db == -15.0);
    CHECK(load_string(pre + "\"-3\" }\n").musicians[0].mix.master_db == -3.0);
    expect_one(pre + "\"1,5\" }\n", 8, 23, "expected a number or 'off', got '1,5'");
    expect_one(pre + "0x10 }\n", 8, 23, "expected a number or 'off', got '0x10'");
    expect_one(pre + "+-3 }\n", 8, 23, "expected a number or 'off', got '+-3'");
    expect_one(pre + "6 dB }\n", 8, 23, "expected a number or 'off', got '6 dB'");
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

// --- MIDI controllers ------------------------------------------------------------------------------

namespace {

const std::string midi_head = R"(version: 1
inputs:
  - id: click
  - id: vocal
  - id: talk
musicians:
  - id: drums
    protection: { peak_ceiling_db_spl: 110 }
  - id: bass
    protection: { peak_ceiling_db_spl: 110 }
controllers:
)"; // the first controller starts at line 12

} // namespace

TEST_CASE("controllers: a good section loads with every source, kind and action", "[config][midi]") {
    namespace md = earshot::midi;
    const Config c = load_string(midi_head + R"(  - id: pad
    api: jack
    port: "/pysend.*:out/"
    feedback: leds
    profile: apc_mini
    musician: drums
    pair_timeout_ms: 20
    dose: { amber_pct: 40, red_pct: 90 }
    dose_leds: [ { note: 56 } ]
    mappings:
      - { cc: 48, action: send_gain, input: click, min_db: -40, max_db: 6, takeover: true, pickup: 0.05 }
      - { note: 0, action: send_mute, input: click }
      - { note: 1, action: more_me, inputs: [click, vocal], amount_db: 3 }
      - { note: 2, action: talkback, input: talk }
      - { note: 82, action: scene, scene: verse }
      - { note: 7, action: learn, target: drums.send.vocal }
      - { note: 98, channel: 1, action: panic }
      - { cc: 16, kind: relative_signed_bit, step_db: 1, action: master }
  - id: desk
    port: nanoKONTROL2
    mappings:
      - { cc14: [0, 32], channel: 16, action: master, musician: bass, curve: audio_taper }
      - { cc14: 1, action: master, musician: drums }
      - { pitch_bend: true, action: send_gain, musician: bass, input: vocal, curve: linear_gain }
      - { program: 3, action: scene, scene: chorus }
      - { cc: 64, action: dim_all, amount_db: -12 }
      - { cc: 65, action: send_mute, musician: bass, input: click, feedback: false }
    palette: { off: 0, green: 1, green_blink: 2, red: 3, red_blink: 4, amber: 5, amber_blink: 6 }
)");
    REQUIRE(c.controllers.size() == 2);
    const Controller& pad = c.controllers[0];
    CHECK(pad.id == "pad");
    CHECK(pad.api == Controller::Api::jack);
    CHECK(pad.port.is_regex);
    CHECK(pad.port.pattern == "pysend.*:out");
    REQUIRE(pad.feedback.has_value());
    CHECK_FALSE(pad.feedback->is_regex);
    CHECK(pad.midi.profile == md::Profile::apc_mini);
    CHECK(pad.midi.musician == std::optional<std::string>("drums"));
    CHECK(pad.midi.pair_timeout_ms == 20);
    CHECK(pad.midi.dose.amber_pct == 40);
    CHECK(pad.midi.dose.red_pct == 90);
    REQUIRE(pad.midi.dose_leds.size() == 1);
    CHECK(pad.midi.dose_leds[0].musician == "drums"); // the bound musician by default
    CHECK(pad.midi.dose_leds[0].source.channel == 0);
    REQUIRE(pad.midi.mappings.size() == 8);
    REQUIRE(pad.learn_targets.size() == 8);
    const auto& m = pad.midi.mappings;
    CHECK(m[0].source.type == md::SourceType::cc);
    CHECK(m[0].source.number == 48);
    CHECK(m[0].source.channel == md::any_channel);
    CHECK(m[0].kind == md::ControlKind::absolute);
    CHECK(m[0].min_db == -40);
    CHECK(m[0].max_db == 6);
    CHECK(m[0].takeover);
    CHECK(m[0].pickup == 0.05);
    CHECK(m[1].kind == md::ControlKind::toggle); // a pad mute toggles
    CHECK(m[2].kind == md::ControlKind::toggle);
    CHECK(m[2].action.inputs == std::vector<std::string>{"click", "vocal"});
    CHECK(m[2].action.amount_db == std::optional<double>(3.0));
    CHECK(m[3].kind == md::ControlKind::momentary); // talkback: while held
    CHECK(m[4].action.type == md::ActionType::scene);
    CHECK(m[4].action.scene == "verse");
    CHECK(m[5].action.type == md::ActionType::learn);
    CHECK(pad.learn_targets[5] == "drums.send.vocal");
    CHECK(pad.learn_targets[0].empty());
    CHECK(m[6].source.channel == 0);
    CHECK(m[6].kind == md::ControlKind::toggle); // a panic pad latches until pressed again
    CHECK(m[7].kind == md::ControlKind::relative_signed_bit);
    CHECK(m[7].step_db == 1);
    const Controller& desk = c.controllers[1];
    CHECK(desk.api == Controller::Api::alsa); // the default: USB controllers on a rig
    CHECK_FALSE(desk.feedback.has_value());
    const auto& d = desk.midi.mappings;
    CHECK(d[0].source.type == md::SourceType::cc14);
    CHECK(d[0].source.number == 0);
    CHECK(d[0].source.lsb == 32);
    CHECK(d[0].source.channel == 15);
    CHECK(d[0].curve == md::Curve::audio_taper);
    CHECK(d[1].source.lsb == 33);
    CHECK(d[2].source.type == md::SourceType::pitch_bend);
    CHECK(d[2].curve == md::Curve::linear_gain);
    CHECK(d[3].source.type == md::SourceType::program);
    CHECK(d[3].kind == md::ControlKind::toggle);
    CHECK(d[4].kind == md::ControlKind::absolute); // a latching CC switch (generic profile)
    CHECK_FALSE(d[5].feedback);
    REQUIRE(desk.midi.palette.has_value());
    CHECK(desk.midi.palette->value[6] == 6);
    const earshot::midi::Directory dir = midi_directory(c);
    CHECK(dir.scenes == std::vector<std::string>{"verse", "chorus"});
    CHECK(dir.musicians == std::vector<std::string>{"drums", "bass"});
}

TEST_CASE("controllers: port rules and learn targets", "[config][midi]") {
    CHECK(midi_port_matches(ConnectRule{"APC MINI", false}, "APC MINI:APC MINI MIDI 1 20:0"));
    CHECK_FALSE(midi_port_matches(ConnectRule{"apc mini", false}, "APC MINI:APC MINI MIDI 1 20:0"));
    CHECK(midi_port_matches(ConnectRule{"nanoKONTROL2.*", true}, "nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0"));
    CHECK_FALSE(midi_port_matches(ConnectRule{"KONTROL", true}, "nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0"));
    std::string err;
    auto t = parse_learn_target("drums.master", err);
    REQUIRE(t);
    CHECK(t->kind == LearnTarget::Kind::master);
    CHECK(t->str() == "drums.master");
    t = parse_learn_target("drums.send.click", err);
    REQUIRE(t);
    CHECK(t->kind == LearnTarget::Kind::send);
    CHECK(t->input == "click");
    t = parse_learn_target("drums.mute.click", err);
    REQUIRE(t);
    CHECK(t->kind == LearnTarget::Kind::mute);
    for (const char* bad :
         {"", "drums", "drums.", ".master", "drums.send", "drums.gain.click", "a.send.b.c"}) {
        INFO(bad);
        CHECK_FALSE(parse_learn_target(bad, err));
        CHECK(err.find("is not a learn target") != std::string::npos);
    }
}

TEST_CASE("controllers: each mistake, with its position", "[config][midi]") {
    const std::string c0 = midi_head + "  - id: pad\n    port: pad\n    mappings:\n"; // mappings from line 15
    expect_one(midi_head + "  - id: pad\n    port: pad\n    profle: apc_mini\n", 14, 5,
               "controllers[0].profle: unknown key 'profle' (did you mean 'profile'?)");
    expect_one(midi_head + "  - id: pad\n", 12, 5, "controllers[0]: missing required key 'port'");
    expect_one(midi_head + "  - id: pad\n    port: \"/(unclosed/\"\n", 13, 11,
               "controllers[0].port: invalid regular expression /(unclosed/");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    api: winmm\n", 14, 10,
               "controllers[0].api: expected 'alsa' or 'jack', got 'winmm'");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    profile: apc\n", 14, 14,
               "controllers[0].profile: expected one of generic, apc_mini");
    expect_one(midi_head + "  - id: pad\n    port: a\n  - id: pad\n    port: b\n", 14, 9,
               "controllers[1].id: duplicate controller id 'pad' (first defined at line 12)");
    expect_one(c0 + "      - { cc: 7, note: 3, action: master, musician: drums }\n", 15, 24,
               "controllers[0].mappings[0].note: one control per mapping: 'cc' is already given");
    expect_one(
        c0 + "      - { action: master, musician: drums }\n", 15, 9,
        "controllers[0].mappings[0]: missing the control: give one of cc, cc14, note, program, pitch_bend");
    expect_one(c0 + "      - { cc: 128, action: master, musician: drums }\n", 15, 15,
               "controllers[0].mappings[0].cc: 128 is out of range [0, 127]");
    expect_one(c0 + "      - { cc: 7.5, action: master, musician: drums }\n", 15, 15,
               "controllers[0].mappings[0].cc: expected a whole number, got '7.5'");
    expect_one(c0 + "      - { cc: 7, channel: 17, action: master, musician: drums }\n", 15, 27,
               "controllers[0].mappings[0].channel: 17 is out of range [1, 16]");
    expect_one(c0 + "      - { cc: 7, action: mastr, musician: drums }\n", 15, 26,
               "controllers[0].mappings[0].action: unknown action 'mastr' (did you mean 'master'?)");
    expect_one(c0 + "      - { cc: 7, musician: drums }\n", 15, 9,
               "controllers[0].mappings[0]: missing required key 'action'");
    expect_one(c0 + "      - { cc: 7, action: master, musician: drum }\n", 15, 44,
               "controllers[0].mappings[0].musician: no musician 'drum'");
    expect_one(c0 + "      - { cc: 7, action: send_gain, musician: drums, input: vox }\n", 15, 61,
               "controllers[0].mappings[0].input: no input 'vox'");
    expect_one(
        c0 + "      - { cc: 7, action: send_gain, musician: drums, input: click, min_db: 6, max_db: 0 }\n",
        15, 87, "controllers[0].mappings[0].max_db: 0 must be above min_db (6)");
    expect_one(c0 + "      - { program: 3, kind: momentary, action: panic }\n", 15, 29,
               "controllers[0].mappings[0].kind: kind 'momentary' does not work with a program control");
    expect_one(c0 + "      - { note: 3, kind: absolute, action: master, musician: drums }\n", 15, 26,
               "controllers[0].mappings[0].kind: kind 'absolute' does not work with a note control");
    expect_one(c0 + "      - { cc: 7, kind: sideways, action: master, musician: drums }\n", 15, 24,
               "controllers[0].mappings[0].kind: expected one of absolute");
    expect_one(c0 + "      - { note: 3, action: more_me, musician: drums, inputs: [click], amount_db: -3 }\n",
               15, 82, "controllers[0].mappings[0].amount_db: -3 is out of range (0, 12] dB");
    expect_one(c0 + "      - { note: 3, action: scene }\n", 15, 9,
               "controllers[0].mappings[0].scene: 'scene' needs a scene name");
    expect_one(
        c0 + "      - { note: 3, action: panic, curve: db }\n", 15, 42,
        "controllers[0].mappings[0].curve: 'curve' applies to gains (master, send_gain), not to 'panic'");
    expect_one(c0 + "      - { note: 3, action: panic, target: drums.master }\n", 15, 43,
               "controllers[0].mappings[0].target: a target has no meaning for 'panic' (only learn)");
    expect_one(c0 + "      - { note: 3, action: learn, target: drums.level }\n", 15, 43,
               "controllers[0].mappings[0].target: 'drums.level' is not a learn target");
    expect_one(c0 + "      - { note: 3, action: learn, target: drums.send.vox }\n", 15, 43,
               "controllers[0].mappings[0].target: no input 'vox'");
    expect_one(c0 + "      - { cc14: [7], action: master, musician: drums }\n", 15, 17,
               "controllers[0].mappings[0].cc14: expected [msb, lsb]");
    expect_one(c0 + "      - { cc14: [7, 7], action: master, musician: drums }\n", 15, 17,
               "controllers[0].mappings[0].cc14: the LSB controller must differ from the MSB controller");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    dose: { amber_pct: 80, red_pct: 50 }\n", 14, 11,
               "controllers[0].dose: amber_pct must be below red_pct");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    dose_leds: [ { musician: drums } ]\n", 14, 18,
               "controllers[0].dose_leds[0]: missing the LED's control: note or cc");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    palette: { off: 0 }\n", 14, 14,
               "controllers[0].palette: missing required keys 'green, green_blink, red, red_blink, amber, "
               "amber_blink'");
}

TEST_CASE("controllers: a bound controller cannot reach another musician (SPEC §3.5)", "[config][midi]") {
    const std::string c0 = midi_head + "  - id: pad\n    port: pad\n    musician: drums\n    mappings:\n";
    expect_one(c0 + "      - { cc: 7, action: master, musician: bass }\n", 16, 44,
               "controllers[0].mappings[0].musician: 'bass' is not this controller's musician 'drums'");
    expect_one(c0 + "      - { note: 7, action: learn, target: bass.master }\n", 16, 43,
               "controllers[0].mappings[0].target: 'bass' is not this controller's musician 'drums'");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    musician: drums\n    dose_leds: [ { musician: "
                           "bass, note: 1 } ]\n",
               15, 30, "controllers[0].dose_leds[0].musician: 'bass' is not this controller's musician");
    expect_one(midi_head + "  - id: pad\n    port: pad\n    musician: nobody\n", 14, 15,
               "controllers[0].musician: no musician 'nobody'");
    // Actions without a musician are narrowed to the bound one.
    const Config c =
        load_string(c0 + "      - { note: 1, action: panic }\n      - { cc: 7, action: master }\n");
    REQUIRE(c.controllers.size() == 1);
    std::vector<earshot::midi::BuildError> errs;
    const auto mapper = earshot::midi::Mapper::build(c.controllers[0].midi, midi_directory(c), errs);
    REQUIRE(mapper);
    CHECK(mapper->bound_musician() == 0);
    for (const auto& rm : mapper->mappings()) CHECK(rm.action.musician == 0);
}

TEST_CASE("controllers: every error at once", "[config][midi]") {
    const auto e = errors_of(midi_head + R"(  - id: pad
    port: pad
    mappings:
      - { cc: 300, action: master, musician: drums }
      - { note: 1, action: nothing }
  - id: Bad
    port: ""
)");
    REQUIRE(e.size() == 4);
    CHECK(e[0].key_path == "controllers[0].mappings[0].cc");
    CHECK(e[1].key_path == "controllers[0].mappings[1].action");
    CHECK(e[2].key_path == "controllers[1].id");
    CHECK(e[3].key_path == "controllers[1].port");
    CHECK(e[0].line < e[1].line);
}

TEST_CASE("controllers: default kinds of buttons by profile and action", "[config][midi]") {
    namespace md = earshot::midi;
    const Config c = load_string(midi_head + R"(  - id: nk2
    port: nanoKONTROL2
    profile: nanokontrol2
    mappings:
      - { cc: 48, action: send_mute, musician: bass, input: click }
      - { cc: 64, action: talkback }
      - { cc: 41, action: panic }
      - { cc: 42, action: scene, scene: verse }
  - id: gen
    port: desk
    mappings:
      - { cc: 48, action: send_mute, musician: bass, input: click }
      - { cc: 49, action: panic }
      - { note: 3, action: panic }
)");
    REQUIRE(c.controllers.size() == 2);
    const auto& k = c.controllers[0].midi.mappings;
    CHECK(k[0].kind == md::ControlKind::toggle);    // its factory buttons send 127 / 0 while held
    CHECK(k[1].kind == md::ControlKind::absolute);  // talkback: on while held (127), off at 0
    CHECK(k[2].kind == md::ControlKind::toggle);    // panic latches
    CHECK(k[3].kind == md::ControlKind::momentary); // a trigger
    const auto& g = c.controllers[1].midi.mappings;
    CHECK(g[0].kind == md::ControlKind::absolute); // a CC switch of unknown hardware: on at 64 and above
    CHECK(g[1].kind == md::ControlKind::toggle);
    CHECK(g[2].kind == md::ControlKind::toggle);
}

TEST_CASE("controllers: a controller with parse errors is checked too: every error at once",
          "[config][midi]") {
    // The audit's c1.yaml: before, the port error hid the five mapping errors and the dose LED's.
    const auto e = errors_of(midi_head + R"(  - id: x
    api: jack
    port: "/[unclosed/"
    musician: drums
    mappings:
      - { cc: 1, action: master, musician: bass }
      - { program: 2, kind: momentary, action: scene, scene: s }
      - { note: 3, action: panic, musician: bass }
      - { cc: 4, action: send_gain, input: click, takeover: true, kind: relative }
      - { note: 5, action: learn, target: bass.master }
  - id: y
    port: "foo"
    dose_leds: [ { musician: drums, cc: 0 } ]
    profile: nanokontrol2
    mappings:
      - { cc: 0, action: master, musician: drums }
      - { cc: 7, action: nothing, musician: nobody }
      - { cc: 8, kind: sideways, action: master, musician: drums }
)");
    std::vector<std::string> keys;
    for (const auto& x : e) keys.push_back(x.key_path);
    CHECK(keys ==
          std::vector<std::string>{"controllers[0].port", "controllers[0].mappings[0].musician",
                                   "controllers[0].mappings[1].kind", "controllers[0].mappings[2].musician",
                                   "controllers[0].mappings[3].takeover", "controllers[0].mappings[4].target",
                                   "controllers[1].dose_leds[0].source", "controllers[1].mappings[1].action",
                                   "controllers[1].mappings[2].kind"});
    // No consequence of a parse error is reported as an error of its own: the unknown action's
    // mapping says nothing about its unknown musician, the bad kind nothing about the default one.
    for (const auto& x : e) CHECK(x.message.find("nobody") == std::string::npos);
}
