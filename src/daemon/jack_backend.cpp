// The JACK backend of earshotd (the only translation unit that includes JACK).
#include "earshot/daemon/jack_backend.hpp"

#include "earshot/daemon/log.hpp"

#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <jack/jack.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace earshot::daemon {

namespace {

// What the RT thread reads: the engine and the port of every slot. Immutable once published.
struct Route {
    engine::Engine* eng = nullptr;
    int n_in = 0, n_out = 0;
    jack_port_t* in[engine::max_input_slots] = {};
    jack_port_t* out[engine::max_output_slots] = {};
};

struct Port {
    jack_port_t* port = nullptr;
    PortSpec spec;
};

bool rules_match(const std::vector<config::ConnectRule>& rules, const std::string& port) {
    for (const config::ConnectRule& r : rules)
        if (config::connect_matches(r, port)) return true;
    return false;
}

bool same_rules(const std::vector<config::ConnectRule>& a, const std::vector<config::ConnectRule>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].pattern != b[i].pattern || a[i].is_regex != b[i].is_regex) return false;
    return true;
}

} // namespace

struct JackBackend::Impl {
    jack_client_t* client = nullptr;
    bool active = false;
    std::string name;

    // Control-side port table (the latency callback reads it under `mu`; the control thread takes
    // `mu` only to read or swap the table, never across a JACK call).
    mutable std::mutex mu;
    std::map<std::string, Port> ports;
    // Connections that failed (e.g. the other client was not active yet), retried a few times.
    struct Pending {
        std::string src, dst;
        int tries = 0;
    };
    std::vector<Pending> pending;

    // Routes: the newest is published in `route`; older ones wait in `retired` until the RT thread
    // has started a cycle with a newer one (`seen`).
    std::atomic<Route*> route{nullptr};
    std::atomic<Route*> seen{nullptr};
    std::vector<std::unique_ptr<Route>> routes; // every route still allocated, newest last
    std::vector<jack_port_t*> doomed;           // ports to unregister once the old routes are gone

    // Written by JACK threads.
    std::atomic<bool> shutdown{false};
    char shutdown_reason[256] = {};
    std::atomic<bool> ports_changed{false};
    // Ports registered on the server (JACK's notification thread -> control): every registration
    // is an event, so a port that disappears and comes back between two ticks is not missed.
    boost::lockfree::queue<jack_port_id_t, boost::lockfree::capacity<1024>> registered;
    std::atomic<bool> registered_overflow{false}; // then every port is looked at again
    std::atomic<bool> rate_changed{false};
    std::atomic<uint32_t> rate{0};
    std::atomic<bool> buffer_changed{false};
    std::atomic<uint32_t> buffer{0};
    std::atomic<uint64_t> xruns{0};
    std::atomic<uint64_t> cycles{0};
    std::atomic<uint64_t> rt_errors{0};
    std::atomic<bool> freewheel{false};
    bool rt_freewheel = false; // RT thread's view, to detect edges
    boost::lockfree::spsc_queue<FreewheelEdge, boost::lockfree::capacity<256>> edges;

    // RT scratch (only the process thread touches these).
    const float* in_buf[engine::max_input_slots] = {};
    float* out_buf[engine::max_output_slots] = {};

    static int process(jack_nframes_t n, void* arg) noexcept;
    static void on_shutdown(jack_status_t code, const char* reason, void* arg) noexcept;
    static int on_xrun(void* arg) noexcept;
    static int on_rate(jack_nframes_t r, void* arg) noexcept;
    static int on_buffer(jack_nframes_t n, void* arg) noexcept;
    static void on_freewheel(int starting, void* arg) noexcept;
    static void on_port_registration(jack_port_id_t, int, void* arg) noexcept;
    static void on_latency(jack_latency_callback_mode_t mode, void* arg) noexcept;

    std::vector<std::string> server_ports(unsigned long flags) const;
    void apply_rules(const Port& ours, const std::vector<std::string>& candidates);
    void drop_stale_connections(const Port& ours, const std::vector<config::ConnectRule>& old_rules);
};

