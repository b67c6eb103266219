#include "earshot/daemon/daemon.hpp"

#include "earshot/config/loader.hpp"
#include "earshot/control/protocol.hpp"
#include "earshot/daemon/control_server.hpp"
#include "earshot/daemon/dose_keeper.hpp"
#include "earshot/daemon/jack_backend.hpp"
#include "earshot/daemon/log.hpp"
#include "earshot/daemon/midi_hub.hpp"
#include "earshot/daemon/notify.hpp"
#include "earshot/dosimetry/calendar.hpp"
#include "earshot/dosimetry/guard.hpp"
#include "earshot/dosimetry/warnings.hpp"
#include "earshot/dsp/limiter.hpp"
#include "earshot/dsp/units.hpp"
#include "earshot/engine/engine.hpp"
#include "earshot/midi/feedback.hpp"
#include "earshot/midi/mapping.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <thread>
#include <vector>

namespace earshot::daemon {

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr auto tick = std::chrono::milliseconds(20);

double wall_now() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

double secs_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

json::value num(double v, int decimals = 2) {
    if (!std::isfinite(v)) return json::value(nullptr);
    const double k = std::pow(10.0, decimals);
    return json::value(std::round(v * k) / k);
}

std::string server_name() {
    const char* s = std::getenv("JACK_DEFAULT_SERVER");
    return s && *s ? s : "default";
}

// Locks memory when it cannot backfire: with MCL_FUTURE and a small RLIMIT_MEMLOCK, later
// allocations fail (jack-testing.md §6), so only root/CAP_IPC_LOCK or a large limit qualify.
void lock_memory() {
    rlimit rl{};
    getrlimit(RLIMIT_MEMLOCK, &rl);
    const bool big = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t(512) << 20);
    if (geteuid() != 0 && !big) {
        log::notice("memory not locked: RLIMIT_MEMLOCK is %llu KiB (LimitMEMLOCK=infinity in the unit, or "
                    "@audio - memlock unlimited in limits.conf, allows it)",
                    static_cast<unsigned long long>(rl.rlim_cur / 1024));
        return;
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        log::notice("memory not locked: mlockall: %s", std::strerror(errno));
    else
        log::info("memory locked (mlockall)");
}

bool ensure_dir(const std::string& dir, std::string& err) {
    std::string path;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
        pos = dir.find('/', pos + 1);
        path = dir.substr(0, pos);
        if (path.empty()) continue;
        if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
            err = path + ": " + std::strerror(errno);
            return false;
        }
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        err = dir + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

bool write_file_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok && ::rename(tmp.c_str(), path.c_str()) == 0;
}

// The whole file as text. Returns false with errno set when it cannot be opened (ENOENT: there is
// none) or read (EIO).
bool read_text_file(const std::string& path, std::string& text) {
    text.clear();
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char buf[16384];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool read_error = std::ferror(f) != 0;
    std::fclose(f);
    if (read_error) errno = EIO;
    return !read_error;
}

bool write_file_durable(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return false;
    const bool ok =
        ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    return ok && ::rename(tmp.c_str(), path.c_str()) == 0;
}

double json_db(const json::value& v) {
    if (v.is_double()) return v.as_double();
    if (v.is_int64()) return static_cast<double>(v.as_int64());
    return -std::numeric_limits<double>::infinity(); // null = off
}

int musician_latency(const config::Musician& m, double fs) {
    dsp::TruePeakLimiter probe;
    probe.prepare(fs, 1, m.protection.lookahead_ms, m.protection.release_ms);
    return probe.latency_frames();
}

sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

bool group_exists(const std::string& name) {
    std::vector<char> buf(16384);
    group g{};
    group* res = nullptr;
    while (getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &res) == ERANGE && buf.size() < (1u << 20))
        buf.resize(buf.size() * 2);
    return res != nullptr;
}

// Where `key: value` is written in the config file (1-based line and column of the value), for
// errors about values the loader accepted but this machine does not have. Block and flow style;
// a key inside a comment is skipped. {0, 0} when it cannot be found.
std::pair<int, int> locate_value(const std::string& file, const std::string& key, const std::string& value) {
    std::ifstream f(file);
    const std::regex re("(^|[\\s{,])" + key + "\\s*:\\s*(([\"']?)" + value + "\\3)(?=$|[\\s,}#])");
    std::string line;
    for (int n = 1; std::getline(f, line); ++n) {
        const std::string code = line.substr(0, line.find('#'));
        std::smatch m;
        if (std::regex_search(code, m, re)) return {n, static_cast<int>(m.position(2)) + 1};
    }
    return {0, 0};
}

struct Meter {
    float peak[2] = {0, 0};
    float limiter_gain = 1;
    float master_gain = 0;
    // Peak hold since the last harvest (hold_meters()).
    float held_peak[2] = {0, 0};
    float held_lim = 1;
    float held_cap = 1;
    float guard_gain = 1;
    // The harvested holds, oldest first (at most ~15 s): each status consumer takes the maxima
    // of the entries after its own mark, so a fast subscriber does not reset a slow one's peaks.
    struct Held {
        uint64_t seq = 0;
        Clock::time_point t{};
        float peak[2] = {0, 0};
        float lim = 1, cap = 1;
    };
    std::deque<Held> history;
};

} // namespace

struct Daemon::Impl final : ControlHandler {
    Options opt;
    config::Config cfg; // as loaded
    MixState mix;
    config::Config eff; // cfg with the live mix
    DoseKeeper keeper;

    // The engines before the backend: members are destroyed in reverse order, so the JACK client
    // (and with it the RT thread that runs them) goes first (and ~Impl() closes it explicitly).
    std::unique_ptr<engine::Engine> eng;
    struct OldEngine { // replaced by a sample-rate change, waiting for the RT thread to let go
        std::unique_ptr<engine::Engine> e;
        std::vector<FreewheelEdge> fw_edges; // of that engine's sample clock
    };
    std::vector<OldEngine> old_engines;
    std::unique_ptr<JackBackend> jack;

    enum class State { waiting, connected } state = State::waiting;
    Clock::time_point next_retry = Clock::now();
    double backoff_s = 0;
    uint64_t attempts = 0; // failed connection attempts since the server went away (or since start)
    std::string last_connect_error;
    bool jack_abandoned = false; // a JACK client was left without a clean close (frozen server)
    bool ready_sent = false;     // READY=1 went out (first connection)
    bool reload_open = false;    // RELOADING=1 went out, its READY=1 not yet

    std::vector<PortSpec> lingering; // removed ports, kept while their outputs fade out
    Clock::time_point lingering_until{};
    std::vector<FreewheelEdge> fw_edges; // of the current engine
    std::map<uint32_t, Meter> meters;    // by musician key
    uint64_t logged_xruns = 0, logged_bad_blocks = 0, logged_dose_drops = 0, logged_rt_errors = 0;

    Clock::time_point last_status{}, last_summary{}, last_watchdog{}, mix_changed{};
    uint64_t watchdog_cycles = 0;
    uint64_t wd_usec = 0;
    bool stopping = false;
    int exit_code = exit_ok;

    // Momentary layers on top of the live mix (not persisted): dim and panic for everyone, and
    // the MIDI layers per musician (more me, talkback, dim, panic of a bound controller).
    double dim_db = 0; // 0 = off
    bool panicked = false;
    struct Layer {
        bool more = false; // "more me": raise more_inputs by more_db
        double more_db = 0;
        std::vector<std::string> more_inputs; // input ids
        bool talk = false;                    // talkback: duck every other send by talk_db ...
        double talk_db = 0;
        std::string talk_input; // ... and open this input's send at 0 dB ("" = none)
        bool dim = false;
        double dim_db = 0;
        bool panic = false;   // a bound controller's panic (released by it or `earshot panic off`)
        std::string panic_by; // ... the controller that engaged it
    };
    std::map<std::string, Layer> layers;         // by musician id
    Layer talk_all;                              // talkback for everyone (only its talk fields are used)
    std::string scene_all;                       // last scene recalled for everyone
    std::map<std::string, std::string> scene_of; // last scene recalled per musician

    boost::asio::io_context io;
    // SIGTERM, SIGINT and SIGHUP are blocked in every thread (main() blocks them before any thread
    // exists, so JACK's and RtMidi's threads inherit the mask) and read here, on the control
    // thread, from a signalfd: no signal handler ever runs on the RT thread.
    boost::asio::posix::stream_descriptor sigfd{io};
    boost::asio::steady_timer timer{io};
    ControlServer control{io, *this, EARSHOT_VERSION_STRING};

    // --- MIDI controllers (docs/midi.md) ------------------------------------------------------
    // The live mix as the Mapper and Feedback see it (Directory indices = config order).
    struct View final : midi::MixView {
        const Impl& d;
        explicit View(const Impl& impl) : d(impl) {}
        const MixState::Send* send(uint16_t m, uint16_t i) const noexcept;
        const Layer* layer(uint16_t m) const noexcept;
        double send_gain_db(uint16_t m, uint16_t i) const noexcept override;
        bool send_muted(uint16_t m, uint16_t i) const noexcept override;
        double master_db(uint16_t m) const noexcept override;
        bool more_me(uint16_t m) const noexcept override;
        bool talkback(uint16_t m) const noexcept override;
        bool dimmed(uint16_t m) const noexcept override;
        bool panicked(uint16_t m) const noexcept override;
        int scene(uint16_t m) const noexcept override;
        double dose_pct(uint16_t m) const noexcept override;
        midi::DoseAlert dose_alert(uint16_t m) const noexcept override;
    };
    struct MidiCtl {
        std::string id; // the controller's id
        std::optional<midi::Mapper> mapper;
        std::optional<midi::Feedback> fb;
        std::vector<std::string> learn_targets; // parallel to the mapper's mappings
        uint64_t scope_rejected = 0;            // actions refused when applied (SPEC §3.5; stays 0)
        uint64_t learn_refused = 0;             // learn pad presses whose target is not its musician's
        midi::MapperStats before;               // counters of the Mappers replaced by rebuilds
    };
    struct Learned { // a binding made by MIDI learn, kept in <state-dir>/midi-learn.json
        std::string target;
        midi::ControlSource source;
        midi::ControlKind kind = midi::ControlKind::absolute;
    };
    struct PendingLearn {
        config::LearnTarget target;
        std::vector<std::size_t> ctls; // controllers listening
        Clock::time_point deadline;
        ControlHandler::Reply reply; // empty: started from a pad
        json::value id;
    };
    View view{*this};
    midi::Directory midi_dir;
    std::vector<MidiCtl> midi_ctls;                      // parallel to cfg.controllers
    std::map<std::string, std::vector<Learned>> learned; // by controller id
    std::optional<PendingLearn> pending_learn;
    std::string last_target;        // the last target changed from the control socket (a learn pad's default)
    std::vector<double> dose_cache; // max(NIOSH daily, WHO weekly) % by musician index (status.json)
    // Dose LED warnings, from the warning events (warn_event): when the last of each kind came.
    struct LedWarning {
        Clock::time_point momentary{}; // LAeq,1s over the cap or RS2
        Clock::time_point notice{};    // a dose threshold, the guard over budget
    };
    std::map<std::string, LedWarning> led_warnings; // by musician id
    void note_led_warning(const std::string& id, const std::string& kind);
    uint64_t engine_dropped_seen = 0; // the engine's commands_dropped when last reconciled
    bool engine_stale = false;        // a command was dropped: the engine may differ from the mix
    void reconcile_engine();
    MidiHub hub{io};

    // --- dose-aware protection (docs/protection.md) ---------------------------------------------
    struct Protect {
        Protect(const dosimetry::GuardSettings& gs, const dosimetry::WarningSettings& ws)
            : guard(gs), warn(ws) {}
        dosimetry::DoseGuard guard;
        dosimetry::DoseWarnings warn;
        double audio_s = 0;        // seconds heard since start (momentary hold-off clock)
        std::string suspended_day; // dose day of the engineer's suspension (it ends with the day)
        struct Recent {
            double t_utc;
            std::string kind, message;
        };
        std::deque<Recent> recent;           // the last dose, guard and acknowledgement events
        std::deque<Recent> recent_momentary; // the last momentary ones (kept apart: they repeat)
        std::optional<Recent> last_dose;     // the last dose-threshold warning, however old
    };
    std::map<std::string, Protect> protect; // by musician id
    double started_utc = 0;                 // for show.length_min
    double show_end_utc = std::numeric_limits<double>::quiet_NaN();
    // The guard's planning across restarts: <state-dir>/guard.json (docs/protection.md).
    std::map<std::string, std::pair<std::string, dosimetry::GuardState>> saved_guard; // id -> (day, state)
    Clock::time_point last_guard_save{};
    bool guard_dirty = false;
    std::string guard_path() const { return opt.state_dir + "/guard.json"; }
    void load_guard_state();
    void save_guard_state();
    void configure_protection();
    void push_guards(engine::Engine& e);
    void protect_second(const std::string& id, const engine::DoseFrame& f, double now);
    void warn_event(const std::string& id, Protect& p, const std::string& kind, const std::string& message,
                    double threshold, double value);

    Impl(Options o, config::Config c) : opt(std::move(o)), cfg(std::move(c)), keeper(opt.state_dir) {
        if (!opt.client_name.empty()) cfg.jack.client_name = opt.client_name;
        const sigset_t set = handled_signals();
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
        sigfd.assign(fd);
    }
    ~Impl() override {
        // Leave JACK before anything the RT thread uses is destroyed (also when an exception
        // ends io.run()).
        close_jack();
    }

