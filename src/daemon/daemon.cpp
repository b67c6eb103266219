#include "earshot/daemon/daemon.hpp"

#include "earshot/config/loader.hpp"
#include "earshot/control/protocol.hpp"
#include "earshot/daemon/control_server.hpp"
#include "earshot/daemon/dose_keeper.hpp"
#include "earshot/daemon/jack_backend.hpp"
#include "earshot/daemon/log.hpp"
#include "earshot/daemon/notify.hpp"
#include "earshot/dsp/limiter.hpp"
#include "earshot/dsp/units.hpp"
#include "earshot/engine/engine.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
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
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok && ::rename(tmp.c_str(), path.c_str()) == 0;
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

struct Meter {
    float peak[2] = {0, 0};
    float limiter_gain = 1;
    float master_gain = 0;
    // Peak hold over the last status interval.
    float held_peak[2] = {0, 0};
    float held_lim = 1;
};

} // namespace

struct Daemon::Impl final : ControlHandler {
    Options opt;
    config::Config cfg; // as loaded
    MixState mix;
    config::Config eff; // cfg with the live mix
    DoseKeeper keeper;

    std::unique_ptr<JackBackend> jack;
    std::unique_ptr<engine::Engine> eng;
    std::vector<std::unique_ptr<engine::Engine>> old_engines; // waiting for the RT thread to let go

    enum class State { waiting, connected } state = State::waiting;
    Clock::time_point next_retry = Clock::now();
    double backoff_s = 0;
    std::string last_connect_error;
    bool ready_sent = false;

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

    // Momentary layers on top of the live mix (not persisted): dim and panic.
    double dim_db = 0; // 0 = off
    bool panicked = false;

    boost::asio::io_context io;
    boost::asio::signal_set signals{io, SIGTERM, SIGINT, SIGHUP};
    boost::asio::steady_timer timer{io};
    ControlServer control{io, *this, EARSHOT_VERSION_STRING};

    Impl(Options o, config::Config c) : opt(std::move(o)), cfg(std::move(c)), keeper(opt.state_dir) {}

    // --- the mix the engine runs: live mix + dim/panic ---------------------------------------
    double engine_master(double live_db) const {
        if (panicked) return -std::numeric_limits<double>::infinity();
        if (dim_db < 0 && std::isfinite(live_db)) return std::max(-90.0, live_db + dim_db);
        return live_db;
    }
    config::Config engine_cfg() const {
        config::Config c = eff;
        for (config::Musician& m : c.musicians) m.mix.master_db = engine_master(m.mix.master_db);
        return c;
    }
    void apply_masters(uint32_t ramp_samples = 0) {
        if (!eng) return;
        for (const config::Musician& m : eff.musicians)
            eng->set_master(m.id, engine_master(m.mix.master_db), ramp_samples);
    }
    // --- control socket ----------------------------------------------------------------------
    std::string handle(const control::Request& r, uid_t peer) override;
    boost::json::value status_json() override;
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
    void fade_out_and_close();
    void write_status();
    json::value scene_snapshot() const;
    json::object load_scenes(std::string& err) const;
    bool save_scenes(const json::object& scenes, std::string& err) const;
    std::string summary() const;
    void watchdog();
    void save_mix();
    void arm_timer();
    void arm_signals();
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
        const int lat = musician_latency(m, fs);
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
    // From silence, up to the live mix (SPEC §3.2): a new engine always fades in.
    eng->apply_config(engine_cfg(), engine::StartMode::fade_in);
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
    if (!ready_sent) {
        notify::ready(summary());
        ready_sent = true;
    } else {
        notify::status(summary());
    }
    return true;
}

void Daemon::Impl::drain(engine::Engine& e, bool bound) {
    const double now = wall_now();
    engine::DoseFrame f;
    while (e.pop_dose(f))
        if (bound) keeper.add(f, heard(f.start_sample), now);
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
    if (jack) jack->close(); // the process thread is gone after this
    if (eng) {
        eng->flush_dose(); // no RT thread runs it any more
        drain(*eng, true);
    }
    jack.reset();
    eng.reset();
    old_engines.clear();
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
    old_engines.push_back(std::move(eng));
    eng = std::move(next);
    keeper.bind(*eng);
    fw_edges.clear();
    meters.clear();
    publish_ports();
}