int JackBackend::Impl::process(jack_nframes_t n, void* arg) noexcept {
    Impl& s = *static_cast<Impl*>(arg);
    Route* r = s.route.load(std::memory_order_acquire);
    s.seen.store(r, std::memory_order_release);
    s.cycles.fetch_add(1, std::memory_order_relaxed);
    if (!r) return 0;
    for (int i = 0; i < r->n_in; ++i)
        s.in_buf[i] = r->in[i] ? static_cast<const float*>(jack_port_get_buffer(r->in[i], n)) : nullptr;
    for (int j = 0; j < r->n_out; ++j)
        s.out_buf[j] = r->out[j] ? static_cast<float*>(jack_port_get_buffer(r->out[j], n)) : nullptr;
    const bool fw = s.freewheel.load(std::memory_order_relaxed);
    if (r->eng && fw != s.rt_freewheel) {
        s.rt_freewheel = fw;
        s.edges.push(FreewheelEdge{r->eng->counters().samples.load(std::memory_order_relaxed), fw});
    }
    if (!r->eng || static_cast<uint32_t>(r->eng->sample_rate()) != s.rate.load(std::memory_order_relaxed)) {
        // Fail silent: no engine for this rate (yet).
        for (int j = 0; j < r->n_out; ++j)
            if (s.out_buf[j]) std::memset(s.out_buf[j], 0, sizeof(float) * n);
        s.rt_errors.fetch_add(1, std::memory_order_relaxed);
        return 0;
    }
    r->eng->process(n, s.in_buf, r->n_in, s.out_buf, r->n_out);
    return 0;
}

void JackBackend::Impl::on_shutdown(jack_status_t, const char* reason, void* arg) noexcept {
    Impl& s = *static_cast<Impl*>(arg);
    if (reason) {
        std::strncpy(s.shutdown_reason, reason, sizeof s.shutdown_reason - 1);
        s.shutdown_reason[sizeof s.shutdown_reason - 1] = 0;
    }
    s.shutdown.store(true, std::memory_order_release);
}

int JackBackend::Impl::on_xrun(void* arg) noexcept {
    static_cast<Impl*>(arg)->xruns.fetch_add(1, std::memory_order_relaxed);
    return 0;
}

int JackBackend::Impl::on_rate(jack_nframes_t r, void* arg) noexcept {
    Impl& s = *static_cast<Impl*>(arg);
    if (s.rate.exchange(r, std::memory_order_acq_rel) != r)
        s.rate_changed.store(true, std::memory_order_release);
    return 0;
}

int JackBackend::Impl::on_buffer(jack_nframes_t n, void* arg) noexcept {
    Impl& s = *static_cast<Impl*>(arg);
    if (s.buffer.exchange(n, std::memory_order_acq_rel) != n)
        s.buffer_changed.store(true, std::memory_order_release);
    return 0;
}

void JackBackend::Impl::on_freewheel(int starting, void* arg) noexcept {
    static_cast<Impl*>(arg)->freewheel.store(starting != 0, std::memory_order_release);
}

void JackBackend::Impl::on_port_registration(jack_port_id_t id, int registered_now, void* arg) noexcept {
    Impl& s = *static_cast<Impl*>(arg);
    if (!registered_now) return; // a port that goes takes its connections with it
    if (!s.registered.bounded_push(id)) s.registered_overflow.store(true, std::memory_order_release);
    s.ports_changed.store(true, std::memory_order_release);
}

void JackBackend::Impl::on_latency(jack_latency_callback_mode_t mode, void* arg) noexcept {
    // Capture latency of an output = the largest capture latency among the inputs + its look-ahead;
    // playback latency of an input = the largest playback latency among the outputs + the largest
    // look-ahead (what is played later than it arrives).
    Impl& s = *static_cast<Impl*>(arg);
    std::lock_guard<std::mutex> g(s.mu);
    jack_latency_range_t up{0, 0};
    bool any = false;
    int max_la = 0;
    for (const auto& [name, p] : s.ports) {
        if (!p.spec.input) max_la = std::max(max_la, p.spec.latency);
        const bool source_side = mode == JackCaptureLatency ? p.spec.input : !p.spec.input;
        if (!source_side) continue;
        jack_latency_range_t r;
        jack_port_get_latency_range(p.port, mode, &r);
        if (!any) up = r;
        up.min = std::min(up.min, r.min);
        up.max = std::max(up.max, r.max);
        any = true;
    }
    for (const auto& [name, p] : s.ports) {
        const bool target_side = mode == JackCaptureLatency ? !p.spec.input : p.spec.input;
        if (!target_side) continue;
        const auto add = static_cast<jack_nframes_t>(mode == JackCaptureLatency ? p.spec.latency : max_la);
        jack_latency_range_t r{up.min + add, up.max + add};
        jack_port_set_latency_range(p.port, mode, &r);
    }
}