    // --- the mix the engine runs: live mix + dim/panic + MIDI layers ----------------------------
    const Layer* layer_of(const std::string& id) const {
        const auto it = layers.find(id);
        return it == layers.end() ? nullptr : &it->second;
    }
    double engine_master(const std::string& id, double live_db) const {
        const Layer* l = layer_of(id);
        if (panicked || (l && l->panic)) return -std::numeric_limits<double>::infinity();
        const double dim = (dim_db < 0 ? dim_db : 0.0) + (l && l->dim ? l->dim_db : 0.0);
        if (dim < 0 && std::isfinite(live_db)) return std::max(-90.0, live_db + dim);
        return live_db;
    }
    // A send as the engine plays it: "more me" raises, talkback ducks the others and opens its mic.
    SendValue engine_send(const std::string& id, const std::string& input, const SendValue& live) const {
        SendValue v = live;
        const Layer* l = layer_of(id);
        if (l && l->more && std::isfinite(v.gain_db) &&
            std::find(l->more_inputs.begin(), l->more_inputs.end(), input) != l->more_inputs.end())
            v.gain_db = std::min(12.0, v.gain_db + l->more_db);
        const Layer* t = l && l->talk ? l : talk_all.talk ? &talk_all : nullptr;
        if (t) {
            if (!t->talk_input.empty() && input == t->talk_input) {
                v.gain_db = 0;
                v.mute = false;
            } else if (std::isfinite(v.gain_db)) {
                v.gain_db = std::max(-90.0, v.gain_db + t->talk_db);
            }
        }
        return v;
    }
    const std::string* talk_input_of(const std::string& id) const {
        const Layer* l = layer_of(id);
        const Layer* t = l && l->talk ? l : talk_all.talk ? &talk_all : nullptr;
        return t && !t->talk_input.empty() ? &t->talk_input : nullptr;
    }
    config::Config engine_cfg() const {
        config::Config c = eff;
        for (config::Musician& m : c.musicians) {
            m.mix.master_db = engine_master(m.id, m.mix.master_db);
            for (config::Send& sd : m.mix.sends) {
                const SendValue v = engine_send(m.id, sd.input, SendValue{sd.gain_db, sd.pan, sd.mute});
                sd.gain_db = v.gain_db;
                sd.mute = v.mute;
            }
            if (const std::string* tin = talk_input_of(m.id)) {
                bool have = false;
                for (const config::Send& sd : m.mix.sends) have = have || sd.input == *tin;
                if (!have) {
                    config::Send sd;
                    sd.input = *tin;
                    sd.gain_db = 0;
                    m.mix.sends.push_back(sd);
                }
            }
        }
        return c;
    }
    void apply_masters(uint32_t ramp_samples = 0) {
        if (!eng) return;
        for (const config::Musician& m : eff.musicians)
            eng->set_master(m.id, engine_master(m.id, m.mix.master_db), ramp_samples);
    }
    void rebuild_engine() {
        if (!eng) return;
        eng->apply_config(engine_cfg(), engine::StartMode::fade_in);
        keeper.bind(*eng);
        if (jack) publish_ports();
    }
    void push_layers(const std::string& id);
    void push_all_layers();
    // --- MIDI -------------------------------------------------------------------------------
    void build_midi();
    void build_controller(std::size_t c);
    void on_midi();
    void midi_tick();
    void midi_feedback();
    void apply_action(std::size_t c, const midi::Action& a);
    void start_learn(const config::LearnTarget& t, std::vector<std::size_t> ctls, ControlHandler::Reply reply,
                     json::value id);
    void finish_learn(std::size_t c, const midi::LearnCapture& cap);
    json::value forget_learned(const std::string& target);
    json::object layers_json(const std::string& id) const;
    void set_panic(const std::string& mid, bool on, const std::string& by);
    void cancel_learn(const std::string& why);
    std::string learn_path() const { return opt.state_dir + "/midi-learn.json"; }
    void load_learned();
    void save_learned() const;
    void refresh_dose();
    json::value midi_status() const;
    // Recalls a saved scene (all musicians, or `only`): checked, clamped (listed in `clamped` and
    // logged), ramped. False with `err`; `corrupt` tells a damaged scenes file from an unknown name.
    bool recall_scene(const std::string& name, const std::string& only, json::array& applied,
                      json::array& skipped, std::string& err, json::array* clamped = nullptr,
                      bool* corrupt = nullptr);
    // --- control socket ----------------------------------------------------------------------
    std::string handle(const control::Request& r, const Peer& from, const Reply& later) override;
    void abandoned(uint64_t session) override;
    boost::json::value status_json() override;
    void hold_meters(boost::json::value& status, uint64_t& mark) override;
    uint64_t hold_seq = 0;         // the last harvest of the meters' holds
    uint64_t status_file_mark = 0; // status.json's position in them
    uint64_t learn_session = 0;    // the control connection waiting for the pending learn
    std::vector<std::string> reload_config();
    std::string scenes_path() const { return opt.state_dir + "/scenes.json"; }
    void apply_send(const std::string& musician, const std::string& input, const SendValue& v);

    // --- sessions ---------------------------------------------------------------------------
    std::vector<PortSpec> port_specs() const;
    bool start_session();
    void end_session(const std::string& why);
    void replace_engine(uint32_t rate);
    void publish_ports();
    void drain(engine::Engine& e, bool bound);
    bool heard(uint64_t start_sample);
    // --- control ----------------------------------------------------------------------------
    void on_tick();
    void reload() { reload_config(); }
    void shutdown();
    void fade_out();
    bool close_jack();
    void leave_jack();
    void drain_old_engines(bool flush);
    void finish_reload();
    void check_lookahead_changes();
    void write_status();
    json::value scene_snapshot() const;
    json::object load_scenes(std::string& err) const;
    bool save_scenes(const json::object& scenes, std::string& err) const;
    std::string summary() const;
    void watchdog();
    void save_mix();
    Clock::time_point last_mix_save{};
    void arm_timer();
    void arm_signals();
    void on_signal(int sig);
};

std::vector<PortSpec> Daemon::Impl::port_specs() const {
    std::vector<PortSpec> out;
    const double fs = eng->sample_rate();
    for (const config::Input& in : eff.inputs) {
        PortSpec p;
        p.name = in.id;
        p.input = true;
        p.slot = eng->input_slot(in.id);
        p.connect = in.connect;
        out.push_back(std::move(p));
    }
    for (const config::Musician& m : eff.musicians) {
        // What the strip's limiter really delays by: a reload that changes lookahead_ms keeps the
        // running delay line (ARCHITECTURE.md), so the new config's figure would be wrong.
        const int running = eng->latency_frames(m.id);
        const int lat = running >= 0 ? running : musician_latency(m, fs);
        for (int c = 0; c < m.channels(); ++c) {
            PortSpec p;
            p.name = m.channels() == 1 ? m.id : m.id + (c == 0 ? "_L" : "_R");
            p.input = false;
            p.slot = eng->output_slot(m.id, c);
            p.latency = lat;
            if (static_cast<std::size_t>(c) < m.connect.size())
                p.connect.push_back(m.connect[static_cast<std::size_t>(c)]);
            out.push_back(std::move(p));
        }
    }
    for (const PortSpec& l : lingering) {
        bool dup = false;
        for (const PortSpec& p : out) dup = dup || p.name == l.name;
        if (!dup) out.push_back(l);
    }
    return out;
}

void Daemon::Impl::publish_ports() {
    std::string err;
    if (!jack->set_ports(port_specs(), eng.get(), err)) log::error("%s", err.c_str());
}

bool Daemon::Impl::start_session() {
    jack = std::make_unique<JackBackend>();
    std::string err;
    if (!jack->open(eff.jack.client_name, err)) {
        if (err != last_connect_error)
            log::warn("JACK server '%s': %s; retrying (earshotd never starts a server itself)",
                      server_name().c_str(), err.c_str());
        last_connect_error = err;
        jack.reset();
        return false;
    }
    last_connect_error.clear();
    const uint32_t fs = jack->sample_rate();
    const uint32_t period = jack->buffer_size();
    if (fs < 8000 || fs > 384000) {
        log::error("JACK runs at %u Hz, outside 8 kHz .. 384 kHz: not joining", fs);
        jack.reset();
        return false;
    }
    eng = std::make_unique<engine::Engine>(double(fs), std::max<uint32_t>(period, 64));
    // From silence, up to the live mix (SPEC §3.2): a new engine always fades in, with every
    // guard's attenuation in place from its first sample (the fade ends on the guarded level).
    eng->apply_config(engine_cfg(), engine::StartMode::fade_in);
    push_guards(*eng);
    keeper.bind(*eng);
    fw_edges.clear();
    meters.clear();
    lingering.clear();
    publish_ports();
    if (!jack->activate(err)) {
        log::error("JACK: %s", err.c_str());
        jack.reset();
        eng.reset();
        return false;
    }
    jack->connect_all();
    state = State::connected;
    backoff_s = 0;
    logged_xruns = 0;
    logged_rt_errors = 0;
    RtInfo rt = jack->rt_info();
    rt.policy &= ~SCHED_RESET_ON_FORK; // PipeWire's threads carry it
    log::notice("connected to JACK server '%s' as '%s': %u Hz, %u frames per period, latency %d frames "
                "(%.2f ms); mixes fade in over %.0f ms",
                server_name().c_str(), jack->client_name().c_str(), fs, period, eng->latency_frames(),
                1e3 * eng->latency_frames() / fs, eff.mixer.startup_ramp_ms);
    if (rt.policy == SCHED_FIFO || rt.policy == SCHED_RR)
        log::info("process thread: %s priority %d (from JACK)",
                  rt.policy == SCHED_FIFO ? "SCHED_FIFO" : "SCHED_RR", rt.priority);
    else if (rt.server_realtime)
        log::warn("the JACK server runs real-time but earshotd's process thread does not (no permission: "
                  "LimitRTPRIO in the unit, or the audio group's rtprio limit)");
    else
        log::info("the JACK server runs without real-time scheduling; so does the process thread");
    attempts = 0;
    // READY=1 once: at the first connection (systemd then sees the service up), or to close a
    // RELOADING=1 whose reload re-joined JACK (a new client name). A reconnect after the server
    // went away only updates STATUS=: for systemd the service was up all along.
    if (!ready_sent || reload_open) {
        notify::ready(summary());
        ready_sent = true;
        reload_open = false;
    } else {
        notify::status(summary());
    }
    return true;
}

void Daemon::Impl::drain(engine::Engine& e, bool bound) {
    const double now = wall_now();
    engine::DoseFrame f;
    while (e.pop_dose(f)) {
        if (!bound) continue;
        const bool h = heard(f.start_sample);
        keeper.add(f, h, now);
        if (h && f.source == 0 && f.samples > 0) {
            const std::string id = e.musician_id(f.musician_key);
            if (!id.empty()) protect_second(id, f, now);
        }
    }
    engine::MeterFrame m;
    while (e.pop_meter(m)) {
        if (!bound) continue;
        Meter& x = meters[m.musician_key];
        x.peak[0] = m.peak[0];
        x.peak[1] = m.peak[1];
        x.limiter_gain = m.limiter_gain;
        x.master_gain = m.master_gain;
        x.held_peak[0] = std::max(x.held_peak[0], m.peak[0]);
        x.held_peak[1] = std::max(x.held_peak[1], m.peak[1]);
        x.held_lim = std::min(x.held_lim, m.limiter_gain);
        x.held_cap = std::min(x.held_cap, m.cap_gain);
        x.guard_gain = m.guard_gain;
    }
}

bool Daemon::Impl::heard(uint64_t start_sample) {
    bool on = false;
    for (const FreewheelEdge& e : fw_edges)
        if (e.engine_sample <= start_sample) on = e.on;
    // Edges older than the last one before this frame are no longer needed.
    while (fw_edges.size() > 1 && fw_edges[1].engine_sample <= start_sample) fw_edges.erase(fw_edges.begin());
    return !on;
}

void Daemon::Impl::end_session(const std::string& why) {
    log::warn("%s; earshotd keeps the dose and waits for the JACK server", why.c_str());
    leave_jack();    // the process thread is gone after this (or abandoned with the client)
    hub.drop_jack(); // RtMidi's JACK clients died with the server
    jack.reset();
    eng.reset();
    state = State::waiting;
    backoff_s = opt.retry_min_s;
    next_retry =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_s));
    notify::status("waiting for JACK server '" + server_name() + "'");
}

void Daemon::Impl::replace_engine(uint32_t rate) {
    log::notice("JACK sample rate is now %u Hz: new engine, the mixes fade in again", rate);
    drain(*eng, true);
    auto next = std::make_unique<engine::Engine>(double(rate), std::max<uint32_t>(jack->buffer_size(), 64));
    next->apply_config(engine_cfg(), engine::StartMode::fade_in);
    push_guards(*next);
    // The old engine keeps its open second and its freewheel edges until the RT thread has let
    // go of it (drain_old_engines): then that second is flushed into the dose, not lost.
    old_engines.push_back(OldEngine{std::move(eng), std::move(fw_edges)});
    eng = std::move(next);
    keeper.bind(*eng);
    fw_edges.clear();
    meters.clear();
    publish_ports();
}

void Daemon::Impl::finish_reload() {
    // READY=1 closes the RELOADING=1 only while the client is connected; a reload that left JACK
    // (a new client name) gets its READY=1 when it has joined again (start_session).
    if (reload_open && state == State::connected) {
        notify::ready(summary());
        reload_open = false;
    } else {
        notify::status(summary());
    }
}

std::vector<std::string> Daemon::Impl::reload_config() {
    // RELOADING=1 only where systemd sees a running service that is connected; before the first
    // connection the service is still starting, and READY=1 must wait for JACK (docs/daemon.md).
    if (ready_sent && state == State::connected && !reload_open) {
        notify::reloading();
        reload_open = true;
    }
    log::notice("reloading %s", opt.config_path.c_str());
    config::Config next;
    try {
        next = config::load_file(opt.config_path);
        if (!opt.client_name.empty()) next.jack.client_name = opt.client_name;
        std::vector<config::ConfigError> host = check_host(next);
        if (!host.empty()) throw config::ConfigErrors(std::move(host));
    } catch (const config::ConfigErrors& e) {
        std::vector<std::string> errs;
        for (const auto& err : e.errors()) {
            log::error("%s", err.format().c_str());
            errs.push_back(err.format());
        }
        log::error("reload rejected (%zu error%s); the running config stays", e.errors().size(),
                   e.errors().size() == 1 ? "" : "s");
        finish_reload();
        return errs;
    }
    if (std::string cerr; !ControlServer::check_config(next.control, cerr)) {
        log::error("%s: %s", opt.config_path.c_str(), cerr.c_str());
        log::error("reload rejected; the running config stays");
        notify::ready(summary());
        return {opt.config_path + ": " + cerr};
    }
    const bool rename = next.jack.client_name != cfg.jack.client_name;
    // The ports as they are now (with their slots): removed ones stay while their outputs fade out.
    const std::vector<PortSpec> before = state == State::connected ? port_specs() : std::vector<PortSpec>{};
    cfg = std::move(next);
    mix.sync(cfg);
    eff = mix.effective(cfg);
    save_mix();
    keeper.configure(cfg, wall_now());
    configure_protection();
    for (auto it = layers.begin(); it != layers.end();) // musicians that are gone lose their layers
        it = cfg.musician_index(it->first) < 0 ? layers.erase(it) : std::next(it);
    build_midi();
    if (state == State::connected) {
        if (rename) {
            log::notice("jack.client_name changed to '%s': re-joining JACK under the new name",
                        eff.jack.client_name.c_str());
            fade_out();
            end_session("client renamed");
            next_retry = Clock::now();
        } else {
            // New musicians join silent, get their ports and connections, and only then fade in,
            // so what reaches the ears starts from silence however long connecting takes.
            std::vector<std::string> fresh;
            config::Config ec = engine_cfg();
            for (config::Musician& m : ec.musicians) {
                bool known = false;
                for (const PortSpec& p : before) known = known || p.name == m.id || p.name == m.id + "_L";
                if (known) continue;
                fresh.push_back(m.id);
                m.mix.master_db = -std::numeric_limits<double>::infinity();
            }
            if (!eng->apply_config(ec, engine::StartMode::fade_in)) log::error("engine command queue full");
            keeper.bind(*eng);
            lingering.clear();
            const std::vector<PortSpec> after = port_specs();
            for (const PortSpec& p : before) {
                bool kept = false;
                for (const PortSpec& q : after) kept = kept || q.name == p.name;
                if (!kept) lingering.push_back(p);
            }
            lingering_until =
                Clock::now() + std::chrono::milliseconds(static_cast<int>(eff.mixer.ramp_ms) + 300);
            publish_ports();
            const auto up =
                static_cast<uint32_t>(std::max(1.0, eff.mixer.startup_ramp_ms * 1e-3 * eng->sample_rate()));
            for (const std::string& id : fresh) {
                const int i = eff.musician_index(id);
                if (i >= 0)
                    eng->set_master(
                        id, engine_master(id, eff.musicians[static_cast<std::size_t>(i)].mix.master_db), up);
            }
            check_lookahead_changes();
        }
    }
    if (std::string cerr; !control.reconfigure(cfg.control, cerr))
        log::error("control socket: %s", cerr.c_str());
    log::notice("config reloaded: %zu inputs, %zu musicians", cfg.inputs.size(), cfg.musicians.size());
    finish_reload();
    return {};
}

