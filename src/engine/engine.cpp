#include "earshot/engine/engine.hpp"

#include "earshot/dsp/mix.hpp"
#include "earshot/dsp/units.hpp"
#include "mix_graph.hpp"

#include <boost/lockfree/spsc_queue.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define EARSHOT_HAVE_MXCSR 1
#endif

namespace earshot::engine {

namespace {

constexpr std::size_t command_capacity = 1024;
constexpr std::size_t retire_capacity = 64;
constexpr std::size_t dose_capacity = 8192;
constexpr std::size_t meter_capacity = 8192;
constexpr int max_commands_per_cycle = 256;
constexpr double pi = 3.14159265358979323846;

// Constant-power pan (SPEC §2): theta = (pan + 1) * pi / 4; L = cos, R = sin. Mono: gain only.
void pan_gains(double gain_db, double pan, bool mute, int channels, float& l, float& r) {
    const double g = mute ? 0.0 : dsp::db_to_gain(gain_db);
    if (channels == 1) {
        l = static_cast<float>(g);
        r = 0.0f;
        return;
    }
    const double p = std::clamp(pan, -1.0, 1.0);
    const double th = (p + 1.0) * pi / 4.0;
    l = static_cast<float>(g * std::cos(th));
    r = static_cast<float>(g * std::sin(th));
    if (p == -1.0) r = 0.0f; // hard left is exact silence right (cos(pi/2) is not exactly 0)
    if (p == 1.0) l = 0.0f;
}

// Enables flush-to-zero / denormals-are-zero for the scope (RT-safe: a register write).
struct DenormalGuard {
#ifdef EARSHOT_HAVE_MXCSR
    unsigned int saved;
    DenormalGuard() noexcept : saved(_mm_getcsr()) {
        _mm_setcsr(saved | 0x8040u);
    }
    ~DenormalGuard() {
        _mm_setcsr(saved);
    }
#endif
};

} // namespace

struct Engine::Queues {
    boost::lockfree::spsc_queue<EngineCommand, boost::lockfree::capacity<command_capacity>>
        commands; // control -> RT
    boost::lockfree::spsc_queue<MixGraph*, boost::lockfree::capacity<retire_capacity>>
        retire;                                                                            // RT -> control
    boost::lockfree::spsc_queue<DoseFrame, boost::lockfree::capacity<dose_capacity>> dose; // RT -> control
    boost::lockfree::spsc_queue<MeterFrame, boost::lockfree::capacity<meter_capacity>>
        meters; // RT -> control
};

// Data only accessed from the RT thread.
struct Engine::Rt {
    MixGraph* live = nullptr;
    uint64_t clock = 0;                             // samples processed
    uint64_t dose_start = 0;                        // clock at the start of the open dose interval
    uint32_t dose_pos = 0;                          // samples into the open dose interval
    uint32_t meter_pos = 0;                         // samples into the open meter window
    std::vector<const float*> in_ptr;               // per input slot, for the current chunk
    std::vector<float> zeros;                       // max_block zeros (absent inputs)
    MixGraph* pending_retire[retire_capacity] = {}; // retire queue overflow (never expected)
    std::size_t pending_count = 0;
};

// Data only accessed from the control thread.
struct Engine::Control {
    MixGraph* latest = nullptr; // newest graph queued (read-only topology)
    uint32_t generation = 0;
    std::map<std::string, int> in_slots;
    std::map<std::string, int> out_slots; // "<id>\x1f<channels>\x1f<ch>"
    std::map<std::string, uint32_t> keys;
    std::vector<std::string> key_ids;
    config::Config last_cfg;
    bool have_cfg = false;
};

Engine::Engine(double fs_hz, uint32_t max_block)
    : _fs(fs_hz), _max_block(std::max<uint32_t>(1, max_block)), _q(std::make_unique<Queues>()),
      _rt(std::make_unique<Rt>()), _ctl(std::make_unique<Control>()) {
    if (!(fs_hz >= 8000.0 && fs_hz <= 384000.0)) throw std::invalid_argument("sample rate out of range");
    _dose_len = static_cast<uint32_t>(std::lround(fs_hz));
    _meter_len = static_cast<uint32_t>(std::lround(fs_hz / 10.0));
    _rt->in_ptr.assign(max_input_slots, nullptr);
    _rt->zeros.assign(_max_block, 0.0f);
    (void)dsp::mix_kernel_name(); // picks the mixing kernel here, off the RT thread
}

Engine::~Engine() {
    // The RT thread must have stopped calling process(). Reclaim every graph we still own.
    EngineCommand c;
    while (_q->commands.pop(c))
        if (c.kind == EngineCommand::Kind::swap_graph) delete c.swap.graph;
    MixGraph* g = nullptr;
    while (_q->retire.pop(g)) delete g;
    for (std::size_t i = 0; i < _rt->pending_count; ++i) delete _rt->pending_retire[i];
    delete _rt->live;
}

bool Engine::push_command(const EngineCommand& c) {
    if (_q->commands.push(c)) return true;
    _counters.commands_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
}

int Engine::input_slot(const std::string& id) const {
    auto it = _ctl->in_slots.find(id);
    return it == _ctl->in_slots.end() ? -1 : it->second;
}

int Engine::output_slot(const std::string& musician_id, int channel) const {
    const MixGraph* g = _ctl->latest;
    if (!g) return -1;
    for (const Strip& s : g->strips)
        if (!s.retiring && s.id == musician_id && channel >= 0 && channel < s.channels)
            return s.out_slot[channel];
    return -1;
}

std::string Engine::musician_id(uint32_t key) const {
    return key < _ctl->key_ids.size() ? _ctl->key_ids[key] : std::string();
}

uint32_t Engine::measurement_key(const std::string& input_id) const {
    return musician_key("@" + input_id);
}

uint32_t Engine::musician_key(const std::string& id) const {
    auto it = _ctl->keys.find(id);
    return it == _ctl->keys.end() ? UINT32_MAX : it->second;
}

bool Engine::apply_config(const config::Config& cfg, StartMode mode) {
    Control& ctl = *_ctl;
    const MixGraph* old = ctl.latest;
    const bool compaction = (&cfg == &ctl.last_cfg);
    const bool first = old == nullptr;
    auto g = std::make_unique<MixGraph>();
    g->generation = ctl.generation + 1;

    auto in_slot_for = [&](const std::string& id) {
        auto it = ctl.in_slots.find(id);
        if (it != ctl.in_slots.end()) return it->second;
        if (_next_in_slot >= max_input_slots) throw std::runtime_error("too many distinct inputs");
        ctl.in_slots.emplace(id, _next_in_slot);
        return _next_in_slot++;
    };
    auto out_slot_for = [&](const std::string& id, int channels, int ch) {
        const std::string k = id + '\x1f' + std::to_string(channels) + '\x1f' + std::to_string(ch);
        auto it = ctl.out_slots.find(k);
        if (it != ctl.out_slots.end()) return it->second;
        if (_next_out_slot >= max_output_slots) throw std::runtime_error("too many distinct outputs");
        ctl.out_slots.emplace(k, _next_out_slot);
        return _next_out_slot++;
    };
    auto key_for = [&](const std::string& id) {
        auto it = ctl.keys.find(id);
        if (it != ctl.keys.end()) return it->second;
        const uint32_t k = static_cast<uint32_t>(ctl.key_ids.size());
        ctl.keys.emplace(id, k);
        ctl.key_ids.push_back(id);
        return k;
    };
    const uint32_t ramp = static_cast<uint32_t>(std::max(1L, std::lround(cfg.mixer.ramp_ms * 1e-3 * _fs)));
    const uint32_t startup =
        static_cast<uint32_t>(std::max(1L, std::lround(cfg.mixer.startup_ramp_ms * 1e-3 * _fs)));

    auto prepare_strip = [&](Strip& s) {
        s.lim.prepare(_fs, s.channels, s.lookahead_ms, s.release_ms);
        s.lim.set_ceiling(s.ceiling);
        if (s.has_cap) {
            s.cap.prepare(_fs, s.channels, s.eardrum);
            s.cap.set_cap_db(s.cap_db);
            s.cap.set_enabled(!s.cap_releasing);
        }
        s.guard.set_ramp_samples(1);
        s.guard.reset(1.0f);
        for (int c = 0; c < 2; ++c) {
            s.meter[c].prepare(_fs, s.eardrum);
            s.buf[c].assign(_max_block, 0.0f);
        }
        s.gains.assign(_max_block, 0.0f);
    };
    auto size_groups = [](Strip& s) {
        s.grp_x.assign(s.sends.size(), nullptr);
        s.grp_l.assign(s.sends.size(), 0.0f);
        s.grp_r.assign(s.sends.size(), 0.0f);
        s.ramp_idx.assign(s.sends.size(), 0);
        s.grp_dirty = true;
    };

    std::vector<bool> old_used(old ? old->strips.size() : 0, false);
    try {
        for (const config::Musician& m : cfg.musicians) {
            Strip s;
            s.id = m.id;
            s.key = key_for(m.id);
            s.channels = m.channels();
            for (int c = 0; c < s.channels; ++c) s.out_slot[c] = out_slot_for(m.id, s.channels, c);
            const Strip* os = nullptr;
            if (old) {
                for (std::size_t j = 0; j < old->strips.size(); ++j) {
                    const Strip& o = old->strips[j];
                    if (o.id == m.id && o.channels == s.channels) {
                        os = &o;
                        s.inherit = static_cast<int>(j);
                        old_used[j] = true;
                        break;
                    }
                }
            }
            // Look-ahead changes take effect at restart: a live strip keeps its delay line.
            s.lookahead_ms = os ? os->lookahead_ms : m.protection.lookahead_ms;
            s.release_ms = m.protection.release_ms;
            s.ceiling = static_cast<float>(dsp::db_to_gain(config::ceiling_dbfs(m)));
            s.master_target = static_cast<float>(dsp::db_to_gain(m.mix.master_db));
            s.ramp_samples = ramp;
            s.eardrum = m.calibration.reference == config::Reference::eardrum;
            s.has_cap = m.protection.max_laeq_1s_dba.has_value();
            if (s.has_cap) {
                s.cap_db = *m.protection.max_laeq_1s_dba - config::calibration_offset_db(m.calibration);
            } else if (os && os->has_cap) {
                // The cap was removed (or is still releasing from an earlier removal): keep the
                // unit, disabled, so its gain returns to 1 at the release rate instead of jumping.
                s.has_cap = true;
                s.cap_releasing = true;
                s.cap_db = os->cap_db;
            }
            prepare_strip(s);
            if (os) {
                s.master.set_ramp_samples(ramp); // state copied on the RT side, then retargeted
            } else if (first && mode == StartMode::immediate) {
                s.master.set_ramp_samples(ramp);
                s.master.reset(s.master_target);
            } else {
                s.master.set_ramp_samples(startup);
                s.master.reset(0.0f);
                s.master.set_target(s.master_target);
            }
            for (const config::Send& sc : m.mix.sends) {
                SendState st;
                st.input_id = sc.input;
                st.in_slot = in_slot_for(sc.input);
                pan_gains(sc.gain_db, sc.pan, sc.mute, s.channels, st.target_l, st.target_r);
                st.gl.set_ramp_samples(ramp);
                st.gr.set_ramp_samples(ramp);
                if (os) {
                    for (std::size_t k = 0; k < os->sends.size(); ++k)
                        if (os->sends[k].input_id == sc.input) st.inherit = static_cast<int>(k);
                }
                if (st.inherit < 0) {
                    // New send on a running strip ramps in; on a new strip the master fade covers it.
                    st.gl.reset(os ? 0.0f : st.target_l);
                    st.gr.reset(os ? 0.0f : st.target_r);
                    st.gl.set_target(st.target_l);
                    st.gr.set_target(st.target_r);
                }
                s.sends.push_back(std::move(st));
            }
            if (os) {
                // Sends that disappeared fade out (unless a compaction drops finished ones).
                for (std::size_t k = 0; k < os->sends.size(); ++k) {
                    const SendState& o = os->sends[k];
                    bool kept = false;
                    for (const SendState& n : s.sends) kept |= n.input_id == o.input_id;
                    if (kept || (compaction && o.retiring)) continue;
                    SendState st;
                    st.input_id = o.input_id;
                    st.in_slot = o.in_slot;
                    st.target_l = st.target_r = 0.0f;
                    st.inherit = static_cast<int>(k);
                    st.retiring = true;
                    st.gl.set_ramp_samples(ramp);
                    st.gr.set_ramp_samples(ramp);
                    s.sends.push_back(std::move(st));
                    g->has_retiring = true;
                }
            }
            size_groups(s);
            g->strips.push_back(std::move(s));
        }
        if (old) {
            // Musicians that disappeared fade out on their own outputs.
            for (std::size_t j = 0; j < old->strips.size(); ++j) {
                const Strip& o = old->strips[j];
                if (old_used[j] || (compaction && o.retiring)) continue;
                Strip s;
                s.id = o.id;
                s.key = o.key;
                s.channels = o.channels;
                s.out_slot[0] = o.out_slot[0];
                s.out_slot[1] = o.out_slot[1];
                s.lookahead_ms = o.lookahead_ms;
                s.release_ms = o.release_ms;
                s.ceiling = o.ceiling;
                s.master_target = 0.0f;
                s.ramp_samples = ramp;
                s.inherit = static_cast<int>(j);
                s.retiring = true;
                s.eardrum = o.eardrum;
                s.has_cap = o.has_cap;
                s.cap_releasing = o.cap_releasing;
                s.cap_db = o.cap_db;
                prepare_strip(s);
                s.master.set_ramp_samples(ramp);
                for (std::size_t k = 0; k < o.sends.size(); ++k) {
                    SendState st;
                    st.input_id = o.sends[k].input_id;
                    st.in_slot = o.sends[k].in_slot;
                    st.target_l = o.sends[k].target_l;
                    st.target_r = o.sends[k].target_r;
                    st.inherit = static_cast<int>(k);
                    st.gl.set_ramp_samples(ramp);
                    st.gr.set_ramp_samples(ramp);
                    s.sends.push_back(std::move(st));
                }
                size_groups(s);
                g->strips.push_back(std::move(s));
                g->has_retiring = true;
            }
        }
    } catch (const std::exception&) {
        return false;
    }

    // Measurement inputs (stage-level mics) are metered for the musicians' ambient leak.
    try {
        for (const config::Input& in : cfg.inputs) {
            if (!in.measurement) continue;
            AmbientMeter am;
            am.input_id = in.id;
            am.in_slot = in_slot_for(in.id);
            am.key = key_for("@" + in.id);
            am.meter.prepare(_fs, false);
            if (old)
                for (std::size_t j = 0; j < old->ambient.size(); ++j)
                    if (old->ambient[j].input_id == in.id) am.inherit = static_cast<int>(j);
            g->ambient.push_back(std::move(am));
        }
    } catch (const std::exception&) {
        return false;
    }

    for (const Strip& s : g->strips) {
        g->latency = std::max(g->latency, s.lim.latency_frames());
        for (const SendState& st : s.sends)
            if (std::find(g->used_inputs.begin(), g->used_inputs.end(), st.in_slot) == g->used_inputs.end())
                g->used_inputs.push_back(st.in_slot);
    }
    for (const AmbientMeter& am : g->ambient)
        if (std::find(g->used_inputs.begin(), g->used_inputs.end(), am.in_slot) == g->used_inputs.end())
            g->used_inputs.push_back(am.in_slot);
    std::sort(g->used_inputs.begin(), g->used_inputs.end());
    g->in_scratch.assign(g->used_inputs.size() * _max_block, 0.0f);
    g->max_ramp = std::max(ramp, startup);

    EngineCommand c{};
    c.kind = EngineCommand::Kind::swap_graph;
    c.swap.graph = g.get();
    if (!push_command(c)) return false;
    ctl.generation = g->generation;
    ctl.latest = g.release();
    _latency.store(ctl.latest->latency, std::memory_order_relaxed);
    if (!compaction) {
        ctl.last_cfg = cfg;
        ctl.have_cfg = true;
    }
    return true;
}

bool Engine::set_send(const std::string& musician, const std::string& input, double gain_db, double pan,
                      bool mute) {
    const MixGraph* g = _ctl->latest;
    if (!g) return false;
    for (std::size_t i = 0; i < g->strips.size(); ++i) {
        const Strip& s = g->strips[i];
        if (s.retiring || s.id != musician) continue;
        for (std::size_t k = 0; k < s.sends.size(); ++k) {
            if (s.sends[k].retiring || s.sends[k].input_id != input) continue;
            EngineCommand c{};
            c.kind = EngineCommand::Kind::set_send;
            c.send.generation = g->generation;
            c.send.strip = static_cast<uint16_t>(i);
            c.send.send = static_cast<uint16_t>(k);
            pan_gains(gain_db, pan, mute, s.channels, c.send.gain_l, c.send.gain_r);
            if (!push_command(c)) return false;
            remember_send(musician, input, gain_db, pan, mute);
            return true;
        }
    }
    return false;
}

int Engine::strip_index(const std::string& musician) const {
    const MixGraph* g = _ctl->latest;
    if (!g) return -1;
    for (std::size_t i = 0; i < g->strips.size(); ++i)
        if (!g->strips[i].retiring && g->strips[i].id == musician) return static_cast<int>(i);
    return -1;
}

int Engine::latency_frames(const std::string& musician_id) const {
    const int i = strip_index(musician_id);
    return i < 0 ? -1 : _ctl->latest->strips[static_cast<std::size_t>(i)].lim.latency_frames();
}

bool Engine::set_master(const std::string& musician, double gain_db, uint32_t ramp_samples) {
    const int i = strip_index(musician);
    if (i < 0) return false;
    EngineCommand c{};
    c.kind = EngineCommand::Kind::set_master;
    c.master.generation = _ctl->latest->generation;
    c.master.strip = static_cast<uint16_t>(i);
    c.master.gain = static_cast<float>(dsp::db_to_gain(gain_db));
    c.master.ramp = ramp_samples;
    if (!push_command(c)) return false;
    if (_ctl->have_cfg)
        for (config::Musician& m : _ctl->last_cfg.musicians)
            if (m.id == musician) m.mix.master_db = gain_db;
    return true;
}

bool Engine::set_guard(const std::string& musician, double gain_db, uint32_t ramp_samples) {
    const int i = strip_index(musician);
    if (i < 0) return false;
    EngineCommand c{};
    c.kind = EngineCommand::Kind::set_guard;
    c.guard.generation = _ctl->latest->generation;
    c.guard.strip = static_cast<uint16_t>(i);
    c.guard.gain = static_cast<float>(dsp::db_to_gain(std::min(0.0, gain_db)));
    c.guard.ramp = ramp_samples;
    return push_command(c);
}

void Engine::remember_send(const std::string& musician, const std::string& input, double gain_db, double pan,
                           bool mute) {
    if (!_ctl->have_cfg) return;
    for (config::Musician& m : _ctl->last_cfg.musicians) {
        if (m.id != musician) continue;
        for (config::Send& sd : m.mix.sends) {
            if (sd.input != input) continue;
            sd.gain_db = gain_db;
            sd.pan = pan;
            sd.mute = mute;
            return;
        }
        config::Send sd;
        sd.input = input;
        sd.gain_db = gain_db;
        sd.pan = pan;
        sd.mute = mute;
        m.mix.sends.push_back(std::move(sd));
    }
}

void Engine::poll() {
    MixGraph* g = nullptr;
    while (_q->retire.pop(g)) delete g;
    // Compaction: once the newest graph is live and its fades are over, rebuild without the
    // entries that faded out.
    Control& ctl = *_ctl;
    if (ctl.latest && ctl.latest->has_retiring && ctl.have_cfg &&
        _counters.live_generation.load(std::memory_order_acquire) == ctl.latest->generation) {
        const uint64_t since =
            _counters.samples.load(std::memory_order_acquire) - _swap_clock.load(std::memory_order_acquire);
        if (since > static_cast<uint64_t>(ctl.latest->max_ramp) + _max_block) apply_config(ctl.last_cfg);
    }
}

bool Engine::pop_dose(DoseFrame& f) noexcept {
    return _q->dose.pop(f);
}
bool Engine::pop_meter(MeterFrame& f) noexcept {
    return _q->meters.pop(f);
}

void Engine::swap_rt(MixGraph* ng) noexcept {
    MixGraph* og = _rt->live;
    // Caps that inherit no state close their 10 ms segments on the engine clock, so any two of
    // them run in lockstep (process_two) and on the dose meter's 1 s grid.
    for (Strip& s : ng->strips) {
        const bool inherits = og && s.inherit >= 0 &&
                              static_cast<std::size_t>(s.inherit) < og->strips.size() &&
                              og->strips[static_cast<std::size_t>(s.inherit)].has_cap;
        if (s.has_cap && !inherits) s.cap.align_to(_rt->clock);
    }
    if (og) {
        for (Strip& s : ng->strips) {
            if (s.inherit < 0 || static_cast<std::size_t>(s.inherit) >= og->strips.size()) continue;
            Strip& o = og->strips[static_cast<std::size_t>(s.inherit)];
            const uint32_t r = s.master.ramp_samples();
            s.master = o.master;
            s.master.set_ramp_samples(r);
            s.master.set_target(s.master_target);
            s.lim.copy_state_from(o.lim);
            if (s.has_cap && o.has_cap) s.cap.copy_state_from(o.cap);
            s.guard = o.guard; // the guard's attenuation survives reloads
            s.dose_cap_min = o.dose_cap_min;
            if (s.eardrum == o.eardrum) { // a changed reference starts fresh meters
                s.meter[0] = o.meter[0];
                s.meter[1] = o.meter[1];
            }
            for (int c = 0; c < 2; ++c) s.dose_peak[c] = o.dose_peak[c];
            s.dose_lim_min = o.dose_lim_min;
            s.dose_lim_active = o.dose_lim_active;
            s.dose_clamped = o.dose_clamped;
            for (SendState& st : s.sends) {
                if (st.inherit < 0 || static_cast<std::size_t>(st.inherit) >= o.sends.size()) continue;
                const SendState& os = o.sends[static_cast<std::size_t>(st.inherit)];
                const uint32_t sr = st.gl.ramp_samples();
                st.gl = os.gl;
                st.gr = os.gr;
                st.gl.set_ramp_samples(sr);
                st.gr.set_ramp_samples(sr);
                st.gl.set_target(st.target_l);
                st.gr.set_target(st.target_r);
            }
        }
        for (AmbientMeter& am : ng->ambient)
            if (am.inherit >= 0 && static_cast<std::size_t>(am.inherit) < og->ambient.size())
                am.meter = og->ambient[static_cast<std::size_t>(am.inherit)].meter;
        if (!_q->retire.push(og)) {
            if (_rt->pending_count < retire_capacity) _rt->pending_retire[_rt->pending_count++] = og;
        }
    }
    _rt->live = ng;
    _swap_clock.store(_rt->clock, std::memory_order_release);
    _counters.live_generation.store(ng->generation, std::memory_order_release);
}

void Engine::process(uint32_t nframes, const float* const* in, int n_in, float* const* out,
                     int n_out) noexcept {
    DenormalGuard dg;
    Rt& rt = *_rt;
    // Retire-queue overflow from an earlier cycle goes out first.
    while (rt.pending_count > 0 && _q->retire.push(rt.pending_retire[rt.pending_count - 1]))
        --rt.pending_count;
    // Commands, oldest first, bounded per cycle.
    EngineCommand c;
    for (int i = 0; i < max_commands_per_cycle && _q->commands.pop(c); ++i) {
        switch (c.kind) {
        case EngineCommand::Kind::swap_graph:
            swap_rt(c.swap.graph);
            break;
        case EngineCommand::Kind::set_send: {
            MixGraph* g = rt.live;
            if (!g || g->generation != c.send.generation || c.send.strip >= g->strips.size() ||
                c.send.send >= g->strips[c.send.strip].sends.size()) {
                _counters.stale_commands.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            Strip& sp = g->strips[c.send.strip];
            SendState& st = sp.sends[c.send.send];
            st.gl.set_target(c.send.gain_l);
            st.gr.set_target(c.send.gain_r);
            sp.grp_dirty = true;
            break;
        }
        case EngineCommand::Kind::set_guard: {
            MixGraph* g = rt.live;
            if (!g || g->generation != c.guard.generation || c.guard.strip >= g->strips.size()) {
                _counters.stale_commands.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            Strip& s = g->strips[c.guard.strip];
            s.guard.set_ramp_samples(c.guard.ramp ? c.guard.ramp : 1);
            s.guard.set_target(c.guard.gain);
            break;
        }
        case EngineCommand::Kind::set_master: {
            MixGraph* g = rt.live;
            if (!g || g->generation != c.master.generation || c.master.strip >= g->strips.size()) {
                _counters.stale_commands.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            Strip& s = g->strips[c.master.strip];
            // The start-up fade may have used a longer ramp; a panic asks for a shorter one.
            s.master.set_ramp_samples(c.master.ramp ? c.master.ramp : s.ramp_samples);
            s.master.set_target(c.master.gain);
            break;
        }
        }
    }
    uint32_t done = 0;
    while (done < nframes) {
        const uint32_t n = std::min(nframes - done, _max_block);
        // Offset pointers for this chunk (at most max_input_slots / max_output_slots).
        const float* ip[max_input_slots];
        float* op[max_output_slots];
        const int ni = std::min(n_in, max_input_slots);
        const int no = std::min(n_out, max_output_slots);
        for (int i = 0; i < ni; ++i) ip[i] = in && in[i] ? in[i] + done : nullptr;
        for (int j = 0; j < no; ++j) op[j] = out && out[j] ? out[j] + done : nullptr;
        process_chunk(n, ip, ni, op, no);
        done += n;
    }
    _counters.cycles.fetch_add(1, std::memory_order_relaxed);
}

void Engine::process_chunk(uint32_t n, const float* const* in, int n_in, float* const* out,
                           int n_out) noexcept {
    Rt& rt = *_rt;
    for (int j = 0; j < n_out; ++j)
        if (out[j]) std::memset(out[j], 0, sizeof(float) * n);
    MixGraph* g = rt.live;
    if (!g) { // fail silent: nothing configured
        rt.clock += n;
        _counters.samples.store(rt.clock, std::memory_order_release);
        return;
    }

    // Inputs: absent -> zeros; NaN/Inf anywhere in the block -> a sanitised copy (SPEC §3.3).
    for (std::size_t u = 0; u < g->used_inputs.size(); ++u) {
        const int slot = g->used_inputs[u];
        const float* p = slot < n_in ? in[slot] : nullptr;
        if (!p) {
            rt.in_ptr[static_cast<std::size_t>(slot)] = rt.zeros.data();
            continue;
        }
        if (!dsp::bits_non_finite(dsp::abs_max_bits(p, n))) {
            rt.in_ptr[static_cast<std::size_t>(slot)] = p;
        } else {
            float* s = g->in_scratch.data() + u * _max_block;
            for (uint32_t i = 0; i < n; ++i) s[i] = std::isfinite(p[i]) ? p[i] : 0.0f;
            rt.in_ptr[static_cast<std::size_t>(slot)] = s;
            _counters.bad_input_blocks.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // Mix and master.
    for (Strip& s : g->strips) {
        float* b0 = s.buf[0].data();
        float* b1 = s.buf[1].data();
        std::memset(b0, 0, sizeof(float) * n);
        if (s.channels == 2) std::memset(b1, 0, sizeof(float) * n);
        // Ramping sends one by one; steady ones in one register-blocked pass. Which sends are
        // steady (and their gains) is worked out again only after a send's target changed or a
        // ramp ended (grp_dirty); the input pointers are fetched every cycle.
        if (s.grp_dirty) {
            s.grp_dirty = false;
            int k = 0, r = 0;
            for (std::size_t i = 0; i < s.sends.size(); ++i) {
                const SendState& st = s.sends[i];
                if (st.gl.ramping() || st.gr.ramping()) {
                    s.ramp_idx[static_cast<std::size_t>(r++)] = static_cast<uint32_t>(i);
                } else if (st.gl.current() != 0.0f || st.gr.current() != 0.0f) {
                    s.ramp_idx[s.sends.size() - 1 - static_cast<std::size_t>(k)] = static_cast<uint32_t>(i);
                    s.grp_l[static_cast<std::size_t>(k)] = st.gl.current();
                    s.grp_r[static_cast<std::size_t>(k)] = st.gr.current();
                    ++k;
                }
            }
            s.grp_count = k;
            s.ramp_count = r;
        }
        for (int r = 0; r < s.ramp_count; ++r) {
            SendState& st = s.sends[s.ramp_idx[static_cast<std::size_t>(r)]];
            const float* x = rt.in_ptr[static_cast<std::size_t>(st.in_slot)];
            if (!st.gl.silent()) st.gl.mix_into(b0, x, n);
            if (s.channels == 2 && !st.gr.silent()) st.gr.mix_into(b1, x, n);
            if (!st.gl.ramping() && !st.gr.ramping()) s.grp_dirty = true; // it joins the steady ones
        }
        const int k = s.grp_count;
        for (int j = 0; j < k; ++j) {
            const SendState& st = s.sends[s.ramp_idx[s.sends.size() - 1 - static_cast<std::size_t>(j)]];
            s.grp_x[static_cast<std::size_t>(j)] = rt.in_ptr[static_cast<std::size_t>(st.in_slot)];
        }
        if (s.channels == 2)
            dsp::mix_sum_stereo(b0, b1, s.grp_x.data(), s.grp_l.data(), s.grp_r.data(), k, n);
        else
            dsp::mix_sum(b0, s.grp_x.data(), s.grp_l.data(), k, n);
        if (s.master.ramping()) {
            float* gn = s.gains.data();
            s.master.fill(gn, n);
            for (uint32_t i = 0; i < n; ++i) b0[i] *= gn[i];
            if (s.channels == 2)
                for (uint32_t i = 0; i < n; ++i) b1[i] *= gn[i];
        } else {
            const float m = s.master.current();
            if (m != 1.0f) {
                for (uint32_t i = 0; i < n; ++i) b0[i] *= m;
                if (s.channels == 2)
                    for (uint32_t i = 0; i < n; ++i) b1[i] *= m;
            }
        }
    }
    // Loudness caps (slow, A-weighted, no delay), two strips at a time: aligned to the engine clock
    // (swap_rt), two stereo caps run their detectors in lockstep (four ears per pass with AVX2).
    Strip* cap_held = nullptr; // a strip with a cap waiting for a partner
    auto cap_stats = [](Strip& s) {
        const float cg = s.cap.take_min_gain();
        s.dose_cap_min = std::min(s.dose_cap_min, cg);
        s.meter_cap_min = std::min(s.meter_cap_min, cg);
    };
    for (Strip& s : g->strips) {
        if (!s.has_cap) continue;
        if (s.cap_releasing && s.cap.gain() == 1.0f && s.cap.take_min_gain() == 1.0f) {
            // Released: back at exactly 1 (and so it was since the last call), nothing left to do.
            // A clean detector aligned to the clock, should a reload enable the cap again.
            if (s.cap.level_ms() != 0.0) {
                s.cap.reset();
                s.cap.align_to(rt.clock);
            }
            continue;
        }
        if (!cap_held) {
            cap_held = &s;
            continue;
        }
        float* ia[2] = {cap_held->buf[0].data(), cap_held->buf[1].data()};
        float* ib[2] = {s.buf[0].data(), s.buf[1].data()};
        dsp::LoudnessCap::process_two(cap_held->cap, ia, cap_held->channels, s.cap, ib, s.channels, n);
        cap_stats(*cap_held);
        cap_stats(s);
        cap_held = nullptr;
    }
    if (cap_held) {
        float* io[2] = {cap_held->buf[0].data(), cap_held->buf[1].data()};
        cap_held->cap.process(io, cap_held->channels, n);
        cap_stats(*cap_held);
    }
    // Guard gain, limiter, clamp; copy to the outputs.
    for (Strip& s : g->strips) {
        float* b0 = s.buf[0].data();
        float* b1 = s.buf[1].data();
        float* io[2] = {b0, b1};
        if (s.guard.ramping()) {
            float* gn = s.gains.data();
            s.guard.fill(gn, n);
            for (uint32_t i = 0; i < n; ++i) b0[i] *= gn[i];
            if (s.channels == 2)
                for (uint32_t i = 0; i < n; ++i) b1[i] *= gn[i];
        } else if (const float gg = s.guard.current(); gg != 1.0f) {
            for (uint32_t i = 0; i < n; ++i) b0[i] *= gg;
            if (s.channels == 2)
                for (uint32_t i = 0; i < n; ++i) b1[i] *= gg;
        }
        s.lim.process(io, n); // ends in the final safety clamp at the ceiling
        const auto ls = s.lim.take_stats();
        s.dose_lim_min = std::min(s.dose_lim_min, ls.min_gain);
        s.meter_lim_min = std::min(s.meter_lim_min, ls.min_gain);
        s.dose_lim_active += ls.active_samples;
        s.dose_clamped += ls.clamped_samples;
        if (ls.clamped_samples)
            _counters.clamped_samples.fetch_add(ls.clamped_samples, std::memory_order_relaxed);
        for (int c = 0; c < s.channels; ++c) {
            const float* b = s.buf[static_cast<std::size_t>(c)].data();
            const float pk = dsp::bits_to_float(dsp::abs_max_bits(b, n)); // finite: after the clamp
            s.dose_peak[c] = std::max(s.dose_peak[c], pk);
            s.meter_peak[c] = std::max(s.meter_peak[c], pk);
            const int slot = s.out_slot[c];
            if (slot >= 0 && slot < n_out && out[slot]) std::memcpy(out[slot], b, sizeof(float) * n);
        }
    }

    // Meters, split at the dose (1 s) and meter (100 ms) boundaries of the engine clock.
    uint32_t pos = 0;
    while (pos < n) {
        const uint32_t seg = std::min({n - pos, _dose_len - rt.dose_pos, _meter_len - rt.meter_pos});
        // Two stereo strips at a time (four ears per pass where the CPU has AVX2).
        Strip* held = nullptr; // a stereo strip waiting for a partner
        for (Strip& s : g->strips) {
            if (s.channels != 2) {
                s.meter[0].process(s.buf[0].data() + pos, seg);
            } else if (!held) {
                held = &s;
            } else {
                dsp::LevelMeter* m[4] = {&held->meter[0], &held->meter[1], &s.meter[0], &s.meter[1]};
                const float* x[4] = {held->buf[0].data() + pos, held->buf[1].data() + pos,
                                     s.buf[0].data() + pos, s.buf[1].data() + pos};
                dsp::LevelMeter::process_quad(m, x, seg);
                held = nullptr;
            }
        }
        if (held)
            dsp::LevelMeter::process_pair(held->meter[0], held->meter[1], held->buf[0].data() + pos,
                                          held->buf[1].data() + pos, seg);
        for (AmbientMeter& am : g->ambient)
            am.meter.process(rt.in_ptr[static_cast<std::size_t>(am.in_slot)] + pos, seg);
        pos += seg;
        rt.dose_pos += seg;
        rt.meter_pos += seg;
        if (rt.meter_pos == _meter_len) {
            rt.meter_pos = 0;
            for (Strip& s : g->strips) {
                MeterFrame m;
                m.musician_key = s.key;
                m.sample = rt.clock + pos;
                m.peak[0] = s.meter_peak[0];
                m.peak[1] = s.channels == 2 ? s.meter_peak[1] : s.meter_peak[0];
                m.limiter_gain = s.meter_lim_min;
                m.master_gain = s.master.current();
                m.cap_gain = s.meter_cap_min;
                m.guard_gain = s.guard.current();
                s.meter_peak[0] = s.meter_peak[1] = 0.0f;
                s.meter_lim_min = 1.0f;
                s.meter_cap_min = 1.0f;
                if (!_q->meters.push(m)) _counters.meters_dropped.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (rt.dose_pos == _dose_len) {
            rt.clock += pos; // temporarily advance so flush_dose() stamps the right start
            flush_dose();
            rt.clock -= pos;
        }
    }
    rt.clock += n;
    _counters.samples.store(rt.clock, std::memory_order_release);
}

void Engine::flush_dose() noexcept {
    Rt& rt = *_rt;
    MixGraph* g = rt.live;
    if (g && rt.dose_pos > 0) {
        // Measurement inputs first, so a consumer has the stage level of an interval before the
        // musicians' frames of the same interval.
        for (AmbientMeter& am : g->ambient) {
            DoseFrame f;
            f.musician_key = am.key;
            f.source = 1;
            f.generation = g->generation;
            f.start_sample = rt.dose_start;
            f.samples = rt.dose_pos;
            f.channels = 1;
            const auto iv = am.meter.take();
            f.ears[0].sum_sq_a = iv.sum_sq_a;
            f.ears[0].laf_max_ms = iv.laf_max_ms;
            f.ears[0].las_max_ms = iv.las_max_ms;
            f.ears[0].c_peak = iv.c_peak;
            if (!_q->dose.push(f)) _counters.dose_dropped.fetch_add(1, std::memory_order_relaxed);
        }
        for (Strip& s : g->strips) {
            DoseFrame f;
            f.musician_key = s.key;
            f.generation = g->generation;
            f.start_sample = rt.dose_start;
            f.samples = rt.dose_pos;
            f.channels = static_cast<uint8_t>(s.channels);
            for (int c = 0; c < s.channels; ++c) {
                const auto iv = s.meter[c].take();
                f.ears[c].sum_sq_a = iv.sum_sq_a;
                f.ears[c].laf_max_ms = iv.laf_max_ms;
                f.ears[c].las_max_ms = iv.las_max_ms;
                f.ears[c].c_peak = iv.c_peak;
                f.ears[c].sample_peak = s.dose_peak[c];
                s.dose_peak[c] = 0.0f;
            }
            f.limiter_min_gain = s.dose_lim_min;
            f.limiter_active_samples = s.dose_lim_active;
            f.clamped_samples = s.dose_clamped;
            f.cap_min_gain = s.dose_cap_min;
            f.guard_gain = s.guard.current();
            s.dose_cap_min = 1.0f;
            s.dose_lim_min = 1.0f;
            s.dose_lim_active = 0;
            s.dose_clamped = 0;
            if (!_q->dose.push(f)) _counters.dose_dropped.fetch_add(1, std::memory_order_relaxed);
        }
    }
    rt.dose_start = rt.clock;
    rt.dose_pos = 0;
}

} // namespace earshot::engine
