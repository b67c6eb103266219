// `earshot status | set | scene | reload | dim | panic | learn | top`: the commands that talk to a
// running earshotd over its control socket (docs/control-protocol.md, docs/cli.md).
// Exit status: 0 done, 1 the daemon refused or failed the request, 2 usage, 3 no daemon to talk to.
#include "control_client.hpp"
#include "status_view.hpp"

#include <boost/json.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace earshot::cli {

namespace json = boost::json;

namespace {

constexpr int exit_refused = 1;
constexpr int exit_usage = 2;
constexpr int exit_no_daemon = 3;

struct Common {
    std::string socket = default_socket_path();
    bool json_out = false;
    bool forget = false;           // learn --forget
    std::vector<std::string> args; // positional
};

void control_usage(std::FILE* f) {
    std::fprintf(
        f, "usage: earshot status [--json]\n"
           "       earshot set MUSICIAN master DB|off\n"
           "       earshot set MUSICIAN INPUT [gain DB|off] [pan P] [mute|unmute]\n"
           "       earshot scene save|recall|delete NAME\n"
           "       earshot scene list\n"
           "       earshot reload\n"
           "       earshot dim [on|off] [--db DB]\n"
           "       earshot panic [on|off]\n"
           "       earshot learn TARGET   (drums.master, drums.send.click, drums.mute.click)\n"
           "       earshot learn --forget TARGET\n"
           "       earshot guard suspend|resume MUSICIAN\n"
           "       earshot top [--rate HZ]\n"
           "\n"
           "Talk to the running earshotd over its control socket (docs/cli.md).\n"
           "  --socket PATH  the socket (default $EARSHOT_SOCKET, else $EARSHOT_RUNTIME_DIR/control.sock,\n"
           "                 else /run/earshot/control.sock)\n"
           "  --json         print the daemon's reply as JSON\n"
           "\n"
           "Exit status: 0 done, 1 refused or failed, 2 usage, 3 no daemon to talk to.\n");
}

// 0 = ok, 1 = help printed, -1 = usage error.
int parse_common(int argc, char** argv, Common& c, double* rate = nullptr, double* dim_db = nullptr) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "earshot: %s needs a value\n", a.c_str());
                return false;
            }
            out = argv[++i];
            return true;
        };
        std::string v;
        if (a == "--socket") {
            if (!value(c.socket)) return -1;
        } else if (a == "--json") {
            c.json_out = true;
        } else if (a == "--forget") {
            c.forget = true;
        } else if (a == "--rate" && rate) {
            if (!value(v)) return -1;
            *rate = std::atof(v.c_str());
        } else if (a == "--db" && dim_db) {
            if (!value(v)) return -1;
            *dim_db = std::atof(v.c_str());
        } else if (a == "--help" || a == "-h") {
            control_usage(stdout);
            return 1;
        } else if (a.size() > 2 && a.rfind("--", 0) == 0) {
            std::fprintf(stderr, "earshot: unknown option '%s'\n", a.c_str());
            return -1;
        } else {
            c.args.push_back(a);
        }
    }
    return 0;
}

bool parse_db(const std::string& s, json::value& out) {
    if (s == "off" || s == "-inf") {
        out = "off";
        return true;
    }
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!end || *end || !std::isfinite(d)) return false;
    out = d;
    return true;
}

std::string fmt_db_value(const json::value* v) {
    if (!v || v->is_null()) return "off";
    char b[32];
    std::snprintf(b, sizeof b, "%+.1f dB", num_or(v, 0));
    return b;
}

// Runs one request; prints the reply (JSON or via `human`). Returns the exit status.
template <class Human>
int run_request(const Common& c, const json::object& req, Human human) {
    ControlClient cl;
    std::string err;
    if (!cl.connect(c.socket, err)) {
        std::fprintf(stderr, "earshot: %s\n", err.c_str());
        return exit_no_daemon;
    }
    json::object reply;
    if (!cl.request(req, reply, err)) {
        std::fprintf(stderr, "earshot: %s\n", err.c_str());
        return exit_no_daemon;
    }
    const bool ok = reply.if_contains("ok") && reply.at("ok").is_bool() && reply.at("ok").as_bool();
    if (c.json_out) {
        std::printf("%s\n", json::serialize(reply).c_str());
        return ok ? 0 : exit_refused;
    }
    if (!ok) {
        print_error(reply);
        return exit_refused;
    }
    human(reply.contains("result") ? reply.at("result") : json::value(nullptr));
    return 0;
}