void Daemon::Impl::check_lookahead_changes() {
    for (const config::Musician& m : eff.musicians) {
        const int running = eng->latency_frames(m.id);
        const int wanted = musician_latency(m, eng->sample_rate());
        if (running >= 0 && running != wanted)
            log::notice("%s: lookahead_ms %.2f (%d frames) takes effect at the next restart; the running "
                        "limiter keeps %d frames, and JACK is told so",
                        m.id.c_str(), m.protection.lookahead_ms, wanted, running);
    }
}

void Daemon::Impl::save_mix() {
    if (!mix.dirty()) return;
    last_mix_save = Clock::now();
    std::string err;
    if (!mix.save(opt.state_dir + "/mix.json", err))
        log::error_limited("mix-state", "mix state: %s", err.c_str());
}

std::string Daemon::Impl::summary() const {
    char b[256];
    if (state != State::connected || !jack) {
        std::snprintf(b, sizeof b, "waiting for JACK server '%s'; %zu musicians", server_name().c_str(),
                      eff.musicians.size());
        return b;
    }
    std::snprintf(b, sizeof b, "%zu musicians, %zu inputs; JACK '%s' %u Hz/%u, %llu xruns, DSP %.0f %%",
                  eff.musicians.size(), eff.inputs.size(), server_name().c_str(), jack->sample_rate(),
                  jack->buffer_size(), static_cast<unsigned long long>(jack->xruns()),
                  static_cast<double>(jack->cpu_load()));
    return b;
}

boost::json::value Daemon::Impl::status_json() {
    const double now = wall_now();
    json::object root;
    root["version"] = 1;
    root["time_utc"] = num(now, 3);
    root["pid"] = static_cast<int64_t>(::getpid());
    root["config"] = opt.config_path;
    json::object j;
    j["server"] = server_name();
    j["state"] = state == State::connected ? "connected" : "waiting";
    if (state == State::waiting) {
        j["attempts"] = attempts;
        j["retry_in_s"] =
            num(std::max(0.0, std::chrono::duration<double>(next_retry - Clock::now()).count()), 1);
    }
    if (state == State::connected && jack && eng) {
        j["client"] = jack->client_name();
        j["sample_rate"] = jack->sample_rate();
        j["period"] = jack->buffer_size();
        j["latency_frames"] = eng->latency_frames();
        j["xruns"] = jack->xruns();
        j["cycles"] = jack->cycles();
        j["dsp_load_pct"] = num(jack->cpu_load(), 1);
        j["freewheel"] = jack->freewheeling();
        const RtInfo rt = jack->rt_info();
        const int pol = rt.policy & ~SCHED_RESET_ON_FORK;
        j["realtime"] = pol == SCHED_FIFO || pol == SCHED_RR;
        j["rt_priority"] = rt.priority;
        const auto& c = eng->counters();
        json::object e;
        e["samples"] = c.samples.load();
        e["bad_input_blocks"] = c.bad_input_blocks.load();
        e["clamped_samples"] = c.clamped_samples.load();
        e["dose_frames_dropped"] = c.dose_dropped.load();
        e["silenced_cycles"] = jack->rt_errors();
        root["engine"] = std::move(e);
    }
    root["jack"] = std::move(j);
    json::array ms;
    for (const config::Musician& m : eff.musicians) {
        json::object o;
        o["id"] = m.id;
        o["name"] = m.name;
        o["channels"] = m.channels();
        o["ceiling_db_spl"] = num(m.protection.peak_ceiling_db_spl);
        if (const MixState::Musician* lm = mix.find(m.id)) {
            json::object mx;
            mx["master_db"] = control::db_json(lm->master_live);
            json::object sends;
            for (const auto& [in, sd] : lm->sends) {
                if (std::isinf(sd.live.gain_db) && !sd.live.mute && sd.live.pan == 0) continue; // off
                json::object so;
                so["gain_db"] = control::db_json(sd.live.gain_db);
                so["pan"] = sd.live.pan;
                so["mute"] = sd.live.mute;
                sends[in] = std::move(so);
            }
            mx["sends"] = std::move(sends);
            o["mix"] = std::move(mx);
        }
        o["layers"] = layers_json(m.id); // panic, dim, more me, talkback on top of the mix
        if (eng) {
            const uint32_t key = eng->musician_key(m.id);
            const auto it = meters.find(key);
            if (it != meters.end()) {
                // peak_db_spl, limiter_gr_db and the cap's gain reduction: hold_meters().
                const Meter& mt = it->second;
                if (m.protection.max_laeq_1s_dba) {
                    json::object cp;
                    cp["cap_dba"] = num(*m.protection.max_laeq_1s_dba, 1);
                    o["loudness_cap"] = std::move(cp);
                }
                o["master_gain_db"] = num(dsp::gain_to_db(mt.master_gain), 2);
                o["guard_gain_db"] = num(dsp::gain_to_db(mt.guard_gain), 2);
            }
        }
        if (const LastSecond* ls = keeper.last(m.id)) {
            json::array l;
            for (int c = 0; c < m.channels(); ++c) l.push_back(num(ls->laeq_dba[c], 2));
            o["laeq_1s_dba"] = std::move(l);
            o["level_dba"] = num(ls->level_dba, 2);
            o["lcpeak_dbc"] = num(ls->lcpeak_dbc, 1);
        }
        dosimetry::DoseStatus st;
        if (keeper.status(m.id, now, st)) {
            json::object d;
            d["day"] = st.day.str();
            d["seconds"] = num(st.today.seconds(), 1);
            d["niosh_pct"] = num(st.today.niosh_pct(), 4);
            d["osha_pct"] = num(st.today.osha_pct(), 4);
            d["osha_action_pct"] = num(st.today.osha_action_pct(), 4);
            d["eu_lex8h_dba"] = num(st.today.eu_lex8h_dba(), 2);
            d["lcpeak_max_dbc"] = num(st.today.lcpeak_max_dbc(), 1);
            d["who_weekly_pct"] = num(st.who_weekly_pct, 4);
            d["niosh_seconds_left"] = num(st.niosh_seconds_left, 0);
            d["who_seconds_left"] = num(st.who_seconds_left, 0);
            o["dose"] = std::move(d);
        }
        if (const auto pit = protect.find(m.id); pit != protect.end()) {
            const Protect& p = pit->second;
            if (p.guard.settings().mode != dosimetry::GuardMode::off) {
                json::object g;
                g["mode"] = p.guard.settings().mode == dosimetry::GuardMode::limit ? "limit" : "warn";
                g["attenuation_db"] = num(p.guard.attenuation_db(), 2);
                g["needed_db"] = num(p.guard.needed_db(), 2);
                g["allowed_dba"] = num(p.guard.allowed_dba(), 1);
                g["projected_pct"] = num(p.guard.projected_pct(), 1);
                g["over_budget"] = p.guard.over_budget();
                g["saturated"] = p.guard.saturated();
                if (eng) { // the engine's guard gain (the last meter window), for checking the ramp
                    const auto mt = meters.find(eng->musician_key(m.id));
                    if (mt != meters.end())
                        g["applied_db"] =
                            num(mt->second.guard_gain < 1.0f
                                    ? -dsp::gain_to_db(static_cast<double>(mt->second.guard_gain))
                                    : 0.0,
                                3);
                }
                g["suspended"] = p.guard.suspended();
                if (p.guard.suspended()) {
                    g["suspended_by"] = p.guard.suspended_by();
                    g["suspended_at_utc"] = num(p.guard.suspended_at(), 0);
                }
                g["show_end_utc"] =
                    std::isfinite(show_end_utc) ? json::value(show_end_utc) : json::value(nullptr);
                o["guard"] = std::move(g);
            }
            const auto warning = [](const Protect::Recent& r) {
                json::object w;
                w["time_utc"] = num(r.t_utc, 0);
                w["kind"] = r.kind;
                w["message"] = r.message;
                return w;
            };
            std::vector<const Protect::Recent*> recent; // the last 10 minutes, oldest first
            for (const auto* list : {&p.recent, &p.recent_momentary})
                for (const Protect::Recent& r : *list)
                    if (now - r.t_utc <= 600) recent.push_back(&r);
            std::stable_sort(
                recent.begin(), recent.end(),
                [](const Protect::Recent* a, const Protect::Recent* b) { return a->t_utc < b->t_utc; });
            json::array wa;
            for (const Protect::Recent* r : recent) wa.push_back(warning(*r));
            o["warnings"] = std::move(wa);
            o["last_dose_warning"] = p.last_dose ? json::value(warning(*p.last_dose)) : json::value(nullptr);
        }
        ms.push_back(std::move(o));
    }
    root["musicians"] = std::move(ms);
    json::object mixer;
    mixer["dim_db"] = dim_db < 0 ? json::value(dim_db) : json::value(nullptr);
    mixer["panic"] = panicked;
    json::array own_panic; // musicians silenced by their own (bound) controller's panic
    for (const auto& [id, l] : layers)
        if (l.panic) own_panic.emplace_back(id);
    mixer["panic_musicians"] = std::move(own_panic);
    root["mixer"] = std::move(mixer);
    root["midi"] = midi_status();
    const ControlStats cs = control.stats();
    json::object co;
    co["clients"] = cs.clients;
    co["requests"] = cs.requests;
    co["errors"] = cs.errors;
    co["refused"] = cs.refused;
    co["events_dropped"] = cs.events_dropped;
    co["slow_disconnects"] = cs.slow_disconnects;
    co["idle_disconnects"] = cs.idle_disconnects;
    co["paused"] = cs.paused;
    co["queued_bytes"] = cs.queued_bytes;
    root["control"] = std::move(co);
    return root;
}

void Daemon::Impl::hold_meters(json::value& status, uint64_t& mark) {
    const auto now = Clock::now();
    // Harvest: what the meters held since the last harvest becomes one entry of their history.
    const uint64_t next = hold_seq + 1;
    bool any = false;
    for (auto& [key, mt] : meters) {
        if (mt.held_peak[0] > 0 || mt.held_peak[1] > 0 || mt.held_lim < 1 || mt.held_cap < 1) {
            Meter::Held h;
            h.seq = next;
            h.t = now;
            h.peak[0] = mt.held_peak[0];
            h.peak[1] = mt.held_peak[1];
            h.lim = mt.held_lim;
            h.cap = mt.held_cap;
            mt.history.push_back(h);
            any = true;
        }
        mt.held_peak[0] = mt.held_peak[1] = 0;
        mt.held_lim = 1;
        mt.held_cap = 1;
        while (!mt.history.empty() &&
               (mt.history.size() > 1024 || now - mt.history.front().t > std::chrono::seconds(15)))
            mt.history.pop_front();
    }
    if (any) hold_seq = next;
    // A new consumer (mark 0) gets the last status interval.
    const auto window = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::max(opt.status_interval_s, 0.05)));
    json::value* ms = status.is_object() ? status.as_object().if_contains("musicians") : nullptr;
    if (ms && ms->is_array() && eng) {
        for (json::value& mv : ms->as_array()) {
            if (!mv.is_object() || !mv.as_object().if_contains("id")) continue;
            json::object& o = mv.as_object();
            const std::string id(o.at("id").as_string());
            const int mi = eff.musician_index(id);
            const auto it = meters.find(eng->musician_key(id));
            if (mi < 0 || it == meters.end()) continue;
            const config::Musician& m = eff.musicians[static_cast<std::size_t>(mi)];
            Meter::Held h;
            for (auto e = it->second.history.rbegin(); e != it->second.history.rend(); ++e) {
                if (mark == 0 ? now - e->t > window : e->seq <= mark) break;
                h.peak[0] = std::max(h.peak[0], e->peak[0]);
                h.peak[1] = std::max(h.peak[1], e->peak[1]);
                h.lim = std::min(h.lim, e->lim);
                h.cap = std::min(h.cap, e->cap);
            }
            const double off = config::calibration_offset_db(m.calibration);
            json::array pk;
            for (int c = 0; c < m.channels(); ++c) pk.push_back(num(dsp::gain_to_db(h.peak[c]) + off, 1));
            o["peak_db_spl"] = std::move(pk);
            o["limiter_gr_db"] = num(std::max(0.0, -dsp::gain_to_db(h.lim)), 2);
            if (json::value* cp = o.if_contains("loudness_cap"); cp && cp->is_object())
                cp->as_object()["gain_reduction_db"] = num(std::max(0.0, -dsp::gain_to_db(h.cap)), 2);
        }
    }
    mark = hold_seq;
}

void Daemon::Impl::write_status() {
    json::value root = status_json();
    hold_meters(root, status_file_mark);
    if (!write_file_atomic(opt.runtime_dir + "/status.json", json::serialize(root) + "\n"))
        log::warn_limited("status", "could not write %s/status.json: %s", opt.runtime_dir.c_str(),
                          std::strerror(errno));
}

json::value Daemon::Impl::scene_snapshot() const {
    json::object mus;
    for (const auto& [id, m] : mix.musicians()) {
        json::object mo;
        mo["master_db"] = control::db_json(m.master_live);
        json::object sends;
        for (const auto& [in, sd] : m.sends) {
            json::object so;
            so["gain_db"] = control::db_json(sd.live.gain_db);
            so["pan"] = sd.live.pan;
            so["mute"] = sd.live.mute;
            sends[in] = std::move(so);
        }
        mo["sends"] = std::move(sends);
        mus[id] = std::move(mo);
    }
    json::object scene;
    scene["saved_utc"] = num(wall_now(), 0);
    scene["musicians"] = std::move(mus);
    return scene;
}

json::object Daemon::Impl::load_scenes(std::string& err) const {
    std::string text;
    if (!read_text_file(scenes_path(), text)) {
        if (errno != ENOENT) err = scenes_path() + ": " + std::strerror(errno); // unreadable is not empty
        return json::object{};
    }
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object() || !v.as_object().if_contains("scenes") ||
        !v.as_object().at("scenes").is_object()) {
        err = scenes_path() + " is not a valid scenes file (" +
              (ec ? "not JSON: " + ec.message() : std::string("no \"scenes\" object")) + ")";
        return json::object{};
    }
    return v.as_object().at("scenes").as_object();
}