std::vector<std::string> JackBackend::Impl::server_ports(unsigned long flags) const {
    std::vector<std::string> out;
    if (!client) return out;
    const char** names = jack_get_ports(client, nullptr, JACK_DEFAULT_AUDIO_TYPE, flags);
    if (!names) return out;
    for (const char** p = names; *p; ++p) out.emplace_back(*p);
    jack_free(static_cast<void*>(names));
    return out;
}

void JackBackend::Impl::apply_rules(const Port& ours, const std::vector<std::string>& candidates) {
    if (ours.spec.connect.empty() || !client) return;
    const std::string own = std::string(jack_port_name(ours.port));
    const std::string prefix = name + ":";
    for (const std::string& c : candidates) {
        if (c.rfind(prefix, 0) == 0) continue; // never to ourselves
        bool match = false;
        for (const config::ConnectRule& r : ours.spec.connect) match = match || config::connect_matches(r, c);
        if (!match) continue;
        const std::string& src = ours.spec.input ? c : own;
        const std::string& dst = ours.spec.input ? own : c;
        const int rc = jack_connect(client, src.c_str(), dst.c_str());
        if (rc == 0) {
            log::info("connected %s -> %s", src.c_str(), dst.c_str());
        } else if (rc != EEXIST) {
            // Typically a client that registered its ports but is not active yet: retry shortly.
            log::debug("could not connect %s -> %s yet (JACK error %d)", src.c_str(), dst.c_str(), rc);
            pending.push_back(Pending{src, dst, 0});
        }
    }
}

// A reload changed a port's rules: the connections its old rules made (the other end matches an
// old rule) and the new ones do not want go. Connections made by hand (matching no old rule) stay.
void JackBackend::Impl::drop_stale_connections(const Port& ours,
                                               const std::vector<config::ConnectRule>& old_rules) {
    if (!client || old_rules.empty()) return;
    const char** conns = jack_port_get_all_connections(client, ours.port);
    if (!conns) return;
    std::vector<std::string> others;
    for (const char** c = conns; *c; ++c) others.emplace_back(*c);
    jack_free(static_cast<void*>(conns));
    const std::string own = jack_port_name(ours.port);
    for (const std::string& o : others) {
        if (!rules_match(old_rules, o) || rules_match(ours.spec.connect, o)) continue;
        const std::string& src = ours.spec.input ? o : own;
        const std::string& dst = ours.spec.input ? own : o;
        if (jack_disconnect(client, src.c_str(), dst.c_str()) == 0)
            log::info("disconnected %s -> %s (the reloaded connect rules no longer name it)", src.c_str(),
                      dst.c_str());
    }
}

namespace {
// "jack_client_open failed (status 0x..)" for the status bits libjack returned.
std::string open_failure(jack_status_t status) {
    char b[64];
    std::snprintf(b, sizeof b, "jack_client_open failed (status 0x%x)", static_cast<unsigned>(status));
    return b;
}
} // namespace

namespace {
// libjack's own messages (server gone, cannot connect, ...) go through the daemon's rate-limited
// log instead of raw stderr lines. libjack calls these on whatever thread met the error, JACK's
// own threads included, which must not log (ARCHITECTURE.md): there the line is copied into a
// fixed-size lock-free queue (no allocation, no system call) that the control loop prints.
struct LibjackLine {
    bool error;
    char text[247];
};
boost::lockfree::queue<LibjackLine, boost::lockfree::capacity<64>> g_lines; // JACK threads -> control
std::atomic<uint64_t> g_lines_dropped{0};
pthread_t g_control_thread{};

void print_line(bool error, const char* msg) {
    if (error)
        log::info_limited("libjack", "libjack: %s", msg);
    else
        log::debug("libjack: %s", msg);
}
void libjack_line(bool error, const char* msg) {
    if (pthread_equal(pthread_self(), g_control_thread)) {
        print_line(error, msg);
        return;
    }
    LibjackLine l{};
    l.error = error;
    std::strncpy(l.text, msg ? msg : "", sizeof l.text - 1);
    if (!g_lines.bounded_push(l)) g_lines_dropped.fetch_add(1, std::memory_order_relaxed);
}
void jack_error_line(const char* msg) {
    libjack_line(true, msg);
}
void jack_info_line(const char* msg) {
    libjack_line(false, msg);
}
} // namespace

