// The only translation unit that includes RtMidi. See include/earshot/daemon/midi_hub.hpp.
#include "earshot/daemon/midi_hub.hpp"

#include "earshot/daemon/jack_midi.hpp"
#include "earshot/daemon/log.hpp"
#include "earshot/midi/decoder.hpp"
#include "earshot/midi/event_queue.hpp"

#include <RtMidi.h>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace earshot::daemon {

namespace {

const char* api_name(config::Controller::Api a) noexcept {
    return a == config::Controller::Api::jack ? "jack" : "alsa";
}

RtMidi::Api rtmidi_api(config::Controller::Api a) noexcept {
    return a == config::Controller::Api::jack ? RtMidi::UNIX_JACK : RtMidi::LINUX_ALSA;
}

std::size_t api_index(config::Controller::Api a) noexcept {
    return a == config::Controller::Api::jack ? 1 : 0;
}

bool same_rule(const config::ConnectRule& a, const config::ConnectRule& b) noexcept {
    return a.pattern == b.pattern && a.is_regex == b.is_regex;
}

bool same_rule(const std::optional<config::ConnectRule>& a,
               const std::optional<config::ConnectRule>& b) noexcept {
    if (a.has_value() != b.has_value()) return false;
    return !a || same_rule(*a, *b);
}

// The client part of a port name ("client:port" for JACK, "client:port 20:0" for ALSA).
std::string client_of(const std::string& port) {
    const std::size_t colon = port.find(':');
    return colon == std::string::npos ? port : port.substr(0, colon);
}

// RtMidi reports errors to this callback instead of throwing (after construction) or printing.
struct ErrorSink {
    std::string message;
    bool failed = false;
};

void on_rtmidi_error(RtMidiError::Type type, const std::string& text, void* user) {
    auto* sink = static_cast<ErrorSink*>(user);
    if (type == RtMidiError::WARNING || type == RtMidiError::DEBUG_WARNING) {
        if (sink->message.empty()) sink->message = text;
        return;
    }
    sink->message = text;
    sink->failed = true;
}

} // namespace

struct MidiHub::Port {
    config::Controller cfg;
    std::string client_in, client_out; // RtMidi client names, unique per process and server
    std::unique_ptr<RtMidiIn> in;
    std::unique_ptr<RtMidiOut> out;
    std::string in_name, out_name; // the ports opened
    ErrorSink in_err, out_err;
    midi::Decoder decoder;
    midi::EventQueue<midi_queue_capacity> queue;
    int efd = -1;
    std::atomic<uint64_t> wakeups{0};  // eventfd writes (the callback's one system call)
    std::atomic<uint64_t> lone_eox{0}; // lone F7 messages RtMidi delivered (not decoded)
    uint64_t lone_eox_seen = 0;        // ... of which the control thread has looked at
    uint64_t reconnects = 0;           // input reopened after it had been open
    uint64_t feedback_reconnects = 0;  // feedback connection restored
    bool in_was_open = false, out_was_open = false;
    bool replugged = false;
    bool logged_waiting = false;
    bool logged_unchecked = false; // JACK: our input port could not be found to check it
    std::string last_error;

    Port() : decoder(0) {}