bool Daemon::Impl::save_scenes(const json::object& scenes, std::string& err) const {
    json::object root;
    root["version"] = 1;
    root["scenes"] = scenes;
    if (!write_file_durable(scenes_path(), json::serialize(root) + "\n")) {
        err = scenes_path() + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

void Daemon::Impl::abandoned(uint64_t session) {
    // The engineer who asked for a learn went away: the controllers stop waiting for a move.
    if (pending_learn && pending_learn->reply && learn_session == session) {
        learn_session = 0;
        cancel_learn("the client that asked for it disconnected");
        midi_feedback();
    }
}

std::string Daemon::Impl::handle(const control::Request& r, const Peer& from, const Reply& later) {
    using control::Command;
    const uid_t peer = from.uid;
    switch (r.cmd) {
    case Command::set: {
        const MixState::Musician* m = mix.find(r.musician);
        if (!m)
            return control::reply_error(r.id, control::code::not_found, "no musician '" + r.musician + "'");
        json::object res;
        res["musician"] = r.musician;
        if (r.input.empty()) {
            const double g = r.gain_db ? *r.gain_db : m->master_live;
            mix.set_master(r.musician, g);
            mix_changed = Clock::now();
            eff = mix.effective(cfg);
            if (eng) eng->set_master(r.musician, engine_master(r.musician, g));
            res["master_db"] = control::db_json(g);
            last_target = r.musician + ".master";
        } else {
            const auto it = m->sends.find(r.input);
            if (it == m->sends.end())
                return control::reply_error(r.id, control::code::not_found, "no input '" + r.input + "'");
            SendValue v = it->second.live;
            if (r.gain_db) v.gain_db = *r.gain_db;
            if (r.pan) v.pan = *r.pan;
            if (r.mute) v.mute = *r.mute;
            apply_send(r.musician, r.input, v);
            last_target = r.musician + (r.gain_db || !r.mute ? ".send." : ".mute.") + r.input;
            res["input"] = r.input;
            res["gain_db"] = control::db_json(v.gain_db);
            res["pan"] = v.pan;
            res["mute"] = v.mute;
        }
        log::info("control (uid %u): set %s%s%s", static_cast<unsigned>(peer), r.musician.c_str(),
                  r.input.empty() ? " master" : " / ", r.input.c_str());
        return control::reply_ok(r.id, std::move(res));
    }
    case Command::scene: {
        std::string err;
        json::object scenes = load_scenes(err);
        if (!err.empty() && r.scene_action != control::SceneAction::save &&
            r.scene_action != control::SceneAction::recall)
            return control::reply_error(r.id, control::code::internal, err);
        switch (r.scene_action) {
        case control::SceneAction::list: {
            json::array a;
            for (const auto& kv : scenes) {
                json::object e;
                e["name"] = kv.key();
                if (kv.value().is_object() && kv.value().as_object().if_contains("saved_utc"))
                    e["saved_utc"] = kv.value().as_object().at("saved_utc");
                a.push_back(std::move(e));
            }
            json::object res;
            res["scenes"] = std::move(a);
            return control::reply_ok(r.id, std::move(res));
        }
        case control::SceneAction::save: {
            json::object res;
            if (!err.empty()) {
                // A damaged scenes file is kept aside, never overwritten: its scenes may be
                // recoverable by hand. The new file starts with this scene.
                char stamp[32];
                const std::time_t t = static_cast<std::time_t>(wall_now());
                std::tm tm{};
                gmtime_r(&t, &tm);
                std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
                const std::string aside = scenes_path() + ".corrupt-" + stamp;
                if (::rename(scenes_path().c_str(), aside.c_str()) != 0)
                    return control::reply_error(r.id, control::code::internal,
                                                err + "; cannot move it aside (" + std::strerror(errno) +
                                                    "), so it is not overwritten");
                log::error("%s; moved to %s, a new scenes file is started", err.c_str(), aside.c_str());
                res["warning"] = err + "; the old file was moved to " + aside;
                err.clear();
            }
            scenes[r.scene] = scene_snapshot();
            if (!save_scenes(scenes, err)) return control::reply_error(r.id, control::code::internal, err);
            log::notice("control (uid %u): scene '%s' saved", static_cast<unsigned>(peer), r.scene.c_str());
            res["saved"] = r.scene;
            return control::reply_ok(r.id, std::move(res));
        }
        case control::SceneAction::remove: {
            if (!scenes.erase(r.scene))
                return control::reply_error(r.id, control::code::not_found, "no scene '" + r.scene + "'");
            if (!save_scenes(scenes, err)) return control::reply_error(r.id, control::code::internal, err);
            json::object res;
            res["deleted"] = r.scene;
            return control::reply_ok(r.id, std::move(res));
        }
        case control::SceneAction::recall: {
            json::array applied, skipped, clamped;
            bool corrupt = false;
            if (!recall_scene(r.scene, "", applied, skipped, err, &clamped, &corrupt))
                return control::reply_error(
                    r.id, corrupt ? control::code::internal : control::code::not_found, err);
            log::notice("control (uid %u): scene '%s' recalled (%zu musicians, %zu skipped, %zu clamped)",
                        static_cast<unsigned>(peer), r.scene.c_str(), applied.size(), skipped.size(),
                        clamped.size());
            json::object res;
            res["recalled"] = r.scene;
            res["musicians"] = std::move(applied);
            res["skipped"] = std::move(skipped);
            res["clamped"] = std::move(clamped);
            return control::reply_ok(r.id, std::move(res));
        }
        }
        break;
    }
    case Command::reload: {
        const std::vector<std::string> errs = reload_config();
        if (!errs.empty()) {
            std::string msg =
                "the config has " + std::to_string(errs.size()) + " error(s); the running config stays:";
            for (const std::string& e : errs) msg += "\n" + e;
            return control::reply_error(r.id, control::code::invalid_config, msg);
        }
        json::object res;
        res["reloaded"] = opt.config_path;
        res["musicians"] = cfg.musicians.size();
        res["inputs"] = cfg.inputs.size();
        return control::reply_ok(r.id, std::move(res));
    }
    case Command::dim: {
        dim_db = r.on ? r.dim_db : 0.0;
        apply_masters();
        log::notice("control (uid %u): dim %s", static_cast<unsigned>(peer), r.on ? "on" : "off");
        json::object res;
        res["dim_db"] = dim_db < 0 ? json::value(dim_db) : json::value(nullptr);
        return control::reply_ok(r.id, std::move(res));
    }
    case Command::panic: {
        // On: silence within one period. Off: every panic is released, everyone's and each
        // musician's own (a bound pad's), and the mixes come back over the start-up ramp.
        json::array released;
        if (!r.on)
            for (auto& [id, l] : layers)
                if (l.panic) {
                    released.emplace_back(id);
                    l.panic = false;
                    l.panic_by.clear();
                }
        set_panic(std::string(), r.on, "control");
        log::notice("control (uid %u): panic %s%s", static_cast<unsigned>(peer),
                    r.on ? "ON: every mix silenced" : "off",
                    released.empty() ? "" : " (and the musicians' own)");
        json::object res;
        res["panic"] = panicked;
        res["released"] = std::move(released);
        return control::reply_ok(r.id, std::move(res));
    }
    case Command::guard: {
        // Only an engineer on the control socket (control.group) gets here: no MIDI action can
        // suspend the guard (docs/protection.md).
        const auto it = protect.find(r.musician);
        if (it == protect.end())
            return control::reply_error(r.id, control::code::not_found, "no musician '" + r.musician + "'");
        dosimetry::DoseGuard& g = it->second.guard;
        std::string who = "uid " + std::to_string(peer);
        if (const passwd* pw = ::getpwuid(peer)) who = std::string(pw->pw_name) + " (" + who + ")";
        if (r.suspend) {
            g.suspend(who, wall_now());
            dosimetry::DoseStatus st;
            it->second.suspended_day =
                keeper.status(r.musician, wall_now(), st) ? st.day.str() : std::string();
            warn_event(r.musician, it->second, "guard_suspended",
                       "dose guard acknowledged and suspended by " + who, 0, g.attenuation_db());
        } else {
            g.resume();
            warn_event(r.musician, it->second, "guard_resumed", "dose guard resumed by " + who, 0, 0);
        }
        log::notice("control: dose guard of '%s' %s by %s", r.musician.c_str(),
                    r.suspend ? "suspended" : "resumed", who.c_str());
        json::object res;
        res["musician"] = r.musician;
        res["suspended"] = g.suspended();
        res["by"] = who;
        res["mode"] = g.settings().mode == dosimetry::GuardMode::limit  ? "limit"
                      : g.settings().mode == dosimetry::GuardMode::warn ? "warn"
                                                                        : "off";
        return control::reply_ok(r.id, std::move(res));
    }
    case Command::learn: {
        if (cfg.controllers.empty())
            return control::reply_error(r.id, control::code::unavailable,
                                        "MIDI learn needs a MIDI controller in the config (controllers:)");
        std::string why;
        const auto t = config::parse_learn_target(r.target, why);
        if (!t) return control::reply_error(r.id, control::code::bad_request, why);
        if (r.forget) {
            if (pending_learn && pending_learn->target.str() == t->str()) cancel_learn("forgotten");
            json::value res = forget_learned(t->str());
            if (res.is_null())
                return control::reply_error(r.id, control::code::not_found,
                                            "no learned binding of " + t->str());
            log::info("control (uid %u): learn --forget %s", static_cast<unsigned>(peer), t->str().c_str());
            return control::reply_ok(r.id, std::move(res));
        }
        const int mi = eff.musician_index(t->musician);
        if (mi < 0)
            return control::reply_error(r.id, control::code::not_found, "no musician '" + t->musician + "'");
        if (!t->input.empty() && eff.input_index(t->input) < 0)
            return control::reply_error(r.id, control::code::not_found, "no input '" + t->input + "'");
        // Every connected controller that may change this musician's mix listens (SPEC §3.5).
        std::vector<std::size_t> ctls;
        for (std::size_t c = 0; c < midi_ctls.size(); ++c) {
            if (!midi_ctls[c].mapper || !hub.input_open(c)) continue;
            const uint16_t b = midi_ctls[c].mapper->bound_musician();
            if (b == midi::all_musicians || b == static_cast<uint16_t>(mi)) ctls.push_back(c);
        }
        if (ctls.empty())
            return control::reply_error(r.id, control::code::unavailable,
                                        "no connected MIDI controller may change " + t->musician + "'s mix");
        log::info("control (uid %u): learn %s", static_cast<unsigned>(peer), t->str().c_str());
        start_learn(*t, std::move(ctls), later, r.id);
        learn_session = from.session; // abandoned() cancels it if this client goes away
        midi_feedback();              // the learn LEDs blink
        return {};                    // answered when a control moves, or after 10 s
    }
    case Command::status:
    case Command::ping:
    case Command::commands:
    case Command::subscribe:
    case Command::unsubscribe:
        break; // the server answers these itself
    }
    return control::reply_error(r.id, control::code::internal, "unhandled command");
}

void Daemon::Impl::apply_send(const std::string& musician, const std::string& input, const SendValue& v) {
    mix.set_send(musician, input, v);
    mix_changed = Clock::now();
    eff = mix.effective(cfg);
    const SendValue e = engine_send(musician, input, v);
    if (eng && !eng->set_send(musician, input, e.gain_db, e.pan, e.mute)) {
        // A send the running graph does not have yet: rebuild (ramped like a reload).
        rebuild_engine();
    }
}

bool Daemon::Impl::recall_scene(const std::string& name, const std::string& only, json::array& applied,
                                json::array& skipped, std::string& err, json::array* clamped, bool* corrupt) {
    err.clear();
    if (corrupt) *corrupt = false;
    const json::object scenes = load_scenes(err);
    if (!err.empty()) {
        if (corrupt) *corrupt = true;
        return false;
    }
    const json::value* sc = scenes.if_contains(name);
    if (!sc) {
        err = "no scene '" + name + "'";
        return false;
    }
    if (!sc->is_object() || !sc->as_object().if_contains("musicians") ||
        !sc->as_object().at("musicians").is_object()) {
        err = "scene '" + name + "' in " + scenes_path() + " is damaged (no \"musicians\" object)";
        if (corrupt) *corrupt = true;
        return false;
    }
    // A gain from the file: a number, or null/"off" for silence; anything else is not a gain.
    const auto gain_of = [](const json::value& v, double& out) {
        if (v.is_null() || (v.is_string() && (v.as_string() == "off" || v.as_string() == "-inf"))) {
            out = -std::numeric_limits<double>::infinity();
            return true;
        }
        if (v.is_double() || v.is_int64()) {
            out = json_db(v);
            return !std::isnan(out);
        }
        if (v.is_uint64()) {
            out = static_cast<double>(v.as_uint64());
            return true;
        }
        return false;
    };
    // What the recall changed from the file's value, and why: in the reply and in the log.
    const auto note = [&](const std::string& id, const std::string& what, const char* field,
                          json::value asked, json::value applied_v, const std::string& why) {
        const auto text = [](const json::value& v) {
            if (!v.is_number()) return json::serialize(v);
            char b[32];
            std::snprintf(b, sizeof b, "%g", v.to_number<double>());
            return std::string(b);
        };
        log::notice("scene '%s': %s %s %s: %s asked, %s applied (%s)", name.c_str(), id.c_str(), what.c_str(),
                    field, text(asked).c_str(), text(applied_v).c_str(), why.c_str());
        if (!clamped) return;
        json::object c;
        c["musician"] = id;
        c["target"] = what;
        c["field"] = field;
        c["asked"] = std::move(asked);
        c["applied"] = std::move(applied_v);
        c["why"] = why;
        clamped->push_back(std::move(c));
    };
    const auto fits = [&](const std::string& id, const std::string& what, const char* field, double g) {
        const double c = std::isfinite(g) ? std::clamp(g, -90.0, 12.0) : g;
        if (c != g) note(id, what, field, g, c, "outside [-90, +12] dB");
        return c;
    };
    for (const auto& mkv : sc->as_object().at("musicians").as_object()) {
        const std::string id(mkv.key());
        if (!only.empty() && id != only) continue; // a bound controller recalls only its musician's part
        const MixState::Musician* m = mix.find(id);
        if (!m || !mkv.value().is_object()) {
            skipped.push_back(json::value(id + ": not in the running config"));
            continue;
        }
        const json::object& mo = mkv.value().as_object();
        // The musician's own limit: while the dose guard lowers this mix (guard: limit), a scene
        // may lower it but not raise it above what plays now (docs/protection.md).
        const auto pit = protect.find(id);
        const bool guarded = pit != protect.end() &&
                             pit->second.guard.settings().mode == dosimetry::GuardMode::limit &&
                             (pit->second.guard.attenuation_db() > 0 || pit->second.guard.over_budget());
        const std::string guard_why = "the dose guard is lowering this mix: a scene does not raise it";
        if (const json::value* md = mo.if_contains("master_db")) {
            double g = 0;
            if (!gain_of(*md, g)) {
                skipped.push_back(json::value(id + " master: not a gain (" + json::serialize(*md) + ")"));
            } else {
                g = fits(id, "master", "gain_db", g);
                if (guarded && g > m->master_live) {
                    note(id, "master", "gain_db", control::db_json(g), control::db_json(m->master_live),
                         guard_why);
                    g = m->master_live;
                }
                mix.set_master(id, g);
            }
        }
        if (const json::value* sends = mo.if_contains("sends"); sends && sends->is_object()) {
            for (const auto& skv : sends->as_object()) {
                const std::string in(skv.key());
                const auto cur = m->sends.find(in);
                if (cur == m->sends.end() || !skv.value().is_object()) {
                    skipped.push_back(json::value(id + "/" + in + ": no such input now"));
                    continue;
                }
                const SendValue live = cur->second.live;
                const json::object& so = skv.value().as_object();
                SendValue v; // absent: off, centre, unmuted (what a snapshot leaves out)
                if (const json::value* gv = so.if_contains("gain_db")) {
                    if (!gain_of(*gv, v.gain_db)) {
                        note(id, in, "gain_db", *gv, control::db_json(live.gain_db),
                             "not a gain: left as it is");
                        v.gain_db = live.gain_db;
                    }
                }
                v.gain_db = fits(id, in, "gain_db", v.gain_db);
                if (const json::value* pv = so.if_contains("pan")) {
                    double p = 0;
                    if (!(pv->is_double() || pv->is_int64() || pv->is_uint64()) ||
                        !std::isfinite(p = pv->to_number<double>())) {
                        note(id, in, "pan", *pv, 0.0, "not a number: centre");
                        p = 0;
                    } else if (p < -1 || p > 1) {
                        note(id, in, "pan", p, std::clamp(p, -1.0, 1.0), "outside [-1, 1]");
                        p = std::clamp(p, -1.0, 1.0);
                    }
                    v.pan = p;
                }
                if (const json::value* mv = so.if_contains("mute")) {
                    if (mv->is_bool()) {
                        v.mute = mv->as_bool();
                    } else {
                        note(id, in, "mute", *mv, live.mute, "not true or false: left as it is");
                        v.mute = live.mute;
                    }
                }
                if (guarded) {
                    if (!v.mute && live.mute) {
                        note(id, in, "mute", false, true, guard_why);
                        v.mute = true;
                    }
                    if (v.gain_db > live.gain_db) {
                        note(id, in, "gain_db", control::db_json(v.gain_db), control::db_json(live.gain_db),
                             guard_why);
                        v.gain_db = live.gain_db;
                    }
                }
                mix.set_send(id, in, v);
            }
        }
        applied.push_back(json::value(id));
    }
    mix_changed = Clock::now();
    eff = mix.effective(cfg);
    if (only.empty()) {
        scene_all = name;
        scene_of.clear();
        for (const config::Musician& m : eff.musicians) scene_of[m.id] = name;
    } else {
        scene_of[only] = name;
    }
    // One rebuild with ramps (sends that were off may come on): no jumps (SPEC §3.2).
    rebuild_engine();
    return true;
}

// --- MIDI: the live view -------------------------------------------------------------------------

const MixState::Send* Daemon::Impl::View::send(uint16_t m, uint16_t i) const noexcept {
    if (m >= d.eff.musicians.size() || i >= d.eff.inputs.size()) return nullptr;
    const MixState::Musician* mu = d.mix.find(d.eff.musicians[m].id);
    if (!mu) return nullptr;
    const auto it = mu->sends.find(d.eff.inputs[i].id);
    return it == mu->sends.end() ? nullptr : &it->second;
}
const Daemon::Impl::Layer* Daemon::Impl::View::layer(uint16_t m) const noexcept {
    return m < d.eff.musicians.size() ? d.layer_of(d.eff.musicians[m].id) : nullptr;
}
double Daemon::Impl::View::send_gain_db(uint16_t m, uint16_t i) const noexcept {
    const MixState::Send* s = send(m, i);
    return s ? s->live.gain_db : 0.0;
}
bool Daemon::Impl::View::send_muted(uint16_t m, uint16_t i) const noexcept {
    const MixState::Send* s = send(m, i);
    return s && s->live.mute;
}
double Daemon::Impl::View::master_db(uint16_t m) const noexcept {
    if (m >= d.eff.musicians.size()) return 0.0;
    const MixState::Musician* mu = d.mix.find(d.eff.musicians[m].id);
    return mu ? mu->master_live : 0.0;
}
bool Daemon::Impl::View::more_me(uint16_t m) const noexcept {
    const Layer* l = layer(m);
    return l && l->more;
}
bool Daemon::Impl::View::talkback(uint16_t m) const noexcept {
    if (m == midi::all_musicians) return d.talk_all.talk;
    const Layer* l = layer(m);
    return l && l->talk;
}
bool Daemon::Impl::View::dimmed(uint16_t m) const noexcept {
    if (m == midi::all_musicians) return d.dim_db < 0;
    const Layer* l = layer(m);
    return l && l->dim;
}
bool Daemon::Impl::View::panicked(uint16_t m) const noexcept {
    if (m == midi::all_musicians) return d.panicked;
    const Layer* l = layer(m);
    return l && l->panic;
}
int Daemon::Impl::View::scene(uint16_t m) const noexcept {
    const std::string* name = nullptr;
    if (m == midi::all_musicians) {
        name = &d.scene_all;
    } else if (m < d.eff.musicians.size()) {
        const auto it = d.scene_of.find(d.eff.musicians[m].id);
        if (it != d.scene_of.end()) name = &it->second;
    }
    if (!name || name->empty()) return -1;
    for (std::size_t k = 0; k < d.midi_dir.scenes.size(); ++k)
        if (d.midi_dir.scenes[k] == *name) return static_cast<int>(k);
    return -1;
}
double Daemon::Impl::View::dose_pct(uint16_t m) const noexcept {
    return m < d.dose_cache.size() ? d.dose_cache[m] : std::numeric_limits<double>::quiet_NaN();
}
midi::DoseAlert Daemon::Impl::View::dose_alert(uint16_t m) const noexcept {
    if (m >= d.eff.musicians.size()) return midi::DoseAlert::none;
    const auto it = d.led_warnings.find(d.eff.musicians[m].id);
    if (it == d.led_warnings.end()) return midi::DoseAlert::none;
    // A momentary warning repeats every 10 s of audio while the level stays over: 12 s keeps the
    // LED blinking through; a dose notice blinks for 30 s.
    const auto now = Clock::now();
    if (it->second.momentary != Clock::time_point{} && now - it->second.momentary < std::chrono::seconds(12))
        return midi::DoseAlert::momentary;
    if (it->second.notice != Clock::time_point{} && now - it->second.notice < std::chrono::seconds(30))
        return midi::DoseAlert::notice;
    return midi::DoseAlert::none;
}

// --- MIDI: layers to the engine --------------------------------------------------------------------

void Daemon::Impl::push_layers(const std::string& id) {
    if (!eng) return;
    const config::Config ec = engine_cfg();
    const int i = ec.musician_index(id);
    if (i < 0) return;
    const config::Musician& m = ec.musicians[static_cast<std::size_t>(i)];
    bool ok = eng->set_master(m.id, m.mix.master_db);
    for (const config::Input& in : ec.inputs) {
        const config::Send* sd = nullptr;
        for (const config::Send& x : m.mix.sends)
            if (x.input == in.id) sd = &x;
        if (sd)
            ok = eng->set_send(m.id, sd->input, sd->gain_db, sd->pan, sd->mute) && ok;
        else
            eng->set_send(m.id, in.id, -std::numeric_limits<double>::infinity(), 0, false); // may not exist
    }
    if (!ok) rebuild_engine(); // a send the graph does not have yet (the talkback mic): ramped rebuild
}

void Daemon::Impl::push_all_layers() {
    if (!eng) return;
    // Per-send commands while they fit the engine's queue comfortably, else one ramped rebuild.
    if (eff.musicians.size() * (eff.inputs.size() + 1) <= 512)
        for (const config::Musician& m : eff.musicians) push_layers(m.id);
    else
        rebuild_engine();
}

// Panic for one musician (a bound controller's; `mid` given) or everyone (`mid` empty). On:
// silence within one period. Off: back up over the start-up ramp, like a start.
void Daemon::Impl::set_panic(const std::string& mid, bool on, const std::string& by) {
    const uint32_t period = jack ? std::max<uint32_t>(1, jack->buffer_size()) : 256;
    const uint32_t up =
        eng ? static_cast<uint32_t>(std::max(1.0, eff.mixer.startup_ramp_ms * 1e-3 * eng->sample_rate())) : 0;
    if (mid.empty()) {
        panicked = on;
        apply_masters(on ? period : up);
        return;
    }
    Layer& l = layers[mid];
    l.panic = on;
    l.panic_by = on ? by : std::string();
    const int i = eff.musician_index(mid);
    if (eng && i >= 0)
        eng->set_master(mid, engine_master(mid, eff.musicians[static_cast<std::size_t>(i)].mix.master_db),
                        on ? period : up);
}

// The momentary layers on a musician's mix, for status.json: what the engine plays beyond `mix`.
json::object Daemon::Impl::layers_json(const std::string& id) const {
    const Layer* l = layer_of(id);
    json::object o;
    o["panic"] = panicked || (l && l->panic);
    o["own_panic"] = l && l->panic ? json::value(l->panic_by) : json::value(nullptr);
    const double dim = (dim_db < 0 ? dim_db : 0.0) + (l && l->dim ? l->dim_db : 0.0);
    o["dim_db"] = dim < 0 ? json::value(dim) : json::value(nullptr);
    o["more_me"] = l && l->more;
    o["talkback"] = (l && l->talk) || talk_all.talk;
    return o;
}

// A warning event for the musician's pad LED (docs/midi.md, "Dose LEDs").
void Daemon::Impl::note_led_warning(const std::string& id, const std::string& kind) {
    LedWarning& w = led_warnings[id];
    if (kind.rfind("momentary", 0) == 0)
        w.momentary = Clock::now();
    else if (kind == "niosh_daily" || kind == "who_weekly" || kind == "guard_over_budget")
        w.notice = Clock::now();
}

// The engine's command queue was full at some point (a command was dropped): the mix state and
// the engine may differ. Send the whole mix again as one ramped graph swap; retried every tick
// until it fits.
void Daemon::Impl::reconcile_engine() {
    if (!eng) {
        engine_stale = false;
        return;
    }
    const uint64_t dropped = eng->counters().commands_dropped.load();
    if (dropped != engine_dropped_seen) {
        engine_dropped_seen = dropped;
        engine_stale = true;
    }
    if (!engine_stale) return;
    if (eng->apply_config(engine_cfg(), engine::StartMode::fade_in)) {
        keeper.bind(*eng);
        if (jack) publish_ports();
        engine_stale = false;
        log::warn_limited("engine-resync", "engine command queue was full: the mix was sent again");
    }
    engine_dropped_seen = eng->counters().commands_dropped.load();
}

// --- MIDI: controllers -----------------------------------------------------------------------------

namespace {

bool overlaps(const midi::ControlSource& a, const midi::ControlSource& b) {
    if (a.type != b.type) return false;
    if (a.type != midi::SourceType::pitch_bend && a.number != b.number) return false;
    return a.channel == b.channel || a.channel == midi::any_channel || b.channel == midi::any_channel;
}

// What a learned binding becomes: a gain takes a fader, knob or pitch bend (absolute) or a
// relative encoder in the encoding its values showed; a mute takes a button (toggle) or a
// fader (absolute, on above half). Refused (nullopt, with the reason): a button for a gain, and
// a CC that moved like an encoder whose encoding could not be told.
std::optional<midi::ControlKind> learned_kind(const config::LearnTarget& t, const midi::LearnCapture& cap,
                                              std::string& why) {
    const midi::ControlSource& s = cap.source;
    const bool button = s.type == midi::SourceType::note || s.type == midi::SourceType::program;
    if (t.kind == config::LearnTarget::Kind::mute)
        return button || s.type == midi::SourceType::cc ? midi::ControlKind::toggle
                                                        : midi::ControlKind::absolute;
    if (button) {
        why = midi::describe(s) + " is a button; " + t.str() + " is a gain: move a fader or a knob";
        return std::nullopt;
    }
    if (cap.unclear) {
        std::string vals;
        for (std::size_t k = 0; k < cap.n_values; ++k)
            vals += (k ? ", " : "") + std::to_string(cap.values[k]);
        why = midi::describe(s) + " sent " + vals +
              ": that looks like a relative encoder, but not which kind; learn again and turn it both ways "
              "(or map it in the config with kind: relative_twos_complement, relative_signed_bit or "
              "relative_binary_offset)";
        return std::nullopt;
    }
    return cap.motion;
}

midi::Mapping learned_mapping(const config::LearnTarget& t, const midi::ControlSource& s,
                              midi::ControlKind k) {
    midi::Mapping mp;
    mp.source = s;
    mp.kind = k;
    mp.action.type = t.kind == config::LearnTarget::Kind::master ? midi::ActionType::master
                     : t.kind == config::LearnTarget::Kind::send ? midi::ActionType::send_gain
                                                                 : midi::ActionType::send_mute;
    mp.action.musician = t.musician;
    mp.action.input = t.input;
    return mp;
}

const char* source_type_name(midi::SourceType t) {
    return midi::name(t);
}

} // namespace

void Daemon::Impl::build_midi() {
    if (pending_learn) cancel_learn("the config was reloaded");
    midi_dir = config::midi_directory(cfg);
    hub.configure(cfg.controllers);
    std::vector<MidiCtl> old = std::move(midi_ctls); // counters carry over a reload, by id
    midi_ctls.assign(cfg.controllers.size(), MidiCtl{});
    for (std::size_t c = 0; c < cfg.controllers.size(); ++c)
        for (MidiCtl& o : old)
            if (o.id == cfg.controllers[c].id) midi_ctls[c] = std::move(o);
    refresh_dose();
    for (std::size_t c = 0; c < cfg.controllers.size(); ++c) build_controller(c);
}

void Daemon::Impl::build_controller(std::size_t c) {
    const config::Controller& ctl = cfg.controllers[c];
    MidiCtl& mc = midi_ctls[c];
    MidiCtl old = std::move(mc);
    mc = MidiCtl{};
    mc.id = ctl.id;
    mc.scope_rejected = old.scope_rejected;
    mc.learn_refused = old.learn_refused;
    mc.before = old.before;
    if (old.mapper) { // the counters carry over a rebuild (a learned binding, a reload)
        const midi::MapperStats& o = old.mapper->stats();
        mc.before.events += o.events;
        mc.before.unmatched += o.unmatched;
        mc.before.actions += o.actions;
        mc.before.takeover_waits += o.takeover_waits;
        mc.before.scope_rejected += o.scope_rejected;
        mc.before.pairs_timed_out += o.pairs_timed_out;
        mc.before.learned += o.learned;
    }
    std::vector<Learned>& ls = learned[ctl.id];
    for (int attempt = 0; attempt < 2; ++attempt) {
        midi::ControllerConfig cc = ctl.midi;
        std::vector<std::string> targets = ctl.learn_targets;
        // A learned binding replaces what the config maps to the same control.
        for (const Learned& l : ls)
            for (std::size_t k = cc.mappings.size(); k-- > 0;)
                if (overlaps(cc.mappings[k].source, l.source)) {
                    cc.mappings.erase(cc.mappings.begin() + static_cast<std::ptrdiff_t>(k));
                    targets.erase(targets.begin() + static_cast<std::ptrdiff_t>(k));
                }
        const std::size_t first_learned = cc.mappings.size();
        for (const Learned& l : ls) {
            std::string why;
            const auto t = config::parse_learn_target(l.target, why);
            if (t) cc.mappings.push_back(learned_mapping(*t, l.source, l.kind));
            targets.emplace_back();
        }
        std::vector<midi::BuildError> errs;
        auto mapper = midi::Mapper::build(cc, midi_dir, errs);
        std::optional<midi::Feedback> fb;
        if (mapper) fb = midi::Feedback::build(cc, *mapper, midi_dir, errs);
        if (mapper && fb) {
            mc.mapper = std::move(mapper);
            mc.fb = std::move(fb);
            mc.learn_targets = std::move(targets);
            return;
        }
        // Learned bindings the config no longer allows (a musician or input removed, a new
        // binding of the controller): dropped and reported; the config's own mappings were valid.
        std::set<std::size_t> bad;
        for (const midi::BuildError& e : errs) {
            log::warn("controller '%s': learned binding dropped: %s", ctl.id.c_str(),
                      midi::to_string(e, ctl.id).c_str());
            if (e.mapping >= 0 && static_cast<std::size_t>(e.mapping) >= first_learned)
                bad.insert(static_cast<std::size_t>(e.mapping) - first_learned);
        }
        if (bad.empty()) break;
        std::vector<Learned> keep;
        for (std::size_t k = 0; k < ls.size(); ++k)
            if (!bad.count(k)) keep.push_back(ls[k]);
        ls = std::move(keep);
        save_learned();
    }
    log::error("controller '%s': cannot build its mappings; it is ignored", ctl.id.c_str());
}

void Daemon::Impl::on_midi() {
    midi::MidiEvent e;
    for (std::size_t c = 0; c < midi_ctls.size() && c < hub.size(); ++c) {
        while (hub.pop(c, e)) {
            if (!midi_ctls[c].mapper) continue;
            const midi::ActionList al = midi_ctls[c].mapper->map(e, view);
            for (const midi::Action& a : al) apply_action(c, a);
            // A finished learn is installed before the next event is mapped: no event of the
            // learned control acts through the old mappings.
            if (midi_ctls[c].mapper)
                if (const auto cap = midi_ctls[c].mapper->take_learned()) finish_learn(c, *cap);
        }
    }
    midi_feedback();
}

void Daemon::Impl::midi_tick() {
    reconcile_engine(); // every engine command the MIDI path (or anything) could not queue
    if (midi_ctls.empty()) return;
    on_midi(); // events whose wake-up raced with the last drain (a safety net; normally empty)
    const uint64_t now_us = MidiHub::now_us();
    for (std::size_t c = 0; c < midi_ctls.size(); ++c) {
        if (!midi_ctls[c].mapper) continue;
        const midi::ActionList al = midi_ctls[c].mapper->tick(now_us, view);
        for (const midi::Action& a : al) apply_action(c, a);
        if (midi_ctls[c].mapper)
            if (const auto cap = midi_ctls[c].mapper->take_learned()) finish_learn(c, *cap);
    }
    if (pending_learn && Clock::now() >= pending_learn->deadline)
        cancel_learn("no control moved within 10 s");
    hub.tick(state == State::connected); // hot-plug: once a second, and when JACK's graph changed
    std::size_t c = 0;
    while (hub.take_replugged(c)) {
        if (c >= midi_ctls.size() || !midi_ctls[c].mapper) continue;
        midi_ctls[c].mapper->reset(); // pick-up, 14-bit pairs, toggles: the device starts afresh
        if (midi_ctls[c].fb && hub.feedback_open(c))
            hub.send(c, midi_ctls[c].fb->resync(view, midi_ctls[c].mapper->learning()));
    }
    midi_feedback();
}

void Daemon::Impl::midi_feedback() {
    for (std::size_t c = 0; c < midi_ctls.size(); ++c) {
        MidiCtl& mc = midi_ctls[c];
        if (!mc.fb || !mc.mapper || !hub.feedback_open(c)) continue; // nothing is marked as shown then
        const std::vector<midi::MidiMessage> msgs = mc.fb->update(view, mc.mapper->learning());
        if (!msgs.empty()) hub.send(c, msgs);
    }
}

void Daemon::Impl::refresh_dose() {
    const double now = wall_now();
    dose_cache.assign(eff.musicians.size(), std::numeric_limits<double>::quiet_NaN());
    for (std::size_t i = 0; i < eff.musicians.size(); ++i) {
        dosimetry::DoseStatus st;
        if (keeper.status(eff.musicians[i].id, now, st)) // the day's NIOSH or the week's WHO, the larger
            dose_cache[i] =
                std::max(st.today.niosh_pct(), std::isfinite(st.who_weekly_pct) ? st.who_weekly_pct : 0.0);
    }
}

void Daemon::Impl::apply_action(std::size_t c, const midi::Action& a) {
    MidiCtl& mc = midi_ctls[c];
    const config::Controller& ctl = cfg.controllers[c];
    const uint16_t bound = mc.mapper->bound_musician();
    const bool one = a.musician < eff.musicians.size();
    // Scope (SPEC §3.5), checked again where it matters: a bound controller touches its musician only.
    if (!midi::in_scope(a, bound) || (bound != midi::all_musicians && a.musician != bound) ||
        (!one && a.musician != midi::all_musicians)) {
        ++mc.scope_rejected;
        log::error_limited("midi-scope", "controller '%s': %s action outside its scope refused",
                           ctl.id.c_str(), midi::name(a.type));
        return;
    }
    const std::string mid = one ? eff.musicians[a.musician].id : std::string();
    const std::string in = a.input < eff.inputs.size() ? eff.inputs[a.input].id : std::string();
    const auto clamp_db = [](double db) {
        return std::isfinite(db) ? std::clamp(db, -90.0, 12.0) : -std::numeric_limits<double>::infinity();
    };
    switch (a.type) {
    case midi::ActionType::send_gain:
    case midi::ActionType::send_mute: {
        const MixState::Musician* m = mix.find(mid);
        if (!m || in.empty() || !m->sends.count(in)) return;
        SendValue v = m->sends.at(in).live;
        if (a.type == midi::ActionType::send_gain)
            v.gain_db = clamp_db(a.db);
        else
            v.mute = a.on;
        apply_send(mid, in, v);
        return;
    }
    case midi::ActionType::master: {
        const double g = clamp_db(a.db);
        if (!mix.set_master(mid, g)) return;
        mix_changed = Clock::now();
        eff = mix.effective(cfg);
        if (eng) eng->set_master(mid, engine_master(mid, g));
        return;
    }
    case midi::ActionType::more_me: {
        if (!one) return;
        Layer& l = layers[mid];
        l.more = a.on;
        l.more_db = a.db;
        l.more_inputs.clear();
        for (std::size_t k = 0; k < a.n_inputs && k < a.inputs.size(); ++k)
            if (a.inputs[k] < eff.inputs.size()) l.more_inputs.push_back(eff.inputs[a.inputs[k]].id);
        push_layers(mid);
        log::info("controller '%s': more me %s for %s", ctl.id.c_str(), a.on ? "on" : "off", mid.c_str());
        return;
    }
    case midi::ActionType::talkback: {
        Layer& l = one ? layers[mid] : talk_all;
        l.talk = a.on;
        l.talk_db = a.db;
        l.talk_input = in;
        if (one)
            push_layers(mid);
        else
            push_all_layers();
        log::info("controller '%s': talkback %s%s%s", ctl.id.c_str(), a.on ? "on" : "off", one ? " for " : "",
                  mid.c_str());
        return;
    }
    case midi::ActionType::scene: {
        if (a.scene >= midi_dir.scenes.size()) return;
        json::array applied, skipped;
        std::string err;
        if (!recall_scene(midi_dir.scenes[a.scene], mid, applied, skipped, err))
            log::warn_limited("midi-scene", "controller '%s': %s", ctl.id.c_str(), err.c_str());
        else
            log::notice("controller '%s': scene '%s' recalled%s%s", ctl.id.c_str(),
                        midi_dir.scenes[a.scene].c_str(), one ? " for " : "", mid.c_str());
        return;
    }
    case midi::ActionType::dim_all: {
        if (one) {
            Layer& l = layers[mid];
            l.dim = a.on;
            l.dim_db = a.db;
            if (eng) eng->set_master(mid, engine_master(mid, eff.musicians[a.musician].mix.master_db));
        } else {
            dim_db = a.on ? a.db : 0.0;
            apply_masters();
        }
        return;
    }
    case midi::ActionType::panic: {
        // A switch like dim: a momentary control silences while held, a toggle (the default for
        // a pad) latches until pressed again; `earshot panic off` releases it too.
        const Layer* l = one ? layer_of(mid) : nullptr;
        const bool cur = one ? (l && l->panic) : panicked;
        if (a.on == cur) return;
        set_panic(mid, a.on, ctl.id);
        log::notice("controller '%s': panic %s%s%s", ctl.id.c_str(), a.on ? "ON" : "off", one ? " for " : "",
                    mid.c_str());
        return;
    }
    case midi::ActionType::learn: {
        if (pending_learn && std::find(pending_learn->ctls.begin(), pending_learn->ctls.end(), c) !=
                                 pending_learn->ctls.end()) {
            cancel_learn("cancelled from the controller");
            return;
        }
        std::string text = a.mapping < mc.learn_targets.size() ? mc.learn_targets[a.mapping] : std::string();
        if (text.empty()) text = last_target;
        std::string why;
        const auto t = config::parse_learn_target(text, why);
        if (!t) {
            log::notice(
                "controller '%s': learn pressed, but there is no target (give the mapping a target, or "
                "change something with `earshot set` first)",
                ctl.id.c_str());
            return;
        }
        if (bound != midi::all_musicians && t->musician != eff.musicians[bound].id) {
            // A normal refusal, not a scope breach: a learn pad without a target of its own uses
            // the last target changed with `earshot set`, which may be another musician's.
            ++mc.learn_refused;
            log::notice("controller '%s': learn pressed; the last target %s is not its musician's: "
                        "nothing to learn (give the mapping a target)",
                        ctl.id.c_str(), text.c_str());
            return;
        }
        start_learn(*t, {c}, nullptr, nullptr);
        return;
    }
    }
}

void Daemon::Impl::start_learn(const config::LearnTarget& t, std::vector<std::size_t> ctls,
                               ControlHandler::Reply reply, json::value id) {
    if (pending_learn) cancel_learn("a new learn started");
    for (std::size_t c : ctls)
        if (midi_ctls[c].mapper) midi_ctls[c].mapper->begin_learn();
    pending_learn = PendingLearn{t, std::move(ctls), Clock::now() + std::chrono::seconds(10),
                                 std::move(reply), std::move(id)};
    log::notice("MIDI learn: move the control for %s (10 s)", t.str().c_str());
}

void Daemon::Impl::cancel_learn(const std::string& why) {
    if (!pending_learn) return;
    PendingLearn p = std::move(*pending_learn);
    pending_learn.reset();
    for (std::size_t c : p.ctls)
        if (c < midi_ctls.size() && midi_ctls[c].mapper) midi_ctls[c].mapper->cancel_learn();
    log::notice("MIDI learn of %s: %s", p.target.str().c_str(), why.c_str());
    if (p.reply) p.reply(control::reply_error(p.id, control::code::unavailable, "MIDI learn: " + why));
}

void Daemon::Impl::finish_learn(std::size_t c, const midi::LearnCapture& cap) {
    const midi::ControlSource& src = cap.source;
    if (!pending_learn ||
        std::find(pending_learn->ctls.begin(), pending_learn->ctls.end(), c) == pending_learn->ctls.end())
        return;
    PendingLearn p = std::move(*pending_learn);
    pending_learn.reset();
    for (std::size_t o : p.ctls)
        if (o != c && o < midi_ctls.size() && midi_ctls[o].mapper) midi_ctls[o].mapper->cancel_learn();
    const config::Controller& ctl = cfg.controllers[c];
    std::string why;
    const auto kind = learned_kind(p.target, cap, why);
    if (!kind) {
        const std::string msg = "MIDI learn: " + why;
        log::notice("%s", msg.c_str());
        if (p.reply) p.reply(control::reply_error(p.id, control::code::bad_request, msg));
        return;
    }
    std::vector<Learned>& ls = learned[ctl.id];
    const std::string target = p.target.str();
    ls.erase(std::remove_if(ls.begin(), ls.end(),
                            [&](const Learned& l) { return l.target == target || overlaps(l.source, src); }),
             ls.end());
    ls.push_back(Learned{target, src, *kind});
    save_learned();
    build_controller(c);
    log::notice("MIDI learn: controller '%s' %s now drives %s", ctl.id.c_str(), midi::describe(src).c_str(),
                target.c_str());
    if (p.reply) {
        json::object res;
        res["learned"] = target;
        res["controller"] = ctl.id;
        res["control"] = midi::describe(src);
        res["kind"] = midi::name(*kind);
        p.reply(control::reply_ok(p.id, std::move(res)));
    }
}

// `earshot learn --forget TARGET`: the learned bindings of that target, on every controller, are
// removed (midi-learn.json) and the controllers rebuilt (a config mapping on the same control
// works again).
json::value Daemon::Impl::forget_learned(const std::string& target) {
    std::size_t n = 0;
    json::array from;
    for (auto& [id, ls] : learned) {
        const std::size_t before = ls.size();
        ls.erase(std::remove_if(ls.begin(), ls.end(), [&](const Learned& l) { return l.target == target; }),
                 ls.end());
        if (ls.size() == before) continue;
        n += before - ls.size();
        from.emplace_back(id);
        for (std::size_t c = 0; c < cfg.controllers.size(); ++c)
            if (cfg.controllers[c].id == id) build_controller(c);
    }
    if (n == 0) return nullptr;
    save_learned();
    log::notice("MIDI learn: the binding of %s was forgotten (%s)", target.c_str(),
                json::serialize(from).c_str());
    json::object res;
    res["forgot"] = target;
    res["bindings"] = n;
    res["controllers"] = std::move(from);
    return res;
}

void Daemon::Impl::load_learned() {
    learned.clear();
    std::string text;
    if (!read_text_file(learn_path(), text)) return;
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    const json::object* ctls = !ec && v.is_object() && v.as_object().if_contains("controllers") &&
                                       v.as_object().at("controllers").is_object()
                                   ? &v.as_object().at("controllers").as_object()
                                   : nullptr;
    if (!ctls) {
        log::error("%s is not a valid MIDI learn file; ignored", learn_path().c_str());
        return;
    }
    for (const auto& kv : *ctls) {
        if (!kv.value().is_array()) continue;
        for (const json::value& e : kv.value().as_array()) {
            if (!e.is_object()) continue;
            const json::object& o = e.as_object();
            const auto str = [&](const char* k) {
                return o.if_contains(k) && o.at(k).is_string() ? std::string(o.at(k).as_string())
                                                               : std::string();
            };
            const auto integer = [&](const char* k, int def) {
                return o.if_contains(k) && o.at(k).is_int64() ? static_cast<int>(o.at(k).as_int64()) : def;
            };
            Learned l;
            l.target = str("target");
            std::string why;
            bool ok = config::parse_learn_target(l.target, why).has_value();
            bool type_ok = false;
            for (auto t : {midi::SourceType::cc, midi::SourceType::cc14, midi::SourceType::note,
                           midi::SourceType::program, midi::SourceType::pitch_bend})
                if (str("type") == midi::name(t)) {
                    l.source.type = t;
                    type_ok = true;
                }
            const int number = integer("number", -1), lsb = integer("lsb", 32), ch = integer("channel", 0);
            const auto kind = midi::kind_from_name(str("kind"));
            ok = ok && type_ok && kind && number >= 0 && number <= 127 && lsb >= 0 && lsb <= 127 && ch >= 0 &&
                 ch <= 16;
            if (!ok) {
                log::warn("%s: a binding of controller '%s' is invalid; ignored", learn_path().c_str(),
                          std::string(kv.key()).c_str());
                continue;
            }
            l.source.number = static_cast<uint8_t>(number);
            l.source.lsb = static_cast<uint8_t>(lsb);
            l.source.channel = static_cast<int8_t>(ch - 1); // 0 (null/absent) = any channel
            l.kind = *kind;
            learned[std::string(kv.key())].push_back(l);
        }
    }
}

void Daemon::Impl::save_learned() const {
    json::object ctls;
    for (const auto& [id, ls] : learned) {
        if (ls.empty()) continue;
        json::array a;
        for (const Learned& l : ls) {
            json::object o;
            o["target"] = l.target;
            o["type"] = source_type_name(l.source.type);
            o["number"] = l.source.number;
            if (l.source.type == midi::SourceType::cc14) o["lsb"] = l.source.lsb;
            o["channel"] = l.source.channel == midi::any_channel ? json::value(nullptr)
                                                                 : json::value(l.source.channel + 1);
            o["kind"] = midi::name(l.kind);
            a.push_back(std::move(o));
        }
        ctls[id] = std::move(a);
    }
    json::object root;
    root["version"] = 1;
    root["controllers"] = std::move(ctls);
    if (!write_file_durable(learn_path(), json::serialize(root) + "\n"))
        log::error_limited("midi-learn-save", "MIDI learn: cannot write %s: %s", learn_path().c_str(),
                           std::strerror(errno));
}

json::value Daemon::Impl::midi_status() const {
    json::object o;
    json::array a;
    for (std::size_t c = 0; c < cfg.controllers.size() && c < hub.size(); ++c) {
        json::object e = hub.status(c);
        const config::Controller& ctl = cfg.controllers[c];
        e["musician"] = ctl.midi.musician ? json::value(*ctl.midi.musician) : json::value(nullptr);
        e["profile"] = midi::name(ctl.midi.profile);
        const MidiCtl& mc = midi_ctls[c];
        if (mc.mapper) {
            const midi::MapperStats& st = mc.mapper->stats();
            e["mappings"] = mc.mapper->mappings().size();
            e["actions"] = st.actions + mc.before.actions;
            e["unmatched"] = st.unmatched + mc.before.unmatched;
            e["takeover_waits"] = st.takeover_waits + mc.before.takeover_waits;
            e["pairs_timed_out"] = st.pairs_timed_out + mc.before.pairs_timed_out;
            e["scope_rejected"] = st.scope_rejected + mc.before.scope_rejected + mc.scope_rejected;
            e["learning"] = mc.mapper->learning();
        } else {
            e["scope_rejected"] = mc.before.scope_rejected + mc.scope_rejected;
        }
        e["learn_refused"] = mc.learn_refused;
        const auto it = learned.find(ctl.id);
        e["learned"] = it == learned.end() ? 0 : it->second.size();
        a.push_back(std::move(e));
    }
    o["controllers"] = std::move(a);
    o["learning"] = pending_learn ? json::value(pending_learn->target.str()) : json::value(nullptr);
    return o;
}

void Daemon::Impl::configure_protection() {
    const double now = wall_now();
    // The planned end of the show: show.end (today, or tomorrow if already past) or
    // show.length_min from earshotd's start.
    show_end_utc = std::numeric_limits<double>::quiet_NaN();
    if (cfg.show.end_min >= 0) {
        std::time_t t = static_cast<std::time_t>(now);
        std::tm lt{};
        localtime_r(&t, &lt);
        lt.tm_hour = cfg.show.end_min / 60;
        lt.tm_min = cfg.show.end_min % 60;
        lt.tm_sec = 0;
        lt.tm_isdst = -1;
        double end = static_cast<double>(std::mktime(&lt));
        if (end <= now) {
            lt.tm_mday += 1;
            lt.tm_isdst = -1;
            end = static_cast<double>(std::mktime(&lt));
        }
        show_end_utc = end;
    } else if (cfg.show.length_min > 0) {
        show_end_utc = started_utc + cfg.show.length_min * 60.0;
    }
    dosimetry::GuardSettings gs;
    gs.mode = cfg.dosimetry.guard == config::GuardMode::limit  ? dosimetry::GuardMode::limit
              : cfg.dosimetry.guard == config::GuardMode::warn ? dosimetry::GuardMode::warn
                                                               : dosimetry::GuardMode::off;
    gs.budget = cfg.dosimetry.guard_budget == config::GuardBudget::who ? dosimetry::GuardBudget::who_weekly
                                                                       : dosimetry::GuardBudget::niosh_daily;
    gs.who_allowance_pa2h =
        cfg.dosimetry.who_mode == 2 ? dosimetry::who_mode2_pa2h : dosimetry::who_mode1_pa2h;
    gs.rate_db_per_s = cfg.dosimetry.guard_rate_db_per_min / 60.0;
    gs.depth_db = cfg.dosimetry.guard_depth_db;
    dosimetry::WarningSettings ws;
    ws.thresholds_pct = cfg.dosimetry.warn_pct;
    for (auto it = protect.begin(); it != protect.end();)
        it = cfg.musician_index(it->first) < 0 ? protect.erase(it) : std::next(it);
    int restored = 0;
    for (const config::Musician& m : cfg.musicians) {
        auto [it, fresh] = protect.try_emplace(m.id, gs, ws);
        Protect& p = it->second;
        p.guard.configure(gs);
        dosimetry::DoseStatus st;
        const bool have = keeper.status(m.id, now, st);
        // New thresholds (a reload): what the figures already passed is not announced again.
        const bool new_warn = fresh || p.warn.settings().thresholds_pct != ws.thresholds_pct;
        if (!fresh && new_warn) p.warn = dosimetry::DoseWarnings(ws);
        if (new_warn && have) p.warn.prime(st.today.niosh_pct(), st.who_weekly_pct);
        // At start-up: the guard's planning as saved before the restart, if it is of this dose day.
        const auto sv = saved_guard.find(m.id);
        if (fresh && have && sv != saved_guard.end() && sv->second.first == st.day.str()) {
            p.guard.restore(sv->second.second);
            ++restored;
        }
    }
    if (restored > 0)
        log::notice("dose guard: planning of %d musician%s restored from %s (show started %s)", restored,
                    restored == 1 ? "" : "s", guard_path().c_str(),
                    dosimetry::iso_utc(static_cast<std::time_t>(started_utc)).c_str());
    saved_guard.clear();
    if (gs.mode != dosimetry::GuardMode::off)
        log::info("dose guard: %s, budget %s, %.2f dB/min, %.0f dB deep; show %s",
                  gs.mode == dosimetry::GuardMode::limit ? "limit" : "warn",
                  gs.budget == dosimetry::GuardBudget::niosh_daily ? "NIOSH daily 100 %" : "WHO weekly 100 %",
                  cfg.dosimetry.guard_rate_db_per_min, gs.depth_db,
                  std::isfinite(show_end_utc)
                      ? ("ends " + dosimetry::iso_utc(static_cast<std::time_t>(show_end_utc))).c_str()
                      : "end not planned (show.end / show.length_min): the guard only acts once the budget "
                        "is used");
}

void Daemon::Impl::push_guards(engine::Engine& e) {
    // A new engine (start, reconnect, new sample rate) starts every strip's guard gain at 1: set it
    // to the guard's attenuation at once (a 1-sample ramp, before the engine's first cycle), so the
    // start-up fade rises to the guarded level and not above it.
    for (const auto& [id, p] : protect)
        if (p.guard.attenuation_db() > 0) e.set_guard(id, -p.guard.attenuation_db(), 1);
}

void Daemon::Impl::load_guard_state() {
    saved_guard.clear();
    std::string text;
    if (!read_text_file(guard_path(), text)) return;
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    const json::object* root = !ec && v.is_object() ? &v.as_object() : nullptr;
    const auto number = [](const json::object& o, const char* k) {
        const json::value* x = o.if_contains(k);
        return x && x->is_number() ? x->to_number<double>() : std::numeric_limits<double>::quiet_NaN();
    };
    const json::value* ms = root ? root->if_contains("musicians") : nullptr;
    if (!root || number(*root, "version") != 1.0 || !ms || !ms->is_object()) {
        log::warn("%s is not a valid dose guard state; ignored (the guard starts from 0 dB)",
                  guard_path().c_str());
        return;
    }
    // Only a restart during the show continues it: state saved more than an hour ago is a past show.
    const double now = wall_now(), saved = number(*root, "saved_utc");
    if (!(now - saved <= 3600.0 && now - saved >= -60.0)) {
        log::info("%s is from an earlier show (saved %s); the guard starts afresh", guard_path().c_str(),
                  std::isfinite(saved) ? dosimetry::iso_utc(static_cast<std::time_t>(saved)).c_str() : "?");
        return;
    }
    for (const auto& kv : ms->as_object()) {
        if (!kv.value().is_object()) continue;
        const json::object& o = kv.value().as_object();
        const json::value* day = o.if_contains("day");
        if (!day || !day->is_string()) continue;
        dosimetry::GuardState g;
        g.attenuation_db = number(o, "attenuation_db");
        g.elapsed_s = number(o, "elapsed_s");
        g.mix_slow_pa2 = number(o, "mix_slow_pa2");
        g.mix_fast_pa2 = number(o, "mix_fast_pa2");
        g.leak_slow_pa2 = number(o, "leak_slow_pa2");
        g.leak_fast_pa2 = number(o, "leak_fast_pa2");
        g.within_s = number(o, "within_s");
        const json::value* ep = o.if_contains("over_episode");
        g.over_episode = ep && ep->is_bool() && ep->as_bool();
        saved_guard[std::string(kv.key())] = {std::string(day->as_string()), g};
    }
    // show.length_min counts from the show's start, not from this restart.
    const double start = number(*root, "show_start_utc");
    if (!saved_guard.empty() && std::isfinite(start) && start <= now) started_utc = start;
}

void Daemon::Impl::save_guard_state() {
    guard_dirty = false;
    last_guard_save = Clock::now();
    const double now = wall_now();
    json::object ms;
    for (const auto& [id, p] : protect) {
        dosimetry::DoseStatus st;
        if (p.guard.settings().mode == dosimetry::GuardMode::off || !keeper.status(id, now, st)) continue;
        const dosimetry::GuardState& g = p.guard.state();
        json::object o;
        o["day"] = st.day.str();
        o["attenuation_db"] = g.attenuation_db;
        o["elapsed_s"] = g.elapsed_s;
        o["mix_slow_pa2"] = g.mix_slow_pa2;
        o["mix_fast_pa2"] = g.mix_fast_pa2;
        o["leak_slow_pa2"] = g.leak_slow_pa2;
        o["leak_fast_pa2"] = g.leak_fast_pa2;
        o["over_episode"] = g.over_episode;
        o["within_s"] = g.within_s;
        ms[id] = std::move(o);
    }
    json::object root;
    root["version"] = 1;
    root["saved_utc"] = now;
    root["show_start_utc"] = started_utc;
    root["musicians"] = std::move(ms);
    if (!write_file_durable(guard_path(), json::serialize(root) + "\n"))
        log::error_limited("guard-save", "dose guard: cannot write %s: %s", guard_path().c_str(),
                           std::strerror(errno));
}

void Daemon::Impl::warn_event(const std::string& id, Protect& p, const std::string& kind,
                              const std::string& message, double threshold, double value) {
    const double now = wall_now();
    note_led_warning(id, kind); // the musician's dose LED blinks (docs/midi.md)
    // The journal: dose thresholds and acknowledgements are never rate-limited; the momentary
    // reminders and the guard's own warnings have a key per musician and kind, so one musician's
    // reminders cannot hide another's (or a threshold) from journald.
    const bool momentary = kind == "momentary_cap" || kind == "momentary_rs2";
    const bool dose = kind == "niosh_daily" || kind == "who_weekly";
    if (dose || kind == "guard_suspended" || kind == "guard_resumed")
        log::warn("%s: %s", id.c_str(), message.c_str());
    else
        log::warn_limited(("dose-warning " + id + " " + kind).c_str(), "%s: %s", id.c_str(), message.c_str());
    // Status and top: the momentary ones apart, so their reminders do not push the rest out.
    std::deque<Protect::Recent>& list = momentary ? p.recent_momentary : p.recent;
    list.push_back(Protect::Recent{now, kind, message});
    while (list.size() > (momentary ? 6u : 20u)) list.pop_front();
    if (dose) p.last_dose = Protect::Recent{now, kind, message};
    // The exposure log's event file: <state-dir>/exposure/<id>/events.csv (docs/protection.md).
    const std::string dir = opt.state_dir + "/exposure/" + id;
    std::string err;
    if (!ensure_dir(dir, err)) return;
    const std::string path = dir + "/events.csv";
    const bool fresh = ::access(path.c_str(), F_OK) != 0;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return;
    std::string line;
    if (fresh) line = "time_utc,kind,threshold,value,message\n";
    char b[96];
    std::snprintf(b, sizeof b, ",%s,%.2f,%.3f,", kind.c_str(), threshold, value);
    std::string msg = message;
    for (char& c : msg)
        if (c == ',' || c == '\n') c = ';';
    line += dosimetry::iso_utc(static_cast<std::time_t>(now)) + b + msg + "\n";
    [[maybe_unused]] const ssize_t w = ::write(fd, line.data(), line.size());
    ::fdatasync(fd);
    ::close(fd);
}

void Daemon::Impl::protect_second(const std::string& id, const engine::DoseFrame& f, double now) {
    const auto it = protect.find(id);
    const LastSecond* ls = keeper.last(id);
    dosimetry::DoseStatus st;
    if (it == protect.end() || !ls || !keeper.status(id, now, st)) return;
    Protect& p = it->second;
    const int mi = cfg.musician_index(id);
    if (mi < 0) return;
    const config::Musician& mu = cfg.musicians[static_cast<std::size_t>(mi)];
    const double secs = double(f.samples) / (eng ? eng->sample_rate() : 48000.0);
    p.audio_s += secs;
    const double mix_dba = std::max(ls->laeq_dba[0], ls->laeq_dba[1]);
    double leak = -std::numeric_limits<double>::infinity();
    if (ls->level_dba > mix_dba + 1e-9) // the level is the mix plus the leak by energy
        leak = dosimetry::level_db(dosimetry::pa2(ls->level_dba) - dosimetry::pa2(mix_dba));

    // An engineer's suspension lasts to the planned end of the show it was made in, and never past
    // the end of its dose day (docs/protection.md): the guard re-arms by itself.
    if (p.guard.suspended()) {
        if (p.suspended_day.empty()) p.suspended_day = st.day.str();
        const bool show_over =
            std::isfinite(show_end_utc) && now >= show_end_utc && p.guard.suspended_at() < show_end_utc;
        const bool day_over = st.day.str() != p.suspended_day;
        if (show_over || day_over) {
            p.guard.resume();
            warn_event(id, p, "guard_resumed",
                       show_over ? "dose guard resumed: the planned show has ended"
                                 : "dose guard resumed: a new dose day has begun",
                       0, 0);
        }
    }

    // The guard: once per second of audio heard.
    dosimetry::GuardInput gi;
    gi.seconds = secs;
    gi.level_dba = mix_dba;
    gi.leak_dba = leak;
    gi.niosh_pct = st.today.niosh_pct();
    gi.week_pa2h = st.week_pa2h;
    gi.seconds_left =
        std::isfinite(show_end_utc) ? show_end_utc - now : std::numeric_limits<double>::quiet_NaN();
    gi.applied_db = f.guard_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(f.guard_gain)) : 0.0;
    const double att = p.guard.update(gi);
    guard_dirty = guard_dirty || p.guard.settings().mode != dosimetry::GuardMode::off;
    if (eng && (att > 0 || gi.applied_db > 0))
        eng->set_guard(id, -att, static_cast<uint32_t>(eng->sample_rate())); // 1 s ramps: the guard is slow
    if (p.guard.over_budget_started()) { // once per episode (DoseGuard: re-armed after 30 min within)
        char m[200];
        std::snprintf(m, sizeof m, "projected %.0f %% of the %s budget at the end of the show%s",
                      p.guard.projected_pct(),
                      cfg.dosimetry.guard_budget == config::GuardBudget::who ? "WHO weekly" : "daily NIOSH",
                      p.guard.limiting() ? (p.guard.saturated() ? " (the guard is at full depth)"
                                                                : " (the guard is lowering the mix)")
                                         : "");
        warn_event(id, p, "guard_over_budget", m, 100.0, p.guard.projected_pct());
    }

    // Warnings: dose thresholds, and the momentary ones (LAeq,1s over the cap or RS2).
    std::vector<dosimetry::Warning> ev;
    p.warn.update(st.today.niosh_pct(), st.who_weekly_pct, ev);
    const double cap = mu.protection.max_laeq_1s_dba ? *mu.protection.max_laeq_1s_dba
                                                     : std::numeric_limits<double>::quiet_NaN();
    p.warn.momentary(p.audio_s, ls->level_dba, cap, cfg.dosimetry.rs2_dba, ev);
    for (const dosimetry::Warning& w : ev) {
        char m[200];
        switch (w.kind) {
        case dosimetry::WarningKind::niosh_daily:
            std::snprintf(m, sizeof m, "%.0f %% of today's NIOSH dose reached (%.1f %%)", w.threshold,
                          w.value);
            break;
        case dosimetry::WarningKind::who_weekly:
            std::snprintf(m, sizeof m, "%.0f %% of the WHO weekly dose reached (%.1f %%)", w.threshold,
                          w.value);
            break;
        case dosimetry::WarningKind::momentary_cap:
            std::snprintf(m, sizeof m, "LAeq,1s %.1f dBA is over the cap of %.0f dBA", w.value, w.threshold);
            break;
        case dosimetry::WarningKind::momentary_rs2:
            std::snprintf(m, sizeof m, "LAeq,1s %.1f dBA is over RS2 (%.0f dBA)", w.value, w.threshold);
            break;
        }
        warn_event(id, p, dosimetry::to_string(w.kind), m, w.threshold, w.value);
    }
}

void Daemon::Impl::watchdog() {
    if (wd_usec == 0) return;
    const double interval = double(wd_usec) * 1e-6 / 2.0;
    if (secs_since(last_watchdog) < interval) return;
    last_watchdog = Clock::now();
    if (state != State::connected) {
        notify::watchdog(); // waiting for JACK is a healthy state of the daemon
        return;
    }
    const uint64_t c = jack->cycles();
    if (c != watchdog_cycles) {
        watchdog_cycles = c;
        notify::watchdog();
    } else {
        log::warn_limited("stall", "the JACK process cycle has not advanced for %.1f s: watchdog not pinged",
                          interval);
    }
}

void Daemon::Impl::on_tick() {
    if (stopping) return;
    const auto now = Clock::now();
    JackBackend::log_deferred(); // libjack's messages from JACK's threads
    if (state == State::waiting && now >= next_retry) {
        if (!start_session()) {
            backoff_s = backoff_s <= 0 ? opt.retry_min_s : std::min(backoff_s * 2.0, opt.retry_max_s);
            next_retry =
                now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_s));
            ++attempts;
            log::debug("JACK: attempt %llu failed (%s); next in %.1f s",
                       static_cast<unsigned long long>(attempts), last_connect_error.c_str(), backoff_s);
            notify::status("waiting for JACK server '" + server_name() + "'");
        }
    }
    if (state == State::connected) {
        std::string reason;
        if (jack->take_shutdown(reason)) {
            end_session("JACK shut earshotd down: " + reason);
        } else {
            FreewheelEdge fe;
            while (jack->pop_freewheel_edge(fe)) {
                fw_edges.push_back(fe);
                log::info("freewheel %s: audio computed %s", fe.on ? "on" : "off",
                          fe.on ? "but not heard, no dose counted" : "and heard again");
            }
            uint32_t v = 0;
            if (jack->take_rate_changed(v) && v != static_cast<uint32_t>(eng->sample_rate()))
                replace_engine(v);
            if (jack->take_buffer_changed(v))
                log::notice("JACK period is now %u frames (%.2f ms)", v, 1e3 * v / jack->sample_rate());
            if (jack->take_ports_changed()) jack->connect_new_ports();
            eng->poll();
            drain(*eng, true);
            jack->reap();
            if (jack->route_is_live()) drain_old_engines(true);
            if (!lingering.empty() && now >= lingering_until) {
                lingering.clear();
                publish_ports();
            }
            const uint64_t x = jack->xruns();
            if (x != logged_xruns) {
                log::warn_limited("xrun", "xrun: %llu so far", static_cast<unsigned long long>(x));
                logged_xruns = x;
            }
            const uint64_t rte = jack->rt_errors();
            if (rte != logged_rt_errors) {
                log::warn_limited("silenced", "%llu cycles silenced (no engine for the current rate)",
                                  static_cast<unsigned long long>(rte));
                logged_rt_errors = rte;
            }
            const auto& c = eng->counters();
            if (c.bad_input_blocks.load() != logged_bad_blocks) {
                logged_bad_blocks = c.bad_input_blocks.load();
                log::warn_limited("bad-input", "NaN/Inf on an input: %llu blocks silenced so far",
                                  static_cast<unsigned long long>(logged_bad_blocks));
            }
            if (c.dose_dropped.load() != logged_dose_drops) {
                logged_dose_drops = c.dose_dropped.load();
                log::error_limited("dose-drop", "%llu dose frames dropped (control loop too slow)",
                                   static_cast<unsigned long long>(logged_dose_drops));
            }
        }
    }
    if (secs_since(last_status) >= opt.status_interval_s) {
        last_status = now;
        if (state == State::connected) jack->retry_connections();
        write_status();
        keeper.housekeeping(wall_now());
        refresh_dose(); // dose LEDs
        log::flush_suppressed();
    }
    midi_tick();
    control.publish();
    if (secs_since(last_summary) >= 10.0) {
        last_summary = now;
        notify::status(summary());
    }
    // At most once a second, also while moves keep coming (a long fader ride is saved as it goes).
    if (mix.dirty() && secs_since(last_mix_save) >= 1.0) save_mix();
    if (guard_dirty && secs_since(last_guard_save) >= 10.0) save_guard_state();
    watchdog();
}