void JackBackend::log_deferred() {
    LibjackLine l;
    while (g_lines.pop(l)) print_line(l.error, l.text);
    if (const uint64_t n = g_lines_dropped.exchange(0, std::memory_order_relaxed))
        log::info_limited("libjack", "libjack: %llu more messages from JACK's threads dropped",
                          static_cast<unsigned long long>(n));
}

JackBackend::JackBackend() : _p(std::make_unique<Impl>()) {
    static const bool once = [] {
        g_control_thread = pthread_self();
        jack_set_error_function(&jack_error_line);
        jack_set_info_function(&jack_info_line);
        return true;
    }();
    (void)once;
}

JackBackend::~JackBackend() {
    close();
}

bool JackBackend::open(const std::string& client_name, std::string& err) {
    close();
    jack_status_t status{};
    jack_client_t* c = jack_client_open(
        client_name.c_str(), static_cast<jack_options_t>(JackNoStartServer | JackUseExactName), &status);
    if (!c) {
        if (status & JackNameNotUnique)
            err = "the JACK client name '" + client_name + "' is taken (is another earshotd running?)";
        else if (status & JackServerFailed)
            err = "no JACK server is running";
        else
            err = open_failure(status);
        return false;
    }
    Impl& s = *_p;
    s.client = c;
    s.name = jack_get_client_name(c);
    s.shutdown.store(false);
    s.rate.store(jack_get_sample_rate(c));
    s.buffer.store(jack_get_buffer_size(c));
    s.rate_changed.store(false);
    s.buffer_changed.store(false);
    s.freewheel.store(false);
    s.rt_freewheel = false;
    s.xruns.store(0);
    s.cycles.store(0);
    jack_set_process_callback(c, &Impl::process, &s);
    jack_on_info_shutdown(c, &Impl::on_shutdown, &s);
    jack_set_xrun_callback(c, &Impl::on_xrun, &s);
    jack_set_sample_rate_callback(c, &Impl::on_rate, &s);
    jack_set_buffer_size_callback(c, &Impl::on_buffer, &s);
    jack_set_freewheel_callback(c, &Impl::on_freewheel, &s);
    jack_set_port_registration_callback(c, &Impl::on_port_registration, &s);
    jack_set_latency_callback(c, &Impl::on_latency, &s);
    // After setting the callbacks: jack2 calls the sample-rate callback at once.
    s.rate_changed.store(false);
    s.buffer_changed.store(false);
    return true;
}

bool JackBackend::activate(std::string& err) {
    Impl& s = *_p;
    if (!s.client) {
        err = "not open";
        return false;
    }
    if (s.active) return true;
    if (jack_activate(s.client) != 0) {
        err = "jack_activate failed";
        return false;
    }
    s.active = true;
    jack_recompute_total_latencies(s.client);
    return true;
}

void JackBackend::close() {
    Impl& s = *_p;
    if (!s.client) return;
    if (s.active) jack_deactivate(s.client);
    s.active = false;
    jack_client_close(s.client);
    s.client = nullptr;
    {
        std::lock_guard<std::mutex> g(s.mu);
        s.ports.clear();
    }
    jack_port_id_t id;
    while (s.registered.pop(id)) {
    }
    s.registered_overflow.store(false);
    s.pending.clear();
    s.doomed.clear();
    s.route.store(nullptr);
    s.seen.store(nullptr);
    s.routes.clear();
    FreewheelEdge e;
    while (s.edges.pop(e)) {
    }
}

bool JackBackend::is_open() const noexcept {
    return _p->client != nullptr;
}
bool JackBackend::is_active() const noexcept {
    return _p->active;
}
std::string JackBackend::client_name() const {
    return _p->name;
}
uint32_t JackBackend::sample_rate() const noexcept {
    return _p->rate.load();
}
uint32_t JackBackend::buffer_size() const noexcept {
    return _p->buffer.load();
}