std::vector<std::string> Daemon::Impl::reload_config() {
    notify::reloading();
    log::notice("reloading %s", opt.config_path.c_str());
    config::Config next;
    try {
        next = config::load_file(opt.config_path);
    } catch (const config::ConfigErrors& e) {
        std::vector<std::string> errs;
        for (const auto& err : e.errors()) {
            log::error("%s", err.format().c_str());
            errs.push_back(err.format());
        }
        log::error("reload rejected (%zu error%s); the running config stays", e.errors().size(),
                   e.errors().size() == 1 ? "" : "s");
        notify::ready(summary());
        return errs;
    }
    const bool rename = next.jack.client_name != cfg.jack.client_name;
    // The ports as they are now (with their slots): removed ones stay while their outputs fade out.
    const std::vector<PortSpec> before = state == State::connected ? port_specs() : std::vector<PortSpec>{};
    cfg = std::move(next);
    mix.sync(cfg);
    eff = mix.effective(cfg);
    save_mix();
    keeper.configure(cfg, wall_now());
    if (state == State::connected) {
        if (rename) {
            log::notice("jack.client_name changed to '%s': re-joining JACK under the new name",
                        eff.jack.client_name.c_str());
            fade_out_and_close();
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
                        id, engine_master(eff.musicians[static_cast<std::size_t>(i)].mix.master_db), up);
            }
        }
    }
    log::notice("config reloaded: %zu inputs, %zu musicians", cfg.inputs.size(), cfg.musicians.size());
    notify::ready(summary());
    return {};
}

