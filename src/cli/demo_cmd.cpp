// `earshot demo` (SPEC §7; docs/demo.md): the newcomer's first run. Brings up a private JACK server
// on the dummy backend when none is running, plays a generated band (click, drums, bass, vocal) from
// its own JACK client, starts earshotd with configs/demo.yaml and shows each musician's level,
// limiter and dose live, then cleans everything up. Exit: 0 done, 1 error, 2 usage.
#include "earshot/render/band.hpp"
#include "status_view.hpp"

#include <boost/json.hpp>
#include <jack/jack.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace earshot::cli {

int exposure_report_main(int argc, char** argv);

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::atomic<bool> g_stop{false};

void on_signal(int) {
    g_stop.store(true);
}

void demo_usage(std::FILE* f) {
    std::fprintf(f, "usage: earshot demo [--seconds N] [--config FILE] [--keep DIR]\n"
                    "\n"
                    "Plays a generated band through earshotd and shows every musician's level, limiter\n"
                    "and dose live (docs/demo.md). Starts a private JACK server on the dummy backend\n"
                    "when none is running (JACK_DEFAULT_SERVER is honoured), and cleans up after itself.\n"
                    "\n"
                    "  --seconds N    how long the show runs (default 30; Ctrl-C or a hangup ends it early)\n"
                    "  --config FILE  the daemon's config (default: configs/demo.yaml)\n"
                    "  --keep DIR     keep the exposure logs and earshotd.log in DIR (default: a temporary\n"
                    "                 directory, removed at the end)\n");
}

fs::path self_dir() {
    std::error_code ec;
    const fs::path p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path(".") : p.parent_path();
}

// The build tree (build/src/cli/earshot -> build/src/daemon/earshotd, <source>/configs) or an
// installation (<prefix>/bin/earshot -> <prefix>/bin/earshotd, <prefix>/share/earshot/configs).
std::string find_daemon() {
    const fs::path d = self_dir();
    for (const fs::path& p : {d / "earshotd", d / ".." / "daemon" / "earshotd"})
        if (::access(p.c_str(), X_OK) == 0) return fs::weakly_canonical(p).string();
    return "earshotd"; // PATH
}

std::string find_config() {
    const fs::path d = self_dir();
    for (const fs::path& p :
         {d / ".." / ".." / ".." / "configs" / "demo.yaml",
          d / ".." / "share" / "earshot" / "configs" / "demo.yaml", fs::path("configs/demo.yaml")})
        if (fs::exists(p)) return fs::weakly_canonical(p).string();
    return "";
}

bool server_running() {
    // Client names are unique per machine, not per server (jack-testing.md pitfall 1): the pid.
    const std::string name = "earshot-demo-probe-" + std::to_string(::getpid());
    jack_status_t st{};
    jack_client_t* c = jack_client_open(name.c_str(), JackNoStartServer, &st);
    if (!c) return false;
    jack_client_close(c);
    return true;
}

// The band player: one JACK client with a port per part, streaming BandGenerator (no allocation in
// the process callback).
struct Player {
    jack_client_t* client = nullptr;
    jack_port_t* ports[4] = {};
    std::unique_ptr<render::BandGenerator> band;
    float* bufs[4] = {};

    static int process(jack_nframes_t n, void* arg) noexcept {
        Player& p = *static_cast<Player*>(arg);
        for (int c = 0; c < 4; ++c) p.bufs[c] = static_cast<float*>(jack_port_get_buffer(p.ports[c], n));
        p.band->generate(p.bufs, n);
        return 0;
    }

    bool open(std::string& err) {
        const std::string name = "earshot-band-" + std::to_string(::getpid());
        jack_status_t st{};
        client = jack_client_open(name.c_str(),
                                  static_cast<jack_options_t>(JackNoStartServer | JackUseExactName), &st);
        if (!client) {
            err = "cannot open the band's JACK client";
            return false;
        }
        band = std::make_unique<render::BandGenerator>(4, double(jack_get_sample_rate(client)), 2026);
        for (int c = 0; c < 4; ++c) {
            ports[c] = jack_port_register(client, render::band_part_name(c), JACK_DEFAULT_AUDIO_TYPE,
                                          JackPortIsOutput, 0);
            if (!ports[c]) {
                err = "cannot register the band's ports";
                return false;
            }
        }
        jack_set_process_callback(client, &Player::process, this);
        if (jack_activate(client) != 0) {
            err = "cannot activate the band's JACK client";
            return false;
        }
        return true;
    }
    ~Player() {
        if (client) {
            jack_deactivate(client);
            jack_client_close(client);
        }
    }
};

// Starts a child in a process group of its own, so that a terminal's Ctrl-C or hangup reaches only
// the demo, which then stops the children in order (earshotd first, so its fade-out runs while the
// server is still there). If the demo itself dies, the Guardian stops them, in the same order.
pid_t spawn(const std::vector<std::string>& args, const std::string& log_path) {
    const pid_t pid = ::fork();
    if (pid > 0) {
        ::setpgid(pid, pid); // also here: the parent may signal the group before the child runs
        return pid;
    }
    if (pid < 0) return pid;
    ::setpgid(0, 0);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::_Exit(127);
}