bool JackBackend::set_ports(const std::vector<PortSpec>& specs, engine::Engine* eng, std::string& err) {
    Impl& s = *_p;
    if (!s.client) {
        err = "not open";
        return false;
    }
    bool ok = true;
    std::vector<std::string> fresh;
    // Register what is new (outside the lock: registration talks to the server, which may call back).
    std::map<std::string, jack_port_t*> created;
    for (const PortSpec& ps : specs) {
        bool have = false;
        {
            std::lock_guard<std::mutex> g(s.mu);
            have = s.ports.count(ps.name) != 0;
        }
        if (have) continue;
        jack_port_t* p = jack_port_register(s.client, ps.name.c_str(), JACK_DEFAULT_AUDIO_TYPE,
                                            ps.input ? JackPortIsInput : JackPortIsOutput, 0);
        if (!p) {
            err += (err.empty() ? "" : "; ") + std::string("could not register port '") + ps.name + "'";
            ok = false;
            continue;
        }
        created[ps.name] = p;
    }
    auto route = std::make_unique<Route>();
    route->eng = eng;
    std::vector<jack_port_t*> removed;
    std::vector<std::pair<std::string, std::vector<config::ConnectRule>>> changed; // name, old rules
    {
        std::lock_guard<std::mutex> g(s.mu);
        std::map<std::string, Port> next;
        for (const PortSpec& ps : specs) {
            Port p;
            p.spec = ps;
            if (auto c = created.find(ps.name); c != created.end()) {
                p.port = c->second;
                fresh.push_back(ps.name);
            } else if (auto o = s.ports.find(ps.name); o != s.ports.end()) {
                p.port = o->second.port;
                if (!same_rules(o->second.spec.connect, ps.connect))
                    changed.emplace_back(ps.name, o->second.spec.connect);
            } else {
                continue; // registration failed
            }
            if (ps.input && ps.slot >= 0 && ps.slot < engine::max_input_slots) {
                route->in[ps.slot] = p.port;
                route->n_in = std::max(route->n_in, ps.slot + 1);
            } else if (!ps.input && ps.slot >= 0 && ps.slot < engine::max_output_slots) {
                route->out[ps.slot] = p.port;
                route->n_out = std::max(route->n_out, ps.slot + 1);
            }
            next[ps.name] = std::move(p);
        }
        for (const auto& [n, p] : s.ports)
            if (!next.count(n)) removed.push_back(p.port);
        s.ports = std::move(next);
    }
    s.route.store(route.get(), std::memory_order_release);
    s.routes.push_back(std::move(route));
    s.doomed.insert(s.doomed.end(), removed.begin(), removed.end());
    if (s.active) {
        const auto out = s.server_ports(JackPortIsOutput);
        const auto in = s.server_ports(JackPortIsInput);
        for (const std::string& n : fresh) {
            Port copy;
            {
                std::lock_guard<std::mutex> g(s.mu);
                copy = s.ports[n];
            }
            s.apply_rules(copy, copy.spec.input ? out : in);
        }
        // Ports whose rules a reload changed: the new rules apply to what is there now.
        for (const auto& [n, old_rules] : changed) {
            Port copy;
            {
                std::lock_guard<std::mutex> g(s.mu);
                copy = s.ports[n];
            }
            s.drop_stale_connections(copy, old_rules);
            s.apply_rules(copy, copy.spec.input ? out : in);
        }
        jack_recompute_total_latencies(s.client);
    }
    reap();
    return ok;
}

bool JackBackend::route_is_live() const noexcept {
    const Impl& s = *_p;
    if (!s.active) return true;
    return s.seen.load(std::memory_order_acquire) == s.route.load(std::memory_order_acquire);
}

void JackBackend::reap() {
    Impl& s = *_p;
    if (s.routes.size() <= 1 && s.doomed.empty()) return;
    if (!route_is_live()) return;
    // The RT thread runs the newest route: everything older and every removed port can go.
    if (s.routes.size() > 1) s.routes.erase(s.routes.begin(), s.routes.end() - 1);
    for (jack_port_t* p : s.doomed) jack_port_unregister(s.client, p);
    if (!s.doomed.empty() && s.active) jack_recompute_total_latencies(s.client);
    s.doomed.clear();
}

void JackBackend::connect_all() {
    Impl& s = *_p;
    if (!s.client || !s.active) return;
    const auto out = s.server_ports(JackPortIsOutput);
    const auto in = s.server_ports(JackPortIsInput);
    std::vector<Port> copy;
    {
        std::lock_guard<std::mutex> g(s.mu);
        for (const auto& [n, p] : s.ports) copy.push_back(p);
    }
    for (const Port& p : copy) s.apply_rules(p, p.spec.input ? out : in);
}