void Daemon::Impl::save_mix() {
    if (!mix.dirty()) return;
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
        const double off = config::calibration_offset_db(m.calibration);
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
        if (eng) {
            const uint32_t key = eng->musician_key(m.id);
            const auto it = meters.find(key);
            if (it != meters.end()) {
                const Meter& mt = it->second;
                json::array pk;
                for (int c = 0; c < m.channels(); ++c)
                    pk.push_back(num(dsp::gain_to_db(mt.held_peak[c]) + off, 1));
                o["peak_db_spl"] = std::move(pk);
                o["limiter_gr_db"] = num(std::max(0.0, -dsp::gain_to_db(mt.held_lim)), 2);
                o["master_gain_db"] = num(dsp::gain_to_db(mt.master_gain), 2);
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
        ms.push_back(std::move(o));
    }
    root["musicians"] = std::move(ms);
    json::object mixer;
    mixer["dim_db"] = dim_db < 0 ? json::value(dim_db) : json::value(nullptr);
    mixer["panic"] = panicked;
    root["mixer"] = std::move(mixer);
    const ControlStats cs = control.stats();
    json::object co;
    co["clients"] = cs.clients;
    co["requests"] = cs.requests;
    co["errors"] = cs.errors;
    co["refused"] = cs.refused;
    co["events_dropped"] = cs.events_dropped;
    co["slow_disconnects"] = cs.slow_disconnects;
    root["control"] = std::move(co);
    return root;
}

void Daemon::Impl::write_status() {
    const json::value root = status_json();
    for (auto& [key, mt] : meters) {
        mt.held_peak[0] = mt.held_peak[1] = 0;
        mt.held_lim = 1;
    }
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
    std::FILE* f = std::fopen(scenes_path().c_str(), "rb");
    if (!f) return json::object{};
    std::string text;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object() || !v.as_object().if_contains("scenes") ||
        !v.as_object().at("scenes").is_object()) {
        err = scenes_path() + " is not a valid scenes file";
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

std::string Daemon::Impl::handle(const control::Request& r, uid_t peer) {
    using control::Command;
    switch (r.cmd) {
    case Command::status:
        return control::reply_ok(r.id, status_json());
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
            if (eng) eng->set_master(r.musician, engine_master(g));
            res["master_db"] = control::db_json(g);
        } else {
            const auto it = m->sends.find(r.input);
            if (it == m->sends.end())
                return control::reply_error(r.id, control::code::not_found, "no input '" + r.input + "'");
            SendValue v = it->second.live;
            if (r.gain_db) v.gain_db = *r.gain_db;
            if (r.pan) v.pan = *r.pan;
            if (r.mute) v.mute = *r.mute;
            apply_send(r.musician, r.input, v);
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
        if (!err.empty() && r.scene_action != control::SceneAction::save)
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
            scenes[r.scene] = scene_snapshot();
            if (!save_scenes(scenes, err)) return control::reply_error(r.id, control::code::internal, err);
            log::notice("control (uid %u): scene '%s' saved", static_cast<unsigned>(peer), r.scene.c_str());
            json::object res;
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
            const json::value* sc = scenes.if_contains(r.scene);
            if (!sc || !sc->is_object() || !sc->as_object().if_contains("musicians"))
                return control::reply_error(r.id, control::code::not_found, "no scene '" + r.scene + "'");
            json::array applied, skipped;
            for (const auto& mkv : sc->as_object().at("musicians").as_object()) {
                const std::string id(mkv.key());
                const MixState::Musician* m = mix.find(id);
                if (!m || !mkv.value().is_object()) {
                    skipped.push_back(json::value(id + ": not in the running config"));
                    continue;
                }
                const json::object& mo = mkv.value().as_object();
                // Every value is checked like a `set`: gains are clamped to [-90, +12] dB.
                if (const json::value* md = mo.if_contains("master_db")) {
                    double g = json_db(*md);
                    if (std::isfinite(g)) g = std::clamp(g, -90.0, 12.0);
                    mix.set_master(id, g);
                }
                if (const json::value* sends = mo.if_contains("sends"); sends && sends->is_object()) {
                    for (const auto& skv : sends->as_object()) {
                        const std::string in(skv.key());
                        if (!m->sends.count(in) || !skv.value().is_object()) {
                            skipped.push_back(json::value(id + "/" + in + ": no such input now"));
                            continue;
                        }
                        const json::object& so = skv.value().as_object();
                        SendValue v;
                        v.gain_db = so.if_contains("gain_db") ? json_db(so.at("gain_db")) : v.gain_db;
                        if (std::isfinite(v.gain_db)) v.gain_db = std::clamp(v.gain_db, -90.0, 12.0);
                        v.pan = so.if_contains("pan") ? std::clamp(json_db(so.at("pan")), -1.0, 1.0) : 0.0;
                        if (!std::isfinite(v.pan)) v.pan = 0;
                        v.mute = so.if_contains("mute") && so.at("mute").is_bool() && so.at("mute").as_bool();
                        mix.set_send(id, in, v);
                    }
                }
                applied.push_back(json::value(id));
            }
            mix_changed = Clock::now();
            eff = mix.effective(cfg);
            // One rebuild with ramps (sends that were off may come on): no jumps (SPEC §3.2).
            if (eng) {
                eng->apply_config(engine_cfg(), engine::StartMode::fade_in);
                keeper.bind(*eng);
                if (jack) publish_ports();
            }
            log::notice("control (uid %u): scene '%s' recalled", static_cast<unsigned>(peer),
                        r.scene.c_str());
            json::object res;
            res["recalled"] = r.scene;
            res["musicians"] = std::move(applied);
            res["skipped"] = std::move(skipped);
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
        panicked = r.on;
        // On: silence within one period. Off: back up over the start-up ramp, like a start.
        const uint32_t period = jack ? std::max<uint32_t>(1, jack->buffer_size()) : 256;
        const uint32_t up =
            eng ? static_cast<uint32_t>(std::max(1.0, eff.mixer.startup_ramp_ms * 1e-3 * eng->sample_rate()))
                : 0;
        apply_masters(panicked ? period : up);
        log::notice("control (uid %u): panic %s", static_cast<unsigned>(peer),
                    r.on ? "ON: every mix silenced" : "off");
        json::object res;
        res["panic"] = panicked;
        return control::reply_ok(r.id, std::move(res));
    }
    case Command::learn:
        return control::reply_error(r.id, control::code::unavailable,
                                    "MIDI learn needs a MIDI controller in the config (controllers:)");
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
    if (eng && !eng->set_send(musician, input, v.gain_db, v.pan, v.mute)) {
        // A send the running graph does not have yet: rebuild (ramped like a reload).
        eng->apply_config(engine_cfg(), engine::StartMode::fade_in);
        keeper.bind(*eng);
        if (jack) publish_ports();
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
    if (state == State::waiting && now >= next_retry) {
        if (!start_session()) {
            backoff_s = backoff_s <= 0 ? opt.retry_min_s : std::min(backoff_s * 2.0, opt.retry_max_s);
            next_retry =
                now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_s));
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
            if (jack->route_is_live()) {
                for (auto& old : old_engines) old->flush_dose();
                old_engines.clear();
            }
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
        log::flush_suppressed();
    }
    control.publish();
    if (secs_since(last_summary) >= 10.0) {
        last_summary = now;
        notify::status(summary());
    }
    if (mix.dirty() && secs_since(mix_changed) >= 1.0) save_mix();
    watchdog();
}

void Daemon::Impl::fade_out_and_close() {
    if (state != State::connected || !jack || !eng) return;
    // No jump at the end either: fade every mix to silence, then leave JACK.
    for (const config::Musician& m : eff.musicians)
        eng->set_master(m.id, -std::numeric_limits<double>::infinity());
    const double fs = eng->sample_rate();
    const uint64_t need = static_cast<uint64_t>(eff.mixer.ramp_ms * 1e-3 * fs) + 2 * jack->buffer_size() + 64;
    const uint64_t start = eng->counters().samples.load();
    const auto deadline = Clock::now() + std::chrono::milliseconds(1000);
    std::string reason;
    while (eng->counters().samples.load() - start < need && Clock::now() < deadline &&
           !jack->take_shutdown(reason)) {
        drain(*eng, true);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    jack->close();
    eng->flush_dose();
    drain(*eng, true);
}

void Daemon::Impl::shutdown() {
    stopping = true;
    notify::stopping();
    log::notice("stopping: fading out, flushing the exposure logs");
    fade_out_and_close();
    keeper.flush();
    save_mix();
    ::unlink((opt.runtime_dir + "/status.json").c_str());
    control.close();
    timer.cancel();
    signals.cancel();
    io.stop();
    log::notice("stopped");
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

void Daemon::Impl::arm_signals() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
        if (ec || stopping) return;
        if (sig == SIGHUP) {
            log::notice("SIGHUP");
            reload();
            arm_signals();
        } else {
            shutdown();
        }
    });
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
    if (s.eng) s.eng->set_master(musician, s.engine_master(gain_db));
    return true;
}

} // namespace earshot::daemon