    // RtMidi's input thread. [RT-safe]: decode, queue, and when the control thread had taken
    // every earlier event (it may be asleep) one non-blocking eventfd write.
    static void on_input(double /*delta*/, std::vector<unsigned char>* msg, void* user) {
        Port* p = static_cast<Port*>(user);
        if (msg == nullptr || msg->empty()) return;
        if (msg->size() == 1 && (*msg)[0] == 0xF7) { // the SysEx guard's reset, RtMidi was not waiting
            p->lone_eox.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        bool wake = false;
        // One RtMidi message is one whole JACK MIDI / ALSA event: nothing carries over (no
        // running status, no half message) into the next.
        p->decoder.feed_message(msg->data(), msg->size(), MidiHub::now_us(),
                                [p, &wake](const midi::MidiEvent& e) {
                                    bool w = false;
                                    if (p->queue.try_push(e, &w))
                                        wake = wake || w; // a full queue counts the drop itself
                                });
        if (wake) {
            const uint64_t one = 1;
            [[maybe_unused]] const ssize_t w = ::write(p->efd, &one, sizeof one); // EAGAIN: already signalled
            p->wakeups.fetch_add(1, std::memory_order_relaxed);
        }
    }

    bool jack() const noexcept { return cfg.api == config::Controller::Api::jack; }
    std::string in_port() const { return client_in + ":in"; }    // RtMidi's JACK input port
    std::string out_port() const { return client_out + ":out"; } // RtMidi's JACK output port

    void close_input() {
        in.reset(); // closes the client: RtMidi's thread is gone after this
        decoder.finish();
        decoder.publish();
        in_name.clear();
    }
    void close_output() {
        out.reset();
        out_name.clear();
    }
};

struct MidiHub::Impl {
    boost::asio::io_context& io;
    int efd = -1;
    std::unique_ptr<boost::asio::posix::stream_descriptor> wake;
    std::array<uint64_t, 1> buf{};
    std::function<void()> handler;
    std::vector<std::unique_ptr<Port>> ports;
    // Per API (alsa, jack): objects that only list ports.
    std::array<std::unique_ptr<RtMidiIn>, 2> scan_in;
    std::array<std::unique_ptr<RtMidiOut>, 2> scan_out;
    std::array<ErrorSink, 2> scan_err;
    // An API that is not there is retried with back-off (1 s doubling to 60 s): libasound prints
    // its own error line on every failed open, which no rate limit of ours can hold back.
    std::array<std::chrono::steady_clock::time_point, 2> next_try{};
    std::array<double, 2> backoff_s{};
    std::string pid = std::to_string(::getpid());
    // Our own JACK client for the JACK controllers: connection checks and the SysEx guard.
    JackMidiGuard guard;
    std::vector<std::string> guard_slots; // controller id of each guard slot ("" = none)
    bool logged_guard = false;
    std::chrono::steady_clock::time_point last_poll{};

    explicit Impl(boost::asio::io_context& i) : io(i) {}

    std::string guard_name() const { return "earshot-midi-" + pid; }

    bool own(const std::string& port) const {
        const std::string c = client_of(port);
        if (c.rfind("earshot.scan", 0) == 0 || c == guard_name()) return true;
        for (const auto& p : ports)
            if (c == p->client_in || c == p->client_out) return true;
        return false;
    }

    // Creates the listing objects of an API; false (logged, rate-limited) when the API is not there.
    bool scanners(std::size_t a, config::Controller::Api api) {
        if (scan_in[a] && scan_out[a]) return true;
        const auto now = std::chrono::steady_clock::now();
        if (now < next_try[a]) return false;
        try {
            if (!scan_in[a]) {
                scan_in[a] = std::make_unique<RtMidiIn>(rtmidi_api(api), "earshot.scan-in-" + pid);
                scan_in[a]->setErrorCallback(&on_rtmidi_error, &scan_err[a]);
            }
            if (!scan_out[a]) {
                scan_out[a] = std::make_unique<RtMidiOut>(rtmidi_api(api), "earshot.scan-out-" + pid);
                scan_out[a]->setErrorCallback(&on_rtmidi_error, &scan_err[a]);
            }
        } catch (const RtMidiError& e) {
            scan_in[a].reset();
            scan_out[a].reset();
            backoff_s[a] = std::min(60.0, std::max(1.0, backoff_s[a] * 2.0));
            next_try[a] = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(backoff_s[a]));
            log::warn_limited(a == 0 ? "midi-alsa" : "midi-jack",
                              "MIDI: the %s API is not available (%s); retrying in %.0f s", api_name(api),
                              e.getMessage().c_str(), backoff_s[a]);
            return false;
        }
        backoff_s[a] = 0;
        return true;
    }

    template <typename R>
    std::vector<std::string> list(R& r) {
        std::vector<std::string> names;
        const unsigned n = r.getPortCount();
        for (unsigned i = 0; i < n; ++i) {
            std::string name = r.getPortName(i);
            if (!name.empty() && !own(name)) names.push_back(std::move(name));
        }
        return names;
    }
};