void stop_child(pid_t pid, double timeout_s) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

bool child_alive(pid_t pid) {
    int st = 0;
    return pid > 0 && ::waitpid(pid, &st, WNOHANG) == 0;
}

// Whether a process that is not our child is gone (exited, or a zombie nobody has reaped yet).
bool gone(pid_t pid) {
    if (::kill(pid, 0) != 0) return errno == ESRCH;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(f, stat);
    const auto paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

void stop_other(pid_t pid, double timeout_s) {
    if (pid <= 0 || gone(pid)) return;
    ::kill(pid, SIGTERM);
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
        if (gone(pid)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
}

// The demo's cleanup guardian: a small process of its own, forked before anything else (no threads
// yet), that the demo tells its children's pids through a pipe. If the demo ends without saying
// it is done (SIGKILL, a crash, an early error exit), the pipe's write end closes and the guardian
// stops earshotd first (its fade-out needs the server), then jackd, and removes the temporary
// directory. The children carry no PR_SET_PDEATHSIG for that reason: the kernel would signal both
// at once, and a jackd stopped under a client that is still leaving can exit without freeing its
// slot in JACK's machine-wide registry of 8 servers (seen: a slot lost for good at every such run).
class Guardian {
public:
    void start(const std::string& tmp) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return; // no guardian: the demo still cleans up itself
        const pid_t pid = ::fork();
        if (pid < 0) {
            ::close(fds[0]);
            ::close(fds[1]);
            return;
        }
        if (pid == 0) {
            ::close(fds[1]);
            guard(fds[0], tmp);
        }
        ::close(fds[0]);
        _fd = fds[1];
    }
    /// 'E' earshotd, 'J' jackd started with this pid; 'X': that pid has been stopped.
    void tell(char what, pid_t pid) {
        if (_fd < 0 || pid <= 0) return;
        char line[32];
        const int n = std::snprintf(line, sizeof line, "%c %d\n", what, static_cast<int>(pid));
        if (::write(_fd, line, static_cast<std::size_t>(n)) != n) return;
    }
    /// Everything is cleaned up: the guardian just leaves.
    void done() {
        if (_fd < 0) return;
        if (::write(_fd, "D\n", 2) != 2) return;
        ::close(_fd);
        _fd = -1;
    }

private:
    [[noreturn]] static void guard(int fd, const std::string& tmp) {
        ::setpgid(0, 0); // away from the terminal's signals, like the children
        ::signal(SIGINT, SIG_IGN);
        ::signal(SIGHUP, SIG_IGN);
        ::signal(SIGTERM, SIG_DFL);
        const int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 1); // not the demo's stdout: whoever reads it sees EOF when the demo ends
            ::dup2(null, 2);
        }
        std::string said;
        char buf[256];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n > 0)
                said.append(buf, static_cast<std::size_t>(n));
            else if (n == 0 || errno != EINTR)
                break;
        }
        pid_t earshotd = -1, jackd = -1;
        bool done = false;
        std::istringstream in(said);
        std::string line;
        while (std::getline(in, line)) {
            if (line == "D") done = true;
            if (line.size() < 3) continue;
            const pid_t pid = static_cast<pid_t>(std::atoi(line.c_str() + 2));
            if (line[0] == 'E') earshotd = pid;
            if (line[0] == 'J') jackd = pid;
            if (line[0] == 'X' && pid == earshotd) earshotd = -1;
            if (line[0] == 'X' && pid == jackd) jackd = -1;
        }
        if (!done) {
            stop_other(earshotd, 10);
            stop_other(jackd, 5);
            std::error_code ec;
            fs::remove_all(tmp, ec);
        }
        std::_Exit(0);
    }
    int _fd = -1;
};

} // namespace

