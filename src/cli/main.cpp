// earshot — the command-line tool (SPEC §1). Dispatches `earshot <subcommand> ...`.
#include "earshot/render/render.hpp"

#include <cstdio>
#include <cstring>
#include <string>

namespace earshot::cli {
int bench_main(int argc, char** argv);
int exposure_report_main(int argc, char** argv);
int demo_main(int argc, char** argv);
int control_main(const std::string& cmd, int argc, char** argv);
} // namespace earshot::cli

namespace {

void usage(std::FILE* f) {
    std::fprintf(f,
                 "usage: earshot <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  render    run the engine over a multichannel WAV: one WAV per musician + report.json\n"
                 "  generate  write a synthetic band (click, drums, bass, vocal, ...) as a multichannel WAV\n"
                 "  bench     measure the engine on a generated workload (default: stage-32x16)\n"
                 "  report    exposure logs as a table, CSV, JSON or an HTML page with charts\n"
                 "  demo      a generated band through earshotd, with a live view of levels and dose\n"
                 "\n"
                 "  status    the running daemon: JACK, levels, limiter, dose per musician (--json)\n"
                 "  top       live full-screen view of every musician (q quits)\n"
                 "  set       move a fader: earshot set MUSICIAN master DB | MUSICIAN INPUT gain DB ...\n"
                 "  scene     save | recall | delete NAME, list\n"
                 "  reload    re-read the daemon's config (like SIGHUP), errors printed\n"
                 "  dim       dim every mix (on|off, --db DB)\n"
                 "  panic     silence every mix at once (on|off)\n"
                 "  learn     MIDI learn (with a MIDI controller configured)\n"
                 "  guard     suspend | resume MUSICIAN: acknowledge the dose guard for one musician\n"
                 "  version   print the version\n"
                 "\n"
                 "`earshot <command> --help` describes each command's options.\n");
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "render") return earshot::cli::render_main(argc - 1, argv + 1);
    if (cmd == "generate") return earshot::cli::generate_main(argc - 1, argv + 1);
    if (cmd == "bench") return earshot::cli::bench_main(argc - 1, argv + 1);
    if (cmd == "report") return earshot::cli::exposure_report_main(argc - 1, argv + 1);
    if (cmd == "demo") return earshot::cli::demo_main(argc - 1, argv + 1);
    for (const char* c : {"status", "top", "set", "scene", "reload", "dim", "panic", "learn", "guard"})
        if (cmd == c) return earshot::cli::control_main(cmd, argc - 1, argv + 1);
    if (cmd == "version" || cmd == "--version") {
        std::printf("earshot %s\n", EARSHOT_VERSION);
        return 0;
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
        usage(stdout);
        return 0;
    }
    std::fprintf(stderr, "earshot: unknown command '%s'\n\n", cmd.c_str());
    usage(stderr);
    return 2;
}
