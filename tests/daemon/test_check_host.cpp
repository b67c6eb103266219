// daemon::check_host(): what the config loader cannot check because it depends on the machine (the
// control socket's groups), with the value's file:line:col, in block and flow style.
#include "earshot/config/loader.hpp"
#include "earshot/daemon/daemon.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace earshot;

namespace {

const char* body = "inputs:\n"
                   "  - id: a\n"
                   "musicians:\n"
                   "  - id: m\n"
                   "    output: mono\n"
                   "    calibration: { sine_dbfs: -20, db_spl: 94 }\n"
                   "    protection: { peak_ceiling_db_spl: 110 }\n"
                   "    mix: { sends: { a: { gain_db: 0 } } }\n";

std::vector<config::ConfigError> check_text(const std::string& control) {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("earshot-check-host-" + std::to_string(::getpid()) + ".yaml"))
                                 .string();
    std::ofstream(path) << "version: 1\n" << control << body;
    const config::Config cfg = config::load_file(path);
    auto errs = daemon::check_host(cfg);
    std::remove(path.c_str());
    for (auto& e : errs) e.file = "x.yaml"; // the temporary name is not the point
    return errs;
}

} // namespace

TEST_CASE("check_host: groups that exist pass, unknown ones are config errors with their position",
          "[host]") {
    CHECK(check_text("").empty());
    CHECK(check_text("control: { group: root }\n").empty());

    auto e = check_text("control: { group: earshot-nosuch-group }\n");
    REQUIRE(e.size() == 1);
    CHECK(e[0].format() == "x.yaml:2:19: control.group: no group 'earshot-nosuch-group' on this machine "
                           "(getent group earshot-nosuch-group; create it, or leave the key out)");

    // Block style, quoted, a comment that names the key too, and both keys wrong.
    e = check_text("# control: group: earshot-nosuch-a\n"
                   "control:\n"
                   "  read_group: 'earshot-nosuch-b'\n"
                   "  group: earshot-nosuch-a   # the socket's group\n");
    REQUIRE(e.size() == 2);
    CHECK(e[0].key_path == "control.group");
    CHECK(e[0].line == 5);
    CHECK(e[0].col == 10);
    CHECK(e[1].key_path == "control.read_group");
    CHECK(e[1].line == 4);
    CHECK(e[1].col == 15);
}