int status_cmd(const Common& c) {
    json::object req;
    req["cmd"] = "status";
    return run_request(c, req,
                       [](const json::value& r) { std::printf("%s", render_status(r, "earshotd").c_str()); });
}

int set_cmd(const Common& c) {
    const auto& a = c.args;
    if (a.size() < 3) {
        control_usage(stderr);
        return exit_usage;
    }
    json::object req;
    req["cmd"] = "set";
    req["musician"] = a[0];
    if (a[1] == "master") {
        json::value g;
        if (a.size() != 3 || !parse_db(a[2], g)) {
            std::fprintf(stderr, "earshot set: master takes one value in dB, or off\n");
            return exit_usage;
        }
        req["master_db"] = g;
    } else {
        req["input"] = a[1];
        for (std::size_t i = 2; i < a.size(); ++i) {
            if (a[i] == "gain" && i + 1 < a.size()) {
                json::value g;
                if (!parse_db(a[++i], g)) {
                    std::fprintf(stderr, "earshot set: gain '%s' is not a number of dB or off\n",
                                 a[i].c_str());
                    return exit_usage;
                }
                req["gain_db"] = g;
            } else if (a[i] == "pan" && i + 1 < a.size()) {
                char* end = nullptr;
                const double p = std::strtod(a[++i].c_str(), &end);
                if (!end || *end) {
                    std::fprintf(stderr, "earshot set: pan '%s' is not a number\n", a[i].c_str());
                    return exit_usage;
                }
                req["pan"] = p;
            } else if (a[i] == "mute") {
                req["mute"] = true;
            } else if (a[i] == "unmute") {
                req["mute"] = false;
            } else {
                std::fprintf(stderr, "earshot set: unexpected '%s'\n", a[i].c_str());
                return exit_usage;
            }
        }
    }
    return run_request(c, req, [](const json::value& r) {
        const json::object& o = r.as_object();
        if (o.if_contains("master_db"))
            std::printf("%s: master %s\n", o.at("musician").as_string().c_str(),
                        fmt_db_value(o.if_contains("master_db")).c_str());
        else
            std::printf("%s / %s: gain %s, pan %+.2f, %s\n", o.at("musician").as_string().c_str(),
                        o.at("input").as_string().c_str(), fmt_db_value(o.if_contains("gain_db")).c_str(),
                        num_or(o.if_contains("pan"), 0),
                        o.if_contains("mute") && o.at("mute").as_bool() ? "muted" : "unmuted");
    });
}

int scene_cmd(const Common& c) {
    const auto& a = c.args;
    json::object req;
    req["cmd"] = "scene";
    if (a.size() == 1 && a[0] == "list") {
        req["action"] = "list";
    } else if (a.size() == 2 && (a[0] == "save" || a[0] == "recall" || a[0] == "delete")) {
        req["action"] = a[0];
        req["name"] = a[1];
    } else {
        control_usage(stderr);
        return exit_usage;
    }
    return run_request(c, req, [](const json::value& r) {
        const json::object& o = r.as_object();
        if (const json::value* sc = o.if_contains("scenes")) {
            if (sc->as_array().empty()) std::printf("no scenes saved\n");
            for (const json::value& e : sc->as_array()) {
                const std::time_t t =
                    static_cast<std::time_t>(num_or(e.as_object().if_contains("saved_utc"), 0));
                char when[64] = "";
                std::tm tm{};
                if (t > 0 && localtime_r(&t, &tm)) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
                std::printf("%-32s %s\n", e.as_object().at("name").as_string().c_str(), when);
            }
        } else if (o.if_contains("recalled")) {
            std::printf("scene '%s' recalled (ramped)\n", o.at("recalled").as_string().c_str());
            for (const json::value& s : o.at("skipped").as_array())
                std::printf("  skipped: %s\n", s.as_string().c_str());
        } else if (o.if_contains("saved")) {
            std::printf("scene '%s' saved\n", o.at("saved").as_string().c_str());
        } else if (o.if_contains("deleted")) {
            std::printf("scene '%s' deleted\n", o.at("deleted").as_string().c_str());
        }
    });
}