MidiHub::MidiHub(boost::asio::io_context& io) : _p(std::make_unique<Impl>(io)) {
    _p->efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (_p->efd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    _p->wake = std::make_unique<boost::asio::posix::stream_descriptor>(io, _p->efd);
    arm();
}

MidiHub::~MidiHub() {
    _p->guard.close();
    _p->ports.clear(); // every RtMidi client closed: no callback can write to the eventfd any more
    _p->scan_in = {};
    _p->scan_out = {};
    boost::system::error_code ec;
    _p->wake->cancel(ec);
    _p->wake->close(ec); // closes the eventfd
}

uint64_t MidiHub::now_us() noexcept {
    using namespace std::chrono;
    return static_cast<uint64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

void MidiHub::arm() {
    _p->wake->async_read_some(
        boost::asio::buffer(_p->buf), [this](const boost::system::error_code& ec, std::size_t) {
            if (ec == boost::asio::error::operation_aborted) return;
            if (ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) {
                log::error_limited("midi-wake", "MIDI wake-up: %s", ec.message().c_str());
                return;
            }
            if (_p->handler) {
                try {
                    _p->handler();
                } catch (const std::exception& e) {
                    log::error_limited("midi-handler", "MIDI: %s", e.what());
                }
            }
            arm();
        });
}

void MidiHub::on_events(std::function<void()> fn) {
    _p->handler = std::move(fn);
}

void MidiHub::configure(const std::vector<config::Controller>& controllers) {
    std::vector<std::unique_ptr<Port>> next;
    for (const config::Controller& c : controllers) {
        std::unique_ptr<Port> keep;
        for (auto& old : _p->ports) {
            if (old && old->cfg.id == c.id && old->cfg.api == c.api && same_rule(old->cfg.port, c.port) &&
                same_rule(old->cfg.feedback, c.feedback)) {
                keep = std::move(old);
                break;
            }
        }
        if (!keep) {
            keep = std::make_unique<Port>();
            keep->client_in = "earshot-" + c.id + "-" + _p->pid;
            keep->client_out = keep->client_in + "-fb";
            keep->efd = _p->efd;
        }
        keep->cfg = c;
        next.push_back(std::move(keep));
    }
    _p->ports.clear(); // controllers that are gone: their clients close here
    _p->ports = std::move(next);
    sync_guard();
}

void MidiHub::sync_guard() {
    Impl& s = *_p;
    if (!s.guard.is_open()) {
        s.guard_slots.clear();
        return;
    }
    s.guard_slots.resize(JackMidiGuard::max_slots);
    for (std::size_t c = 0; c < JackMidiGuard::max_slots; ++c) {
        const bool want = c < s.ports.size() && s.ports[c]->jack();
        const std::string id = want ? s.ports[c]->cfg.id : std::string();
        if (s.guard_slots[c] == id && (id.empty() || s.guard.has(c))) continue;
        s.guard.remove(c);
        s.guard_slots[c].clear();
        if (id.empty()) continue;
        std::string err;
        if (s.guard.add(c, id, err)) {
            s.guard_slots[c] = id;
            // RtMidi 5.0.0 is the version whose JACK input was read and tested: the messages it
            // drops after a cut SysEx can be resent. Other versions only get the F7.
            s.guard.guard(c)->set_resend(std::string(RtMidi::getVersion()) == "5.0.0");
        } else {
            log::warn_limited("midi-guard", "controller '%s': %s (its SysEx guard is off)", id.c_str(),
                              err.c_str());
        }
        // Its wiring follows in check_jack() (the RtMidi input is reopened: both start afresh).
        if (c < s.ports.size() && s.ports[c]->in) {
            s.ports[c]->close_input();
        }
    }
}

// The JACK wiring of controller c: our input connected to its source (else the controller is
// reopened), the guard's ports beside it, and the feedback output to its destination.
void MidiHub::check_jack(std::size_t c, const std::vector<std::string>& sources) {
    Impl& s = *_p;
    Port& p = *s.ports[c];
    if (!s.guard.is_open()) return;
    if (p.in) {
        const std::string in = p.in_port();
        if (!s.guard.port_exists(in)) {
            if (!p.logged_unchecked)
                log::warn("controller '%s': cannot find its own port '%s' to check its connection",
                          p.cfg.id.c_str(), in.c_str());
            p.logged_unchecked = true;
        } else if (!s.guard.connected(p.in_name, in)) {
            // The source was replugged faster than the 1 s poll (JACK drops a connection when a
            // port goes away) or someone disconnected it: reopen, so RtMidi starts afresh too.
            log::notice("controller '%s': MIDI input '%s' is no longer connected; reopening it",
                        p.cfg.id.c_str(), p.in_name.c_str());
            p.close_input();
            open_input(p, sources);
        }
    }
    if (p.in && s.guard.has(c)) {
        const std::string in = p.in_port(), watch = s.guard.watch_port(c), eox = s.guard.eox_port(c);
        const bool ok_watch = s.guard.connected(p.in_name, watch), ok_eox = s.guard.connected(eox, in);
        if (!ok_watch || !ok_eox) {
            if (!ok_watch) s.guard.guard(c)->request_reset(); // it missed what RtMidi saw
            if (!s.guard.connect(p.in_name, watch) || !s.guard.connect(eox, in))
                log::warn_limited("midi-guard", "controller '%s': cannot connect its SysEx guard",
                                  p.cfg.id.c_str());
        }
    }
    if (p.out) {
        const std::string out = p.out_port();
        if (s.guard.port_exists(out) && s.guard.port_exists(p.out_name) &&
            !s.guard.connected(out, p.out_name)) {
            if (s.guard.connect(out, p.out_name)) {
                ++p.feedback_reconnects;
                p.replugged = true; // the device came back: every LED again
                log::notice("controller '%s': feedback to '%s' reconnected", p.cfg.id.c_str(),
                            p.out_name.c_str());
            }
        }
    }
}

std::size_t MidiHub::size() const noexcept {
    return _p->ports.size();
}

bool MidiHub::pop(std::size_t c, midi::MidiEvent& e) {
    return c < _p->ports.size() && _p->ports[c]->queue.pop(e);
}

bool MidiHub::input_open(std::size_t c) const noexcept {
    return c < _p->ports.size() && _p->ports[c]->in != nullptr;
}

bool MidiHub::feedback_open(std::size_t c) const noexcept {
    return c < _p->ports.size() && _p->ports[c]->out != nullptr;
}

void MidiHub::send(std::size_t c, const std::vector<midi::MidiMessage>& msgs) {
    if (c >= _p->ports.size() || !_p->ports[c]->out) return;
    Port& p = *_p->ports[c];
    p.out_err = ErrorSink{};
    for (const midi::MidiMessage& m : msgs)
        if (m.size > 0) p.out->sendMessage(m.bytes.data(), m.size);
    if (p.out_err.failed)
        log::warn_limited("midi-send", "controller '%s': feedback: %s", p.cfg.id.c_str(),
                          p.out_err.message.c_str());
}

bool MidiHub::take_replugged(std::size_t& c) {
    for (std::size_t i = 0; i < _p->ports.size(); ++i) {
        if (_p->ports[i]->replugged) {
            _p->ports[i]->replugged = false;
            c = i;
            return true;
        }
    }
    return false;
}

void MidiHub::drop_jack() {
    _p->guard.close();
    _p->guard_slots.clear();
    for (auto& p : _p->ports) {
        if (p->cfg.api != config::Controller::Api::jack) continue;
        if (p->in)
            log::notice("controller '%s': JACK is gone; its MIDI port closes until it is back",
                        p->cfg.id.c_str());
        p->close_input();
        p->close_output();
    }
    _p->scan_in[1].reset();
    _p->scan_out[1].reset();
}

void MidiHub::open_input(Port& p, const std::vector<std::string>& sources) {
    std::string want;
    for (const std::string& s : sources)
        if (config::midi_port_matches(p.cfg.port, s)) {
            want = s;
            break;
        }
    if (want.empty()) {
        if (!p.logged_waiting) {
            log::info("controller '%s': waiting for a MIDI source matching %s%s%s (%s)", p.cfg.id.c_str(),
                      p.cfg.port.is_regex ? "/" : "'", p.cfg.port.pattern.c_str(),
                      p.cfg.port.is_regex ? "/" : "'", api_name(p.cfg.api));
            p.logged_waiting = true;
        }
        return;
    }
    try {
        auto in = std::make_unique<RtMidiIn>(rtmidi_api(p.cfg.api), p.client_in, 100);
        p.in_err = ErrorSink{};
        in->setErrorCallback(&on_rtmidi_error, &p.in_err);
        // Its own list: the index of `want` may differ from the scanner's.
        const unsigned n = in->getPortCount();
        unsigned idx = n;
        for (unsigned i = 0; i < n; ++i)
            if (in->getPortName(i) == want) idx = i;
        if (idx == n) return;              // gone meanwhile: next poll
        in->ignoreTypes(true, true, true); // SysEx, clock, active sensing: never needed here
        in->setCallback(&Port::on_input, &p);
        in->openPort(idx, "in");
        if (p.in_err.failed || !in->isPortOpen()) {
            p.last_error = p.in_err.message;
            log::warn_limited("midi-open", "controller '%s': cannot open '%s': %s", p.cfg.id.c_str(),
                              want.c_str(), p.in_err.message.c_str());
            return;
        }
        p.in = std::move(in);
    } catch (const RtMidiError& e) {
        p.last_error = e.getMessage();
        log::warn_limited("midi-open", "controller '%s': cannot open '%s': %s", p.cfg.id.c_str(),
                          want.c_str(), e.getMessage().c_str());
        return;
    }
    p.in_name = want;
    if (p.jack() && _p->guard.has(index_of(p))) {
        const std::size_t c = index_of(p);
        _p->guard.guard(c)->request_reset(); // a new RtMidi input: not inside a SysEx
        if (!_p->guard.connect(want, _p->guard.watch_port(c)) ||
            !_p->guard.connect(_p->guard.eox_port(c), p.in_port()))
            log::warn_limited("midi-guard", "controller '%s': cannot connect its SysEx guard",
                              p.cfg.id.c_str());
    }
    if (p.in_was_open) ++p.reconnects;
    log::notice("controller '%s': MIDI input '%s' (%s)%s", p.cfg.id.c_str(), want.c_str(),
                api_name(p.cfg.api), p.in_was_open ? ": reconnected" : "");
    p.in_was_open = true;
    p.logged_waiting = false;
    p.replugged = true;
}

void MidiHub::open_feedback(Port& p, const std::vector<std::string>& dests) {
    std::string want;
    for (const std::string& s : dests)
        if (config::midi_port_matches(*p.cfg.feedback, s)) {
            want = s;
            break;
        }
    if (want.empty()) return;
    try {
        auto out = std::make_unique<RtMidiOut>(rtmidi_api(p.cfg.api), p.client_out);
        p.out_err = ErrorSink{};
        out->setErrorCallback(&on_rtmidi_error, &p.out_err);
        const unsigned n = out->getPortCount();
        unsigned idx = n;
        for (unsigned i = 0; i < n; ++i)
            if (out->getPortName(i) == want) idx = i;
        if (idx == n) return;
        out->openPort(idx, "out");
        if (p.out_err.failed || !out->isPortOpen()) {
            log::warn_limited("midi-open", "controller '%s': cannot open feedback '%s': %s", p.cfg.id.c_str(),
                              want.c_str(), p.out_err.message.c_str());
            return;
        }
        p.out = std::move(out);
    } catch (const RtMidiError& e) {
        log::warn_limited("midi-open", "controller '%s': cannot open feedback '%s': %s", p.cfg.id.c_str(),
                          want.c_str(), e.getMessage().c_str());
        return;
    }
    p.out_name = want;
    log::notice("controller '%s': feedback to '%s'%s", p.cfg.id.c_str(), want.c_str(),
                p.out_was_open ? " (reconnected)" : "");
    p.out_was_open = true;
    p.replugged = true;
}

std::size_t MidiHub::index_of(const Port& p) const noexcept {
    for (std::size_t c = 0; c < _p->ports.size(); ++c)
        if (_p->ports[c].get() == &p) return c;
    return _p->ports.size();
}

void MidiHub::tick(bool jack_up) {
    Impl& s = *_p;
    // The guard's F7 reached a callback: RtMidi was not waiting for a SysEx after all, so our
    // replay of its rule does not match this RtMidi; resending could double a message. Stop it.
    for (std::size_t c = 0; c < s.ports.size(); ++c) {
        Port& p = *s.ports[c];
        const uint64_t n = p.lone_eox.load(std::memory_order_relaxed);
        if (n == p.lone_eox_seen) continue;
        p.lone_eox_seen = n;
        if (s.guard.has(c) && s.guard.guard(c)->resend()) {
            s.guard.guard(c)->set_resend(false);
            log::warn(
                "controller '%s': a lone F7 reached earshotd (RtMidi %s was not inside a SysEx): the SysEx "
                "guard no longer resends dropped messages for it",
                p.cfg.id.c_str(), RtMidi::getVersion().c_str());
        }
    }
    const auto now = std::chrono::steady_clock::now();
    const bool due = now - s.last_poll >= std::chrono::seconds(1);
    if (due || (jack_up && s.guard.is_open() && s.guard.take_graph_changed())) {
        s.last_poll = now;
        poll(jack_up);
    }
}

void MidiHub::poll(bool jack_up) {
    Impl& s = *_p;
    for (const auto api : {config::Controller::Api::alsa, config::Controller::Api::jack}) {
        const std::size_t a = api_index(api);
        bool used = false;
        for (const auto& p : s.ports) used = used || p->cfg.api == api;
        if (!used) {
            s.scan_in[a].reset();
            s.scan_out[a].reset();
            if (api == config::Controller::Api::jack) s.guard.close();
            continue;
        }
        if (api == config::Controller::Api::jack && !jack_up) continue;
        if (!s.scanners(a, api)) continue;
        if (api == config::Controller::Api::jack && !s.guard.is_open()) {
            std::string err;
            if (s.guard.open(s.guard_name(), err)) {
                s.logged_guard = false;
                sync_guard();
            } else if (!s.logged_guard) {
                s.logged_guard = true;
                log::warn(
                    "MIDI: cannot open the JACK client '%s' (%s): no SysEx guard, hot-plug by name only",
                    s.guard_name().c_str(), err.c_str());
            }
        }
        std::vector<std::string> sources, dests;
        try {
            sources = s.list(*s.scan_in[a]);
            dests = s.list(*s.scan_out[a]);
        } catch (const RtMidiError& e) {
            log::warn_limited("midi-scan", "MIDI (%s): cannot list ports: %s", api_name(api),
                              e.getMessage().c_str());
            s.scan_in[a].reset();
            s.scan_out[a].reset();
            continue;
        }
        for (std::size_t c = 0; c < s.ports.size(); ++c) {
            Port& p = *s.ports[c];
            if (p.cfg.api != api) continue;
            if (p.in && std::find(sources.begin(), sources.end(), p.in_name) == sources.end()) {
                log::notice("controller '%s': MIDI source '%s' is gone; it is reopened when it returns",
                            p.cfg.id.c_str(), p.in_name.c_str());
                p.close_input();
            }
            if (p.out && std::find(dests.begin(), dests.end(), p.out_name) == dests.end()) {
                log::notice("controller '%s': feedback port '%s' is gone", p.cfg.id.c_str(),
                            p.out_name.c_str());
                p.close_output();
            }
            if (!p.in) open_input(p, sources);
            if (!p.out && p.cfg.feedback) open_feedback(p, dests);
            if (p.jack()) check_jack(c, sources);
        }
    }
}

boost::json::object MidiHub::status(std::size_t c) const {
    boost::json::object o;
    if (c >= _p->ports.size()) return o;
    const Port& p = *_p->ports[c];
    const midi::DecoderStats d = p.decoder.shared_stats();
    o["id"] = p.cfg.id;
    o["api"] = api_name(p.cfg.api);
    o["state"] = p.in ? "open" : "waiting";
    if (p.jack() && p.in && _p->guard.is_open())
        o["connected"] = _p->guard.connected(p.in_name, p.in_port());
    else
        o["connected"] = p.in ? boost::json::value(nullptr) : boost::json::value(false);
    o["port"] = p.in ? boost::json::value(p.in_name) : boost::json::value(nullptr);
    o["feedback_port"] = p.out ? boost::json::value(p.out_name) : boost::json::value(nullptr);
    o["client"] = p.client_in;
    o["bytes"] = d.bytes;
    o["events"] = d.events;
    o["queue_drops"] = p.queue.dropped();
    o["decoder_errors"] = d.dropped();
    o["sysex"] = d.sysex;
    o["truncated"] = d.truncated;
    o["stray_bytes"] = d.stray_data;
    o["reconnects"] = p.reconnects;
    o["feedback_reconnects"] = p.feedback_reconnects;
    o["wakeups"] = p.wakeups.load(std::memory_order_relaxed);
    o["lone_eox"] = p.lone_eox.load(std::memory_order_relaxed);
    if (c < _p->guard_slots.size() && !_p->guard_slots[c].empty()) {
        const midi::SysexGuard* g = _p->guard.guard(c);
        const midi::SysexGuardStats gs = g->stats();
        boost::json::object go;
        go["cuts"] = gs.cuts;
        go["resets"] = gs.resets;
        go["resent"] = gs.resent;
        go["lost"] = gs.lost;
        go["resend"] = g->resend();
        o["sysex_guard"] = std::move(go);
    } else {
        o["sysex_guard"] = nullptr;
    }
    return o;
}

} // namespace earshot::daemon