void JackBackend::connect_new_ports() {
    Impl& s = *_p;
    if (!s.client || !s.active) return;
    if (s.registered_overflow.exchange(false, std::memory_order_acq_rel)) {
        // More registrations than the queue holds: look at every port again.
        jack_port_id_t id;
        while (s.registered.pop(id)) {
        }
        connect_all();
        return;
    }
    std::vector<std::string> new_out, new_in;
    jack_port_id_t id;
    while (s.registered.pop(id)) {
        // By id, not by a diff of name lists: a port that went and came back is a new event. (A
        // stale name of a port gone meanwhile only fails to connect.)
        jack_port_t* p = jack_port_by_id(s.client, id);
        if (!p) continue;
        const char* type = jack_port_type(p);
        const char* name = jack_port_name(p);
        if (!type || !name || !*name || std::strcmp(type, JACK_DEFAULT_AUDIO_TYPE) != 0) continue;
        auto& list = (jack_port_flags(p) & JackPortIsOutput) ? new_out : new_in;
        if (std::find(list.begin(), list.end(), name) == list.end()) list.emplace_back(name);
    }
    if (new_out.empty() && new_in.empty()) return;
    std::vector<Port> copy;
    {
        std::lock_guard<std::mutex> g(s.mu);
        for (const auto& [n, p] : s.ports) copy.push_back(p);
    }
    for (const Port& p : copy) s.apply_rules(p, p.spec.input ? new_out : new_in);
}

void JackBackend::retry_connections() {
    Impl& s = *_p;
    if (!s.client || !s.active || s.pending.empty()) return;
    std::vector<Impl::Pending> still;
    for (Impl::Pending& p : s.pending) {
        const int rc = jack_connect(s.client, p.src.c_str(), p.dst.c_str());
        if (rc == 0) {
            log::info("connected %s -> %s", p.src.c_str(), p.dst.c_str());
        } else if (rc != EEXIST) {
            if (++p.tries < max_connect_tries && jack_port_by_name(s.client, p.src.c_str()) &&
                jack_port_by_name(s.client, p.dst.c_str()))
                still.push_back(p);
            else if (p.tries >= max_connect_tries)
                log::warn_limited("connect", "could not connect %s -> %s (JACK error %d)", p.src.c_str(),
                                  p.dst.c_str(), rc);
        }
    }
    s.pending = std::move(still);
}

bool JackBackend::take_shutdown(std::string& reason) {
    Impl& s = *_p;
    if (!s.shutdown.exchange(false, std::memory_order_acq_rel)) return false;
    reason = s.shutdown_reason[0] ? s.shutdown_reason : "the JACK server went away";
    return true;
}
bool JackBackend::take_ports_changed() noexcept {
    return _p->ports_changed.exchange(false, std::memory_order_acq_rel);
}
bool JackBackend::take_rate_changed(uint32_t& rate) noexcept {
    if (!_p->rate_changed.exchange(false, std::memory_order_acq_rel)) return false;
    rate = _p->rate.load();
    return true;
}
bool JackBackend::take_buffer_changed(uint32_t& frames) noexcept {
    if (!_p->buffer_changed.exchange(false, std::memory_order_acq_rel)) return false;
    frames = _p->buffer.load();
    return true;
}
bool JackBackend::pop_freewheel_edge(FreewheelEdge& e) noexcept {
    return _p->edges.pop(e);
}
uint64_t JackBackend::xruns() const noexcept {
    return _p->xruns.load(std::memory_order_relaxed);
}
uint64_t JackBackend::cycles() const noexcept {
    return _p->cycles.load(std::memory_order_relaxed);
}
uint64_t JackBackend::rt_errors() const noexcept {
    return _p->rt_errors.load(std::memory_order_relaxed);
}
bool JackBackend::freewheeling() const noexcept {
    return _p->freewheel.load(std::memory_order_relaxed);
}
float JackBackend::cpu_load() const {
    return _p->client ? jack_cpu_load(_p->client) : 0.0f;
}

RtInfo JackBackend::rt_info() const {
    RtInfo r;
    if (!_p->client) return r;
    r.server_realtime = jack_is_realtime(_p->client) != 0;
    if (_p->active) {
        sched_param sp{};
        int pol = 0;
        if (pthread_getschedparam(jack_client_thread_id(_p->client), &pol, &sp) == 0) {
            r.policy = pol;
            r.priority = sp.sched_priority;
        }
    }
    return r;
}