int simple_cmd(const Common& c, const std::string& cmd, double dim_db) {
    json::object req;
    req["cmd"] = cmd;
    const auto& a = c.args;
    if (cmd == "dim" || cmd == "panic") {
        if (a.size() > 1 || (a.size() == 1 && a[0] != "on" && a[0] != "off")) {
            control_usage(stderr);
            return exit_usage;
        }
        req["on"] = a.empty() || a[0] == "on";
        if (cmd == "dim" && (a.empty() || a[0] == "on")) req["db"] = dim_db;
    } else if (cmd == "learn") {
        if (a.size() != 1) {
            control_usage(stderr);
            return exit_usage;
        }
        req["target"] = a[0];
        if (c.forget) req["forget"] = true;
    } else if (cmd == "guard") {
        if (a.size() != 2 || (a[0] != "suspend" && a[0] != "resume")) {
            control_usage(stderr);
            return exit_usage;
        }
        req["action"] = a[0];
        req["musician"] = a[1];
    } else if (!a.empty()) {
        control_usage(stderr);
        return exit_usage;
    }
    return run_request(c, req, [&](const json::value& r) {
        if (cmd == "reload")
            std::printf("config reloaded: %.0f inputs, %.0f musicians\n",
                        num_or(r.as_object().if_contains("inputs"), 0),
                        num_or(r.as_object().if_contains("musicians"), 0));
        else if (cmd == "dim")
            std::printf(r.as_object().at("dim_db").is_null() ? "dim off\n" : "dim on: %.1f dB on every mix\n",
                        num_or(r.as_object().if_contains("dim_db"), 0));
        else if (cmd == "panic" && r.as_object().at("panic").as_bool())
            std::printf("PANIC: every mix silenced\n");
        else if (cmd == "panic") {
            std::string own;
            if (const json::value* rel = r.as_object().if_contains("released"); rel && rel->is_array())
                for (const json::value& v : rel->as_array())
                    if (v.is_string()) own += (own.empty() ? "" : ", ") + std::string(v.as_string());
            std::printf("panic off: the mixes fade back in%s%s%s\n",
                        own.empty() ? "" : " (also the own panic of ", own.c_str(), own.empty() ? "" : ")");
        } else if (cmd == "guard")
            std::printf("dose guard of '%s' (%s): %s by %s\n",
                        r.as_object().at("musician").as_string().c_str(),
                        r.as_object().at("mode").as_string().c_str(),
                        r.as_object().at("suspended").as_bool() ? "suspended" : "resumed",
                        r.as_object().at("by").as_string().c_str());
        else if (cmd == "learn" && r.is_object() && r.as_object().if_contains("forgot"))
            std::printf("%s: learned binding forgotten (%.0f)\n",
                        r.as_object().at("forgot").as_string().c_str(),
                        num_or(r.as_object().if_contains("bindings"), 0));
        else if (cmd == "learn" && r.is_object() && r.as_object().if_contains("learned"))
            std::printf("%s now drives %s (controller '%s')\n",
                        r.as_object().at("control").as_string().c_str(),
                        r.as_object().at("learned").as_string().c_str(),
                        r.as_object().at("controller").as_string().c_str());
        else
            std::printf("%s\n", json::serialize(r).c_str());
    });
}

// --- top ----------------------------------------------------------------------------------------

std::atomic<bool> g_quit{false};
void on_quit(int) {
    g_quit.store(true);
}

