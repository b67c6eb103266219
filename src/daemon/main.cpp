// earshotd — the earshot daemon (SPEC §1; docs/daemon.md). A foreground JACK client; systemd
// supervises it. Exit status: 0 stopped by SIGTERM/SIGINT, 1 internal error, 64 usage,
// 73 state/runtime directory not usable, 78 invalid config.
#include "earshot/config/loader.hpp"
#include "earshot/daemon/control_server.hpp"
#include "earshot/daemon/daemon.hpp"
#include "earshot/daemon/log.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

void usage(std::FILE* f) {
    std::fprintf(f, "usage: earshotd [--config FILE] [--state-dir DIR] [--runtime-dir DIR] [--check-config]\n"
                    "                [--client-name NAME] [--no-mlock] [--debug]\n"
                    "\n"
                    "The earshot daemon: a JACK client that runs every musician's monitor mix with its\n"
                    "ceiling, meters and dosimeter (docs/daemon.md). Runs in the foreground.\n"
                    "\n"
                    "  --config FILE      the YAML config (default /etc/earshot/earshot.yaml)\n"
                    "  --state-dir DIR    exposure logs and the live mix (default $STATE_DIRECTORY, else\n"
                    "                     /var/lib/earshot)\n"
                    "  --runtime-dir DIR  status.json and the control socket (default $RUNTIME_DIRECTORY,\n"
                    "                     else /run/earshot)\n"
                    "  --check-config     validate the config, print every error, exit 0 (valid) or 78\n"
                    "  --client-name NAME the JACK client name, instead of the config's jack.client_name\n"
                    "  --no-mlock         do not lock memory\n"
                    "  --debug            debug log lines\n"
                    "  --version, --help\n"
                    "\n"
                    "It joins the JACK server named by JACK_DEFAULT_SERVER and never starts one.\n"
                    "Signals: SIGHUP reloads the config, SIGTERM/SIGINT fade out and stop.\n");
}

std::string env_dir(const char* var, const char* fallback) {
    const char* v = std::getenv(var);
    if (!v || !*v) return fallback;
    // systemd passes a colon-separated list when several directories are configured: the first.
    std::string s = v;
    const auto colon = s.find(':');
    return colon == std::string::npos ? s : s.substr(0, colon);
}

} // namespace

int main(int argc, char** argv) {
    using namespace earshot;
    // Before any thread exists (JACK's, RtMidi's): they inherit the mask, and only the control
    // loop receives SIGTERM/SIGINT/SIGHUP (from a signalfd).
    daemon::block_signals();
    daemon::Options opt;
    opt.state_dir = env_dir("STATE_DIRECTORY", "/var/lib/earshot");
    opt.runtime_dir = env_dir("RUNTIME_DIRECTORY", "/run/earshot");
    bool check = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "earshotd: %s needs a value\n", a.c_str());
                std::exit(daemon::exit_usage);
            }
            out = argv[++i];
        };
        if (a == "--config")
            value(opt.config_path);
        else if (a == "--state-dir")
            value(opt.state_dir);
        else if (a == "--runtime-dir")
            value(opt.runtime_dir);
        else if (a == "--check-config")
            check = true;
        else if (a == "--client-name")
            value(opt.client_name);
        else if (a == "--no-mlock")
            opt.lock_memory = false;
        else if (a == "--debug")
            daemon::log::set_debug(true);
        else if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("earshotd %s\n", EARSHOT_VERSION);
            return 0;
        } else {
            std::fprintf(stderr, "earshotd: unknown option '%s'\n\n", a.c_str());
            usage(stderr);
            return daemon::exit_usage;
        }
    }

    if (!opt.client_name.empty()) {
        const std::string& n = opt.client_name;
        const bool ok = n.size() <= 32 && std::all_of(n.begin(), n.end(), [](char c) {
                            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                        });
        if (!ok) {
            std::fprintf(stderr, "earshotd: --client-name '%s': use [A-Za-z0-9_-], 1 to 32 characters\n",
                         n.c_str());
            return daemon::exit_usage;
        }
    }

    config::Config cfg;
    try {
        cfg = config::load_file(opt.config_path);
        // What depends on this machine (the control socket's groups) is part of the validation:
        // --check-config says what the daemon would refuse.
        std::vector<config::ConfigError> host = daemon::check_host(cfg);
        if (!host.empty()) throw config::ConfigErrors(std::move(host));
    } catch (const config::ConfigErrors& e) {
        for (const auto& err : e.errors()) {
            if (check)
                std::fprintf(stderr, "%s\n", err.format().c_str());
            else
                daemon::log::error("%s", err.format().c_str());
        }
        if (!check) daemon::log::error("invalid config: not starting (exit 78)");
        return daemon::exit_config;
    }
    if (check) {
        // What only this machine can tell: the control groups exist, and this user may give the
        // socket to its group (run it as the daemon's user).
        if (std::string err; !daemon::ControlServer::check_config(cfg.control, err)) {
            std::fprintf(stderr, "%s: %s\n", opt.config_path.c_str(), err.c_str());
            return daemon::exit_config;
        }
        std::printf("%s: valid (%zu inputs, %zu musicians)\n", opt.config_path.c_str(), cfg.inputs.size(),
                    cfg.musicians.size());
        return 0;
    }

    ::signal(SIGPIPE, SIG_IGN);
    try {
        daemon::Daemon d(opt, std::move(cfg));
        const int rc = d.run();
        if (d.jack_abandoned()) {
            // A frozen server: tearing down the rest (RtMidi's JACK clients) would block on it.
            std::fflush(nullptr);
            std::_Exit(rc);
        }
        return rc;
    } catch (const std::exception& e) {
        daemon::log::error("fatal: %s", e.what());
        return daemon::exit_failure;
    }
}
