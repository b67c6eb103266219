#include "earshot/daemon/daemon.hpp"

#include "earshot/config/loader.hpp"
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

struct Daemon::Impl {
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

    boost::asio::io_context io;
    boost::asio::signal_set signals{io, SIGTERM, SIGINT, SIGHUP};
    boost::asio::steady_timer timer{io};

    Impl(Options o, config::Config c) : opt(std::move(o)), cfg(std::move(c)), keeper(opt.state_dir) {}

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
    void reload();
    void shutdown();
    void fade_out_and_close();
    void write_status();
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
    eng->apply_config(eff, engine::StartMode::fade_in);
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
    next->apply_config(eff, engine::StartMode::fade_in);
    old_engines.push_back(std::move(eng));
    eng = std::move(next);
    keeper.bind(*eng);
    fw_edges.clear();
    meters.clear();
    publish_ports();
}

void Daemon::Impl::reload() {
    notify::reloading();
    log::notice("SIGHUP: reloading %s", opt.config_path.c_str());
    config::Config next;
    try {
        next = config::load_file(opt.config_path);
    } catch (const config::ConfigErrors& e) {
        for (const auto& err : e.errors()) log::error("%s", err.format().c_str());
        log::error("reload rejected (%zu error%s); the running config stays", e.errors().size(),
                   e.errors().size() == 1 ? "" : "s");
        notify::ready(summary());
        return;
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
            if (!eng->apply_config(eff, engine::StartMode::fade_in)) log::error("engine command queue full");
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
        }
    }
    log::notice("config reloaded: %zu inputs, %zu musicians", cfg.inputs.size(), cfg.musicians.size());
    notify::ready(summary());
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

void Daemon::Impl::write_status() {
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
        if (eng) {
            const uint32_t key = eng->musician_key(m.id);
            const auto it = meters.find(key);
            if (it != meters.end()) {
                Meter& mt = const_cast<Meter&>(it->second);
                json::array pk;
                for (int c = 0; c < m.channels(); ++c)
                    pk.push_back(num(dsp::gain_to_db(mt.held_peak[c]) + off, 1));
                o["peak_db_spl"] = std::move(pk);
                o["limiter_gr_db"] = num(std::max(0.0, -dsp::gain_to_db(mt.held_lim)), 2);
                o["master_gain_db"] = num(dsp::gain_to_db(mt.master_gain), 2);
                mt.held_peak[0] = mt.held_peak[1] = 0;
                mt.held_lim = 1;
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
    if (!write_file_atomic(opt.runtime_dir + "/status.json", json::serialize(root) + "\n"))
        log::warn_limited("status", "could not write %s/status.json: %s", opt.runtime_dir.c_str(),
                          std::strerror(errno));
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
    if (!s.mix.set_send(musician, input, v)) return false;
    s.mix_changed = Clock::now();
    s.eff = s.mix.effective(s.cfg);
    if (s.eng && !s.eng->set_send(musician, input, v.gain_db, v.pan, v.mute)) {
        // A send the running graph does not have yet: rebuild (ramped like a reload).
        s.eng->apply_config(s.eff, engine::StartMode::fade_in);
        s.keeper.bind(*s.eng);
        if (s.jack) s.publish_ports();
    }
    return true;
}

bool Daemon::set_master(const std::string& musician, double gain_db) {
    Impl& s = *_p;
    if (!s.mix.set_master(musician, gain_db)) return false;
    s.mix_changed = Clock::now();
    s.eff = s.mix.effective(s.cfg);
    if (s.eng) s.eng->set_master(musician, gain_db);
    return true;
}

} // namespace earshot::daemon