int demo_main(int argc, char** argv) {
    double seconds = 30;
    std::string config, keep;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "earshot demo: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--seconds")
            seconds = std::atof(value().c_str());
        else if (a == "--config")
            config = value();
        else if (a == "--keep")
            keep = value();
        else if (a == "--help" || a == "-h") {
            demo_usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "earshot demo: unknown option '%s'\n\n", a.c_str());
            demo_usage(stderr);
            return 2;
        }
    }
    if (!(seconds > 0 && seconds <= 24 * 3600)) {
        std::fprintf(stderr, "earshot demo: --seconds must be in (0, 86400]\n");
        return 2;
    }
    if (config.empty()) config = find_config();
    if (config.empty() || !fs::exists(config)) {
        std::fprintf(stderr, "earshot demo: configs/demo.yaml not found (give --config FILE)\n");
        return 1;
    }
    const std::string daemon = find_daemon();

    char tmpl[] = "/tmp/earshot-demo-XXXXXX";
    if (!::mkdtemp(tmpl)) {
        std::perror("earshot demo: mkdtemp");
        return 1;
    }
    const std::string tmp = tmpl;
    const std::string state = keep.empty() ? tmp + "/state" : keep;
    const std::string run = tmp + "/run";
    fs::create_directories(state);
    fs::create_directories(run);
    Guardian guardian;
    guardian.start(tmp);

    ::setenv("JACK_NO_START_SERVER", "1", 1);
    // Ctrl-C, kill and a closed terminal all end the show the same way: cleanly, in order.
    ::signal(SIGINT, on_signal);
    ::signal(SIGTERM, on_signal);
    ::signal(SIGHUP, on_signal);
    jack_set_error_function([](const char*) {});
    jack_set_info_function([](const char*) {});

    pid_t jackd = -1, earshotd = -1;
    int rc = 0;
    const bool tty = ::isatty(1);
    {
        if (!server_running()) {
            const std::string name = "earshot-demo-" + std::to_string(::getpid());
            std::printf("No JACK server is running: starting a private one ('%s', dummy backend, 48 kHz, 256 "
                        "frames).\n",
                        name.c_str());
            jackd =
                spawn({"jackd", "-s", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"},
                      tmp + "/jackd.log");
            guardian.tell('J', jackd);
            ::setenv("JACK_DEFAULT_SERVER", name.c_str(), 1);
            const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
            while (!server_running()) {
                if (!child_alive(jackd) || std::chrono::steady_clock::now() > end) {
                    std::fprintf(stderr, "earshot demo: jackd did not start (see %s/jackd.log)\n",
                                 tmp.c_str());
                    fs::remove_all(tmp);
                    return 1;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        } else {
            std::printf("Using the running JACK server '%s'.\n",
                        std::getenv("JACK_DEFAULT_SERVER") ? std::getenv("JACK_DEFAULT_SERVER") : "default");
        }
        std::printf("Starting earshotd with %s (log: %s/earshotd.log).\n", config.c_str(), tmp.c_str());
        // The daemon's JACK client name carries the demo's pid too (unique per machine).
        const std::string client = "earshot-demo-" + std::to_string(::getpid());
        earshotd = spawn({daemon, "--config", config, "--client-name", client, "--state-dir", state,
                          "--runtime-dir", run, "--no-mlock"},
                         tmp + "/earshotd.log");
        guardian.tell('E', earshotd);
        Player band;
        std::string err;
        if (!band.open(err)) {
            std::fprintf(stderr, "earshot demo: %s\n", err.c_str());
            rc = 1;
        }
        const auto t0 = std::chrono::steady_clock::now();
        double elapsed = 0;
        bool shown = false;
        double next_print = 0; // without a terminal: a frame every 5 s
        std::string last_frame;
        if (tty) std::printf("\x1b[?25l"); // hide the cursor
        while (rc == 0 && !g_stop.load() && elapsed < seconds) {
            if (!child_alive(earshotd)) {
                std::fprintf(stderr, "earshot demo: earshotd exited (see %s/earshotd.log)\n", tmp.c_str());
                rc = 1;
                break;
            }
            std::ifstream f(run + "/status.json");
            std::stringstream ss;
            ss << f.rdbuf();
            boost::system::error_code ec;
            const json::value st = json::parse(ss.str(), ec);
            if (!ec && st.is_object() && st.as_object().if_contains("musicians")) {
                char title[64];
                std::snprintf(title, sizeof title, "earshot demo  %4.0f / %.0f s", elapsed, seconds);
                last_frame = render_status(st, title);
                if (tty) {
                    std::printf("\x1b[H\x1b[2J%s\n(Ctrl-C to stop)\n", last_frame.c_str());
                } else if (elapsed >= next_print) {
                    std::printf("%s\n", last_frame.c_str());
                    next_print = elapsed + 5.0;
                }
                std::fflush(stdout);
                shown = true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
            elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        if (tty)
            std::printf("\x1b[?25h");
        else if (!last_frame.empty())
            std::printf("%s\n", last_frame.c_str());
        if (!shown && rc == 0) {
            std::fprintf(stderr, "earshot demo: earshotd never reported its status (see %s/earshotd.log)\n",
                         tmp.c_str());
            rc = 1;
        }
        // Clean up: the daemon fades out and writes its logs, then the band and the server go.
        stop_child(earshotd, 10);
        guardian.tell('X', earshotd);
    }
    stop_child(jackd, 5);
    guardian.tell('X', jackd);

    if (rc == 0) {
        std::printf("\nThe show is over. Each musician's exposure log (earshot report --state-dir %s):\n\n",
                    state.c_str());
        std::fflush(stdout);
        std::string sd = state;
        const char* args[] = {"report", "--state-dir", sd.c_str(), "--days", "1", "--format", "table"};
        exposure_report_main(7, const_cast<char**>(args));
    } else {
        std::ifstream lf(tmp + "/earshotd.log");
        std::stringstream ls;
        ls << lf.rdbuf();
        std::fprintf(stderr, "--- earshotd.log ---\n%s", ls.str().c_str());
    }
    std::error_code ec;
    if (keep.empty())
        fs::remove_all(tmp, ec);
    else {
        fs::copy_file(tmp + "/earshotd.log", keep + "/earshotd.log", fs::copy_options::overwrite_existing,
                      ec);
        fs::remove_all(tmp, ec);
        std::printf("\nExposure logs and earshotd.log kept in %s.\n", keep.c_str());
    }
    guardian.done();
    return rc;
}

} // namespace earshot::cli