void Daemon::Impl::fade_out() {
    if (state != State::connected || !jack || !eng) return;
    // No jump at the end either: fade every mix to silence and let JACK play the fade. At most 1 s,
    // and no longer than a few periods once the RT cycle stops moving (a frozen server).
    for (const config::Musician& m : eff.musicians)
        eng->set_master(m.id, -std::numeric_limits<double>::infinity());
    const double fs = eng->sample_rate();
    const uint64_t need = static_cast<uint64_t>(eff.mixer.ramp_ms * 1e-3 * fs) + 2 * jack->buffer_size() + 64;
    const uint64_t start = eng->counters().samples.load();
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::milliseconds(1000);
    const auto stall = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::max(0.1, 4.0 * jack->buffer_size() / fs)));
    uint64_t cycles = jack->cycles();
    auto moved = t0;
    std::string reason;
    while (eng->counters().samples.load() - start < need && !jack->take_shutdown(reason)) {
        const auto now = Clock::now();
        if (now >= deadline) break;
        if (jack->cycles() != cycles) {
            cycles = jack->cycles();
            moved = now;
        } else if (now - moved > stall) {
            log::warn("the JACK process cycle stopped during the fade-out (%.0f ms without a cycle)",
                      1e3 * secs_since(moved));
            break;
        }
        drain(*eng, true);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool Daemon::Impl::close_jack() {
    if (!jack || !jack->is_open()) return true;
    // jack_deactivate()/jack_client_close() wait for the server's answer; a frozen server (SIGSTOP,
    // a hung driver) never gives one. So the close runs on a helper thread, and if it has not
    // finished in time the client is abandoned: the backend and every engine the RT thread might
    // still touch are leaked on purpose, never destroyed under a thread that could wake up.
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    JackBackend* b = jack.get();
    std::thread([b, done] {
        b->close();
        done->set_value();
    }).detach();
    const auto timeout = std::chrono::duration<double>(opt.jack_close_timeout_s);
    if (finished.wait_for(timeout) == std::future_status::ready) return true;
    log::error("the JACK server did not answer within %.1f s (frozen?): its client is abandoned, not closed",
               opt.jack_close_timeout_s);
    jack_abandoned = true;
    (void)jack.release();
    (void)eng.release();
    for (OldEngine& o : old_engines) (void)o.e.release();
    old_engines.clear();
    return false;
}

void Daemon::Impl::leave_jack() {
    const bool clean = close_jack();
    // After a clean close no RT thread runs the engines any more: their open second is ours.
    if (clean && eng) {
        eng->flush_dose();
        drain(*eng, true);
    }
    drain_old_engines(clean);
}

void Daemon::Impl::drain_old_engines(bool flush) {
    // [control] Only when the RT thread no longer runs them (route_is_live(), or JACK closed).
    for (OldEngine& o : old_engines) {
        if (!o.e) continue;
        if (flush) o.e->flush_dose();
        // Their frames carry their own keys, rate and freewheel edges.
        std::swap(fw_edges, o.fw_edges);
        keeper.bind(*o.e);
        drain(*o.e, true);
        std::swap(fw_edges, o.fw_edges);
    }
    if (!old_engines.empty() && eng) keeper.bind(*eng);
    old_engines.clear();
}

void Daemon::Impl::shutdown() {
    stopping = true;
    notify::stopping();
    log::notice("stopping: fading out, flushing the exposure logs");
    fade_out();
    // Everything that does not need the JACK server comes first, so a server that never answers
    // costs neither the mix nor the dose.
    save_mix();
    if (guard_dirty) save_guard_state();
    if (eng && jack) drain(*eng, true);
    keeper.sync();
    ::unlink((opt.runtime_dir + "/status.json").c_str());
    control.close();
    const bool clean = close_jack();
    if (clean && eng) {
        eng->flush_dose(); // the open second
        drain(*eng, true);
    }
    drain_old_engines(clean);
    keeper.flush();              // the open minute as a row
    JackBackend::log_deferred(); // what libjack said on the helper thread
    timer.cancel();
    boost::system::error_code ec;
    sigfd.cancel(ec);
    io.stop();
    log::notice(clean ? "stopped" : "stopped (without a clean JACK close: the server did not answer)");
}

void Daemon::Impl::arm_timer() {
    timer.expires_after(tick);
    timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping) return;
        try {
            on_tick();
        } catch (const std::exception& e) {
            log::error_limited("tick", "control loop: %s", e.what());
        }
        arm_timer();
    });
}