std::vector<std::string> JackBackend::connections(const std::string& short_name) const {
    std::vector<std::string> out;
    const Impl& s = *_p;
    jack_port_t* p = nullptr;
    {
        std::lock_guard<std::mutex> g(s.mu);
        const auto it = s.ports.find(short_name);
        if (it == s.ports.end()) return out;
        p = it->second.port;
    }
    const char** c = jack_port_get_all_connections(s.client, p);
    if (!c) return out;
    for (const char** q = c; *q; ++q) out.emplace_back(*q);
    jack_free(static_cast<void*>(c));
    return out;
}

} // namespace earshot::daemon

// --- JackMidiGuard (include/earshot/daemon/jack_midi.hpp): MidiHub's JACK client ---------------
// Self-contained: it shares nothing with JackBackend but this file's include of JACK.

#include "earshot/daemon/jack_midi.hpp"

#include <jack/midiport.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

namespace earshot::daemon {

struct JackMidiGuard::Impl {
    struct Slot {
        std::atomic<jack_port_t*> watch{nullptr}; // read by the process callback
        std::atomic<jack_port_t*> eox{nullptr};
        jack_port_t* watch_reg = nullptr; // owned by the control thread
        jack_port_t* eox_reg = nullptr;
        midi::SysexGuard guard;
    };
    jack_client_t* client = nullptr;
    std::string name;
    std::array<Slot, max_slots> slots;
    std::atomic<uint64_t> cycles{0};
    std::atomic<bool> changed{false};

    static int process(jack_nframes_t n, void* arg) noexcept {
        Impl& s = *static_cast<Impl*>(arg);
        for (Slot& sl : s.slots) {
            jack_port_t* w = sl.watch.load(std::memory_order_acquire);
            jack_port_t* o = sl.eox.load(std::memory_order_acquire);
            if (!w || !o) continue;
            void* in = jack_port_get_buffer(w, n);
            void* out = jack_port_get_buffer(o, n);
            if (!in || !out) continue;
            jack_midi_clear_buffer(out);
            const uint32_t count = jack_midi_get_event_count(in);
            sl.guard.cycle(
                n, count,
                [in](uint32_t i, uint32_t& t, const uint8_t*& d, std::size_t& size) {
                    jack_midi_event_t ev;
                    if (jack_midi_event_get(&ev, in, i) != 0) return false;
                    t = ev.time;
                    d = ev.buffer;
                    size = ev.size;
                    return true;
                },
                [out](uint32_t t, const uint8_t* d, std::size_t size) {
                    return jack_midi_event_write(out, t, d, size) == 0;
                });
        }
        s.cycles.fetch_add(1, std::memory_order_release);
        return 0;
    }
    static void on_port(jack_port_id_t, int, void* arg) noexcept {
        static_cast<Impl*>(arg)->changed.store(true, std::memory_order_relaxed);
    }
    static void on_connect(jack_port_id_t, jack_port_id_t, int, void* arg) noexcept {
        static_cast<Impl*>(arg)->changed.store(true, std::memory_order_relaxed);
    }
    static void on_client(const char*, int, void* arg) noexcept {
        static_cast<Impl*>(arg)->changed.store(true, std::memory_order_relaxed);
    }

