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

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
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
           "       earshot top [--rate HZ]   (q quits; arrows, PgUp/PgDn scroll)\n"
           "\n"
           "Talk to the running earshotd over its control socket (docs/cli.md).\n"
           "  --socket PATH  the socket (default $EARSHOT_SOCKET, else $EARSHOT_RUNTIME_DIR/control.sock,\n"
           "                 else /run/earshot/control.sock)\n"
           "  --json         print the daemon's reply as JSON\n"
           "\n"
           "Exit status: 0 done, 1 refused or failed, 2 usage, 3 no daemon to talk to.\n");
}

// A whole argument as a finite number ("abc", "", "1x", "nan", "inf" are not).
bool parse_number(const std::string& s, double& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || !std::isfinite(d)) return false;
    out = d;
    return true;
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
        } else if ((a == "--rate" && rate) || (a == "--db" && dim_db)) {
            if (!value(v)) return -1;
            if (!parse_number(v, a == "--rate" ? *rate : *dim_db)) {
                std::fprintf(stderr, "earshot: %s '%s' is not a number\n", a.c_str(), v.c_str());
                return -1;
            }
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
    double d = 0;
    if (!parse_number(s, d)) return false;
    out = d;
    return true;
}

// A JSON value as a person reads it: 12 rather than 1.2E1.
std::string shown(const json::value& v) {
    if (!v.is_number()) return json::serialize(v);
    char b[32];
    std::snprintf(b, sizeof b, "%g", v.to_number<double>());
    return b;
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
                double p = 0;
                if (!parse_number(a[++i], p) || p < -1 || p > 1) {
                    std::fprintf(stderr, "earshot set: pan '%s' is not a number in [-1, 1]\n", a[i].c_str());
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
            if (const json::value* cl = o.if_contains("clamped"); cl && cl->is_array())
                for (const json::value& e : cl->as_array()) {
                    const json::object& x = e.as_object();
                    std::printf("  clamped: %s %s %s: %s -> %s (%s)\n", x.at("musician").as_string().c_str(),
                                x.at("target").as_string().c_str(), x.at("field").as_string().c_str(),
                                shown(x.at("asked")).c_str(), shown(x.at("applied")).c_str(),
                                x.at("why").as_string().c_str());
                }
        } else if (o.if_contains("saved")) {
            std::printf("scene '%s' saved\n", o.at("saved").as_string().c_str());
            if (const json::value* w = o.if_contains("warning"); w && w->is_string())
                std::printf("  warning: %s\n", w->as_string().c_str());
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

// The terminal as top found it, and what it sets: used by the signal handlers, so only plain
// data and async-signal-safe calls (write, tcsetattr).
struct TermState {
    bool in_tty = false, out_tty = false;
    termios saved{}, raw{};
};
TermState g_term;
volatile std::sig_atomic_t g_quit = 0, g_winch = 0, g_redraw = 0;
struct sigaction g_tstp_action {};

void term_enter() noexcept {
    if (g_term.in_tty) ::tcsetattr(0, TCSANOW, &g_term.raw);
    if (g_term.out_tty) {
        static const char s[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J"; // alternate screen, hide the cursor
        [[maybe_unused]] const ssize_t w = ::write(1, s, sizeof s - 1);
    }
}

void term_leave() noexcept {
    if (g_term.out_tty) {
        static const char s[] = "\x1b[?25h\x1b[?1049l"; // show the cursor, back to the normal screen
        [[maybe_unused]] const ssize_t w = ::write(1, s, sizeof s - 1);
    }
    if (g_term.in_tty) ::tcsetattr(0, TCSANOW, &g_term.saved);
}

void on_quit(int) {
    g_quit = 1;
}
void on_winch(int) {
    g_winch = 1;
}
void on_cont(int) {
    // Also after a SIGSTOP we did not see: the shell may have reset the terminal meanwhile.
    const int e = errno;
    term_enter();
    g_redraw = 1;
    errno = e;
}
// Ctrl-Z: give the shell its terminal back, stop, and take it again on `fg`.
void on_tstp(int) {
    const int e = errno;
    term_leave();
    ::signal(SIGTSTP, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTSTP);
    ::sigprocmask(SIG_UNBLOCK, &s, nullptr);
    ::raise(SIGTSTP); // stops here until SIGCONT
    ::sigaction(SIGTSTP, &g_tstp_action, nullptr);
    term_enter();
    g_redraw = 1;
    errno = e;
}

void handle(int sig, void (*fn)(int)) {
    struct sigaction a {};
    a.sa_handler = fn;
    sigemptyset(&a.sa_mask);
    a.sa_flags = 0; // no SA_RESTART: poll() returns at once
    ::sigaction(sig, &a, nullptr);
    if (sig == SIGTSTP) g_tstp_action = a;
}

void term_size(int& cols, int& rows) {
    winsize ws{};
    if (::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        cols = ws.ws_col;
        rows = ws.ws_row;
        return;
    }
    cols = 80;
    rows = 24;
}

// Redraws only the lines that changed (cheap over SSH), each ended with "erase to end of line".
class Screen {
public:
    void draw(const std::vector<std::string>& lines, bool full) {
        std::string out;
        if (full) {
            out += "\x1b[H\x1b[2J";
            _shown.clear();
        }
        for (std::size_t i = 0; i < lines.size(); ++i) {
            if (i < _shown.size() && _shown[i] == lines[i]) continue;
            out += "\x1b[" + std::to_string(i + 1) + ";1H" + lines[i] + "\x1b[K";
        }
        if (_shown.size() > lines.size()) out += "\x1b[" + std::to_string(lines.size() + 1) + ";1H\x1b[J";
        _shown = lines;
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
    }

private:
    std::vector<std::string> _shown;
};

// Keys: q, Ctrl-C (3) quit; arrows, PgUp/PgDn, Home/End, j/k, space scroll. Returns false on quit.
bool keys(const std::string& in, int& scroll, int page) {
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char ch = in[i];
        if (ch == 'q' || ch == 'Q' || ch == 3) return false;
        if (ch == 'j') ++scroll;
        if (ch == 'k') --scroll;
        if (ch == ' ') scroll += page;
        if (ch == 'g') scroll = 0;
        if (ch == 'G') scroll = 1 << 20;
        if (ch != '\x1b' || i + 2 >= in.size() || in[i + 1] != '[') continue;
        const std::string seq = in.substr(i + 2, 2);
        i += seq.size() > 1 && seq[1] == '~' ? 3 : 2;
        if (seq[0] == 'A') --scroll;
        if (seq[0] == 'B') ++scroll;
        if (seq[0] == 'H' || seq == "1~") scroll = 0;
        if (seq[0] == 'F' || seq == "4~") scroll = 1 << 20;
        if (seq == "5~") scroll -= page;
        if (seq == "6~") scroll += page;
    }
    if (scroll < 0) scroll = 0;
    return true;
}

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
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) handle(sig, on_quit);
    g_term.out_tty = ::isatty(1);
    g_term.in_tty = g_term.out_tty && ::isatty(0) && ::tcgetattr(0, &g_term.saved) == 0;
    if (g_term.in_tty) {
        g_term.raw = g_term.saved;
        g_term.raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
        g_term.raw.c_cc[VMIN] = 0;
        g_term.raw.c_cc[VTIME] = 0;
    }
    if (g_term.out_tty) {
        handle(SIGWINCH, on_winch);
        handle(SIGTSTP, on_tstp);
        handle(SIGCONT, on_cont);
    }
    term_enter();
    int cols = 140, rows = 0;
    if (g_term.out_tty) term_size(cols, rows);
    Screen screen;
    bool full = true;
    int scroll = 0, page = 10;
    json::value data; // the newest status
    bool have = false;
    auto last_event = std::chrono::steady_clock::now();
    auto last_draw = last_event - std::chrono::hours(1);
    const double stale_after = std::max(3.0, 3.0 / rate);
    int rc = 0;
    std::string reason;
    while (!g_quit) {
        pollfd p[2] = {{cl.fd(), POLLIN, 0}, {0, POLLIN, 0}};
        const int n = ::poll(p, g_term.in_tty ? 2 : 1, 250);
        if (n < 0 && errno != EINTR) break;
        bool dirty = false;
        if (n > 0 && g_term.in_tty && (p[1].revents & POLLIN)) {
            char b[64];
            const ssize_t k = ::read(0, b, sizeof b);
            if (k > 0) {
                const int before = scroll;
                if (!keys(std::string(b, static_cast<std::size_t>(k)), scroll, page)) break;
                dirty = scroll != before;
            }
        }
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            std::string line;
            int r;
            while ((r = cl.read_line(line, 0)) == 1) {
                boost::system::error_code ec;
                json::value v = json::parse(line, ec);
                if (ec || !v.is_object()) continue;
                json::object& o = v.as_object();
                if (o.if_contains("ok") && o.at("ok").is_bool() && !o.at("ok").as_bool()) {
                    const json::value* e = o.if_contains("error");
                    reason = e && e->is_object() && e->as_object().if_contains("message")
                                 ? std::string(json::serialize(e->as_object().at("message")))
                                 : json::serialize(o);
                    rc = exit_refused;
                    g_quit = 1;
                    break;
                }
                // Keep the newest status of the batch: after a stall, show now, not then.
                const json::value* ev = o.if_contains("event");
                if (!ev || *ev != "status" || !o.if_contains("data")) continue;
                data = std::move(o["data"]);
                have = true;
                dirty = true;
                last_event = std::chrono::steady_clock::now();
            }
            if (r < 0) {
                reason = "earshotd went away (the control socket closed)";
                rc = exit_no_daemon;
                break;
            }
        }
        if (g_winch) {
            g_winch = 0;
            term_size(cols, rows);
            full = true;
        }
        if (g_redraw) {
            g_redraw = 0;
            full = true;
        }
        const auto now = std::chrono::steady_clock::now();
        const double quiet = std::chrono::duration<double>(now - last_event).count();
        const bool stale = quiet > stale_after;
        // A stalled daemon: the clock on the screen keeps going and says so.
        if (stale && now - last_draw > std::chrono::milliseconds(500)) dirty = true;
        if (!(dirty || full) || (!have && !stale)) continue;
        std::time_t wall = std::time(nullptr);
        std::tm tm{};
        localtime_r(&wall, &tm);
        char title[64];
        std::strftime(title, sizeof title, "earshot top  %H:%M:%S  (q quits)", &tm);
        ViewOptions vo;
        vo.width = cols;
        vo.height = rows;
        vo.scroll = scroll;
        vo.title = title;
        if (stale) {
            char b[160];
            std::snprintf(b, sizeof b,
                          "!! no update from earshotd for %.0f s: the daemon is stalled or overloaded",
                          quiet);
            vo.notices.push_back(b);
        }
        const Frame f = render_view(have ? data : json::value(nullptr), vo);
        scroll = f.body_first;
        page = std::max(1, f.body_shown - 1);
        if (g_term.out_tty) {
            screen.draw(f.lines, full);
        } else {
            for (const std::string& l : f.lines) std::printf("%s\n", l.c_str());
            std::printf("\n");
            std::fflush(stdout);
        }
        full = false;
        last_draw = now;
    }
    term_leave();
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