void Daemon::Impl::on_signal(int sig) {
    if (sig == SIGHUP) {
        log::notice("SIGHUP");
        try {
            reload();
        } catch (const std::exception& e) {
            log::error("reload: %s (the running config stays)", e.what());
            finish_reload();
        }
    } else {
        shutdown();
    }
}

void Daemon::Impl::arm_signals() {
    sigfd.async_wait(boost::asio::posix::descriptor_base::wait_read,
                     [this](const boost::system::error_code& ec) {
                         if (ec || stopping) return;
                         signalfd_siginfo si{};
                         while (!stopping && ::read(sigfd.native_handle(), &si, sizeof si) ==
                                                 static_cast<ssize_t>(sizeof si))
                             on_signal(static_cast<int>(si.ssi_signo));
                         if (!stopping) arm_signals();
                     });
}

void block_signals() {
    const sigset_t set = handled_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::vector<config::ConfigError> check_host(const config::Config& cfg) {
    std::vector<config::ConfigError> out;
    const std::pair<const char*, const std::string*> groups[] = {{"group", &cfg.control.group},
                                                                 {"read_group", &cfg.control.read_group}};
    for (const auto& [key, name] : groups) {
        if (name->empty() || group_exists(*name)) continue;
        config::ConfigError e;
        e.file = cfg.source;
        std::tie(e.line, e.col) = locate_value(cfg.source, key, *name);
        e.key_path = std::string("control.") + key;
        e.message = "no group '" + *name + "' on this machine (getent group " + *name +
                    "; create it, or leave the key out)";
        out.push_back(std::move(e));
    }
    return out;
}

Daemon::Daemon(Options opts, config::Config cfg)
    : _p(std::make_unique<Impl>(std::move(opts), std::move(cfg))) {}

Daemon::~Daemon() = default;

int Daemon::run() {
    Impl& s = *_p;
    std::string err;
    if (!ensure_dir(s.opt.state_dir, err) || !ensure_dir(s.opt.runtime_dir, err)) {
        log::error("%s", err.c_str());
        return exit_cantcreat;
    }
    if (s.opt.lock_memory) lock_memory();
    if (!s.mix.load(s.opt.state_dir + "/mix.json", err)) {
        log::error("mix state ignored: %s (the config's mix is used)", err.c_str());
        s.mix = MixState{};
    }
    s.mix.sync(s.cfg);
    s.eff = s.mix.effective(s.cfg);
    s.save_mix();
    s.keeper.configure(s.cfg, wall_now());
    s.started_utc = wall_now();
    s.load_guard_state(); // may continue the show's start (show.length_min)
    s.configure_protection();
    s.load_learned();
    s.hub.on_events([&s] { s.on_midi(); });
    s.build_midi();
    if (!s.control.open(s.opt.runtime_dir + "/control.sock", s.cfg.control, err)) {
        log::error("control socket: %s", err.c_str());
        return err.rfind("control.", 0) == 0 ? exit_config : exit_cantcreat;
    }
    s.wd_usec = notify::watchdog_usec();
    log::notice("earshotd: %zu inputs, %zu musicians from %s; state in %s", s.cfg.inputs.size(),
                s.cfg.musicians.size(), s.opt.config_path.c_str(), s.opt.state_dir.c_str());
    if (s.wd_usec) log::info("systemd watchdog: %.1f s", double(s.wd_usec) * 1e-6);

    s.arm_signals();
    s.arm_timer();
    s.on_tick(); // first connection attempt right away
    s.io.run();
    return s.exit_code;
}

bool Daemon::jack_abandoned() const noexcept {
    return _p->jack_abandoned;
}

bool Daemon::set_send(const std::string& musician, const std::string& input, const SendValue& v) {
    Impl& s = *_p;
    const MixState::Musician* m = s.mix.find(musician);
    if (!m || !m->sends.count(input)) return false;
    s.apply_send(musician, input, v);
    return true;
}

bool Daemon::set_master(const std::string& musician, double gain_db) {
    Impl& s = *_p;
    if (!s.mix.set_master(musician, gain_db)) return false;
    s.mix_changed = Clock::now();
    s.eff = s.mix.effective(s.cfg);
    if (s.eng) s.eng->set_master(musician, s.engine_master(musician, gain_db));
    return true;
}

} // namespace earshot::daemon