    // Waits (briefly) until the process callback has started a cycle after this call, so a
    // pointer it may have loaded before is no longer in use.
    void wait_cycle() const {
        const uint64_t c = cycles.load(std::memory_order_acquire);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
        while (cycles.load(std::memory_order_acquire) < c + 2 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
};

JackMidiGuard::JackMidiGuard() : _p(std::make_unique<Impl>()) {}

JackMidiGuard::~JackMidiGuard() {
    close();
}

bool JackMidiGuard::open(const std::string& client_name, std::string& err) {
    close();
    jack_status_t status{};
    jack_client_t* c = jack_client_open(client_name.c_str(), JackNoStartServer, &status);
    if (!c) {
        err = open_failure(status);
        return false;
    }
    Impl& s = *_p;
    s.client = c;
    s.name = jack_get_client_name(c);
    jack_set_process_callback(c, &Impl::process, &s);
    jack_set_port_registration_callback(c, &Impl::on_port, &s);
    jack_set_port_connect_callback(c, &Impl::on_connect, &s);
    jack_set_client_registration_callback(c, &Impl::on_client, &s);
    if (jack_activate(c) != 0) {
        err = "jack_activate failed";
        jack_client_close(c);
        s.client = nullptr;
        return false;
    }
    return true;
}

void JackMidiGuard::close() {
    Impl& s = *_p;
    if (!s.client) return;
    jack_deactivate(s.client); // no process callback after this
    for (Impl::Slot& sl : s.slots) {
        sl.watch.store(nullptr);
        sl.eox.store(nullptr);
        sl.watch_reg = sl.eox_reg = nullptr; // the ports go with the client
        sl.guard.request_reset();
    }
    jack_client_close(s.client);
    s.client = nullptr;
    s.name.clear();
}

bool JackMidiGuard::is_open() const noexcept {
    return _p->client != nullptr;
}

std::string JackMidiGuard::client_name() const {
    return _p->name;
}

bool JackMidiGuard::add(std::size_t slot, const std::string& name, std::string& err) {
    Impl& s = *_p;
    if (!s.client || slot >= max_slots) {
        err = "no JACK MIDI guard client";
        return false;
    }
    remove(slot);
    Impl::Slot& sl = s.slots[slot];
    sl.watch_reg =
        jack_port_register(s.client, (name + "-watch").c_str(), JACK_DEFAULT_MIDI_TYPE, JackPortIsInput, 0);
    sl.eox_reg =
        jack_port_register(s.client, (name + "-eox").c_str(), JACK_DEFAULT_MIDI_TYPE, JackPortIsOutput, 0);
    if (!sl.watch_reg || !sl.eox_reg) {
        err = "cannot register the ports " + name + "-watch / " + name + "-eox";
        if (sl.watch_reg) jack_port_unregister(s.client, sl.watch_reg);
        if (sl.eox_reg) jack_port_unregister(s.client, sl.eox_reg);
        sl.watch_reg = sl.eox_reg = nullptr;
        return false;
    }
    sl.guard.request_reset();
    sl.watch.store(sl.watch_reg, std::memory_order_release);
    sl.eox.store(sl.eox_reg, std::memory_order_release);
    return true;
}

void JackMidiGuard::remove(std::size_t slot) {
    Impl& s = *_p;
    if (slot >= max_slots) return;
    Impl::Slot& sl = s.slots[slot];
    if (!sl.watch_reg && !sl.eox_reg) return;
    sl.watch.store(nullptr, std::memory_order_release);
    sl.eox.store(nullptr, std::memory_order_release);
    if (s.client) {
        s.wait_cycle();
        if (sl.watch_reg) jack_port_unregister(s.client, sl.watch_reg);
        if (sl.eox_reg) jack_port_unregister(s.client, sl.eox_reg);
    }
    sl.watch_reg = sl.eox_reg = nullptr;
}

bool JackMidiGuard::has(std::size_t slot) const noexcept {
    return slot < max_slots && _p->slots[slot].watch_reg != nullptr;
}

std::string JackMidiGuard::watch_port(std::size_t slot) const {
    if (!has(slot)) return {};
    return jack_port_name(_p->slots[slot].watch_reg);
}

std::string JackMidiGuard::eox_port(std::size_t slot) const {
    if (!has(slot)) return {};
    return jack_port_name(_p->slots[slot].eox_reg);
}

midi::SysexGuard* JackMidiGuard::guard(std::size_t slot) noexcept {
    return slot < max_slots ? &_p->slots[slot].guard : nullptr;
}

bool JackMidiGuard::port_exists(const std::string& port) const {
    return _p->client && jack_port_by_name(_p->client, port.c_str()) != nullptr;
}

std::vector<std::string> JackMidiGuard::connections(const std::string& port) const {
    std::vector<std::string> out;
    const Impl& s = *_p;
    if (!s.client) return out;
    jack_port_t* p = jack_port_by_name(s.client, port.c_str());
    if (!p) return out;
    const char** c = jack_port_get_all_connections(s.client, p);
    if (!c) return out;
    for (const char** q = c; *q; ++q) out.emplace_back(*q);
    jack_free(static_cast<void*>(c));
    return out;
}

bool JackMidiGuard::connected(const std::string& a, const std::string& b) const {
    const std::vector<std::string> c = connections(a);
    return std::find(c.begin(), c.end(), b) != c.end();
}

bool JackMidiGuard::connect(const std::string& src, const std::string& dst) {
    Impl& s = *_p;
    if (!s.client) return false;
    const int rc = jack_connect(s.client, src.c_str(), dst.c_str());
    return rc == 0 || rc == EEXIST;
}

bool JackMidiGuard::take_graph_changed() noexcept {
    return _p->changed.exchange(false, std::memory_order_relaxed);
}

} // namespace earshot::daemon