struct RawTerminal {
    bool active = false;
    termios saved{};
    void enter() {
        if (!::isatty(0) || tcgetattr(0, &saved) != 0) return;
        termios t = saved;
        t.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(0, TCSANOW, &t) == 0) active = true;
    }
    ~RawTerminal() {
        if (active) tcsetattr(0, TCSANOW, &saved);
    }
};

int top_cmd(const Common& c, double rate) {
    if (!(rate >= 0.1 && rate <= 20)) {
        std::fprintf(stderr, "earshot top: --rate must be in [0.1, 20] Hz\n");
        return exit_usage;
    }
    ControlClient cl;
    std::string err;
    if (!cl.connect(c.socket, err)) {
        std::fprintf(stderr, "earshot top: %s\n", err.c_str());
        return exit_no_daemon;
    }
    json::object sub;
    sub["cmd"] = "subscribe";
    sub["rate_hz"] = rate;
    if (!cl.send(sub, err)) {
        std::fprintf(stderr, "earshot top: %s\n", err.c_str());
        return exit_no_daemon;
    }
    ::signal(SIGINT, on_quit);
    ::signal(SIGTERM, on_quit);
    ::signal(SIGHUP, on_quit);
    RawTerminal term;
    term.enter();
    const bool tty = ::isatty(1);
    if (tty) std::printf("\x1b[?1049h\x1b[?25l"); // alternate screen, hide the cursor
    std::fflush(stdout);
    int rc = 0;
    std::string reason;
    while (!g_quit.load()) {
        pollfd p[2] = {{cl.fd(), POLLIN, 0}, {0, POLLIN, 0}};
        const int n = ::poll(p, term.active ? 2 : 1, 500);
        if (n < 0 && errno != EINTR) break;
        if (term.active && (p[1].revents & POLLIN)) {
            char ch = 0;
            if (::read(0, &ch, 1) == 1 && (ch == 'q' || ch == 'Q' || ch == 3)) break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            std::string line;
            int r;
            bool drawn = false;
            while ((r = cl.read_line(line, 0)) == 1) {
                boost::system::error_code ec;
                json::value v = json::parse(line, ec);
                if (ec || !v.is_object()) continue;
                const json::object& o = v.as_object();
                if (o.if_contains("ok") && o.at("ok").is_bool() && !o.at("ok").as_bool()) {
                    reason = json::serialize(o);
                    rc = exit_refused;
                    g_quit.store(true);
                    break;
                }
                if (!o.if_contains("event") || !o.if_contains("data") || drawn) continue;
                std::time_t now = std::time(nullptr);
                char title[64];
                std::tm tm{};
                localtime_r(&now, &tm);
                std::strftime(title, sizeof title, "earshot top  %H:%M:%S  (q quits)", &tm);
                const std::string frame = render_status(o.at("data"), title);
                if (tty)
                    std::printf("\x1b[H\x1b[2J%s", frame.c_str());
                else
                    std::printf("%s\n", frame.c_str());
                std::fflush(stdout);
                drawn = true;
            }
            if (r < 0) {
                reason = "earshotd went away (the control socket closed)";
                rc = exit_no_daemon;
                break;
            }
        }
    }
    if (tty) std::printf("\x1b[?25h\x1b[?1049l");
    std::fflush(stdout);
    if (!reason.empty()) std::fprintf(stderr, "earshot top: %s\n", reason.c_str());
    return rc;
}

} // namespace

int control_main(const std::string& cmd, int argc, char** argv) {
    Common c;
    double rate = 4, dim_db = -20;
    const int p = parse_common(argc, argv, c, &rate, &dim_db);
    if (p == 1) return 0;
    if (p < 0) return exit_usage;
    if (c.forget && cmd != "learn") {
        control_usage(stderr);
        return exit_usage;
    }
    if (cmd == "status") {
        if (!c.args.empty()) {
            control_usage(stderr);
            return exit_usage;
        }
        return status_cmd(c);
    }
    if (cmd == "set") return set_cmd(c);
    if (cmd == "scene") return scene_cmd(c);
    if (cmd == "top") return top_cmd(c, rate);
    return simple_cmd(c, cmd, dim_db);
}

} // namespace earshot::cli
