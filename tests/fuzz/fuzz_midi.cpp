// libFuzzer target for the MIDI core (tests/fuzz/run_fuzz.sh midi SECONDS): decoder, mapper and
// feedback on arbitrary bytes, with a fixed set of mappings.
//
// Beyond "no crash, no hang, no sanitizer report", each run checks the contracts and aborts
// (= a finding) on a breach:
//   - decoder: every byte is accounted for (DecoderStats::accounted() + pending == bytes); the
//     same bytes give the same events and counters whether fed whole, in chunks or through
//     decode_message(); every event is well formed (channel < 16, number < 128, value range,
//     no Note On with velocity 0);
//   - mapper: actions stay inside the Directory, a bound controller's actions are its own
//     musician's (SPEC §3.5), every gain set is off or within [-90, +12] dB and within the
//     mapping's [min_db, max_db], counters agree with what was returned;
//   - feedback: every message is a well-formed 3-byte channel message;
//   - per-event decoding (feed_message, as the daemon does): nothing carries over between events;
//   - the SysEx guard: the same bytes cut into JACK events and cycles, through the guard and a
//     model of RtMidi 5.0.0's JACK input: every channel message reaches the callback exactly once.
#include "earshot/midi/decoder.hpp"
#include "earshot/midi/feedback.hpp"
#include "earshot/midi/mapping.hpp"
#include "earshot/midi/sysex_guard.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using namespace earshot::midi;

void require(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_midi: contract broken: %s\n", what);
    std::abort();
}

const Directory& directory() {
    static const Directory d{{"drums", "bass", "vox"},
                             {"click", "kick", "snare", "bass_di", "vocal", "talk"},
                             {"intro", "verse", "chorus"}};
    return d;
}

ControlSource src(SourceType t, uint8_t n, int ch = any_channel) {
    ControlSource s;
    s.type = t;
    s.number = n;
    s.lsb = static_cast<uint8_t>(n + 32);
    s.channel = static_cast<int8_t>(ch);
    return s;
}

Mapping mapping(ControlSource s, ControlKind k, ActionType a, const char* musician = "",
                const char* input = "") {
    Mapping m;
    m.source = s;
    m.kind = k;
    m.action.type = a;
    m.action.musician = musician;
    m.action.input = input;
    return m;
}

// An engineer's desk (unbound, generic feedback with motor faders) ...
ControllerConfig desk() {
    ControllerConfig c;
    c.id = "desk";
    Mapping fader = mapping(src(SourceType::cc, 7), ControlKind::absolute, ActionType::master, "bass");
    fader.takeover = true;
    Mapping fine =
        mapping(src(SourceType::cc14, 0, 0), ControlKind::absolute, ActionType::send_gain, "drums", "kick");
    fine.curve = Curve::audio_taper;
    fine.max_db = 12;
    Mapping bend =
        mapping(src(SourceType::pitch_bend, 0, 1), ControlKind::absolute, ActionType::master, "vox");
    bend.curve = Curve::linear_gain;
    bend.min_db = -90;
    Mapping e1 = mapping(src(SourceType::cc, 16), ControlKind::relative_twos_complement,
                         ActionType::send_gain, "vox", "vocal");
    Mapping e2 = mapping(src(SourceType::cc, 17), ControlKind::relative_signed_bit, ActionType::send_gain,
                         "vox", "click");
    e2.step_db = 3;
    Mapping e3 =
        mapping(src(SourceType::cc, 18), ControlKind::relative_binary_offset, ActionType::master, "drums");
    Mapping more = mapping(src(SourceType::note, 40), ControlKind::momentary, ActionType::more_me, "drums");
    more.action.inputs = {"kick", "snare"};
    Mapping scene = mapping(src(SourceType::program, 1), ControlKind::toggle, ActionType::scene);
    scene.action.scene = "verse";
    c.mappings = {
        fader,
        fine,
        bend,
        e1,
        e2,
        e3,
        more,
        scene,
        mapping(src(SourceType::note, 36), ControlKind::toggle, ActionType::send_mute, "bass", "bass_di"),
        mapping(src(SourceType::cc, 64), ControlKind::absolute, ActionType::send_mute, "vox", "talk"),
        mapping(src(SourceType::note, 41), ControlKind::momentary, ActionType::talkback, "", "talk"),
        mapping(src(SourceType::cc, 65), ControlKind::toggle, ActionType::dim_all),
        mapping(src(SourceType::note, 42), ControlKind::momentary, ActionType::panic),
        mapping(src(SourceType::note, 43), ControlKind::momentary, ActionType::learn)};
    return c;
}

// ... and a drummer's APC mini, bound to drums.
ControllerConfig pad() {
    ControllerConfig c;
    c.id = "pad";
    c.profile = Profile::apc_mini;
    c.musician = "drums";
    Mapping scene = mapping(src(SourceType::note, 82), ControlKind::momentary, ActionType::scene);
    scene.action.scene = "chorus";
    Mapping more = mapping(src(SourceType::note, 1), ControlKind::toggle, ActionType::more_me);
    more.action.inputs = {"kick"};
    c.mappings = {mapping(src(SourceType::cc, 48), ControlKind::absolute, ActionType::send_gain, "", "click"),
                  mapping(src(SourceType::cc, 56), ControlKind::absolute, ActionType::master),
                  mapping(src(SourceType::note, 0), ControlKind::toggle, ActionType::send_mute, "", "click"),
                  more,
                  scene,
                  mapping(src(SourceType::note, 2), ControlKind::momentary, ActionType::talkback),
                  mapping(src(SourceType::note, 3), ControlKind::toggle, ActionType::dim_all),
                  mapping(src(SourceType::note, 4), ControlKind::momentary, ActionType::panic),
                  mapping(src(SourceType::note, 7), ControlKind::momentary, ActionType::learn)};
    c.dose_leds = {DoseLed{"drums", src(SourceType::note, 56)}};
    return c;
}

void check_event(const MidiEvent& e) {
    require(e.kind != EventKind::none, "event kind");
    require(e.channel < 16 && e.number < 128, "event channel/number");
    require(e.value <= (e.kind == EventKind::pitch_bend ? max_14bit : max_7bit), "event value");
    require(!(e.kind == EventKind::note_on && e.value == 0), "note on with velocity 0");
}

void check_action(const Action& a, const Mapper& m) {
    const Directory& d = directory();
    require(a.mapping < m.mappings().size(), "action mapping index");
    const ResolvedMapping& r = m.mappings()[a.mapping];
    require(a.type == r.action.type, "action type");
    require(in_scope(a, m.bound_musician()), "scope (SPEC 3.5)");
    require(a.musician == all_musicians || a.musician < d.musicians.size(), "musician index");
    require(a.input == no_input || a.input < d.inputs.size(), "input index");
    require(a.scene == no_scene || a.scene < d.scenes.size(), "scene index");
    require(a.n_inputs <= max_more_me_inputs, "more_me inputs");
    if (a.type == ActionType::send_gain || a.type == ActionType::master) {
        require(!std::isnan(a.db), "gain is NaN");
        require(std::isinf(a.db) ? a.db < 0 : (a.db >= r.min_db - 1e-9 && a.db <= r.max_db + 1e-9),
                "gain outside the mapping's range");
        require(std::isinf(a.db) || (a.db >= gain_min_db && a.db <= gain_max_db), "gain outside [-90, 12]");
    }
}

void check_messages(const std::vector<MidiMessage>& v) {
    for (const MidiMessage& m : v) {
        require(m.size == 3, "feedback size");
        require(m.bytes[0] >= 0x80 && m.bytes[0] < 0xF0, "feedback status");
        require(m.bytes[1] < 0x80 && m.bytes[2] < 0x80, "feedback data");
    }
}

struct Controller {
    Mapper mapper;
    Feedback feedback;
};

Controller make(const ControllerConfig& c) {
    std::vector<BuildError> errs;
    auto m = Mapper::build(c, directory(), errs);
    require(m.has_value(), "fixed mapping set builds");
    auto f = Feedback::build(c, *m, directory(), errs);
    require(f.has_value(), "fixed feedback builds");
    return Controller{std::move(*m), std::move(*f)};
}

void run_mapper(Controller& c, MixSnapshot& view, const std::vector<MidiEvent>& events, uint8_t knobs) {
    uint64_t returned = 0;
    uint64_t t = 0;
    std::size_t k = 0;
    for (const MidiEvent& in : events) {
        MidiEvent e = in;
        t += 100 + (e.value & 0x3F) * 250u; // a plausible, data-driven clock
        e.time_us = t;
        if ((knobs & 1) && (k % 97) == 0) c.mapper.begin_learn();
        for (const Action& a : c.mapper.map(e, view)) {
            check_action(a, c.mapper);
            view.apply(a);
            ++returned;
        }
        if (k % 8 == 0) {
            for (const Action& a : c.mapper.tick(t, view)) {
                check_action(a, c.mapper);
                view.apply(a);
                ++returned;
            }
            (void)c.mapper.take_learned();
            check_messages(c.feedback.update(view, c.mapper.learning()));
        }
        if ((knobs & 2) && k % 61 == 0) {
            c.mapper.reset();
            check_messages(c.feedback.resync(view));
        }
        ++k;
    }
    const MapperStats& s = c.mapper.stats();
    require(s.events == events.size(), "mapper event count");
    require(s.actions == returned, "mapper action count");
    require(s.scope_rejected == 0, "build let an out-of-scope mapping through");
}

// RtMidi 5.0.0's MidiInJack process callback with SysEx ignored: what reaches the user callback.
struct RtMidiModel {
    bool cont = false;
    std::vector<std::vector<uint8_t>> delivered;
    void feed(const uint8_t* d, std::size_t n) {
        switch (d[0]) {
        case 0xF0:
            cont = d[n - 1] != 0xF7;
            return;
        case 0xF1:
        case 0xF8:
        case 0xFE:
            return;
        default:
            if (cont) {
                cont = d[n - 1] != 0xF7;
                return;
            }
        }
        delivered.emplace_back(d, d + n);
    }
};

// The bytes as JACK events (chunk lengths and frame steps from the data itself), 8 per cycle
// of 64 frames, through the guard; RtMidi's input gets source + guard output merged by frame.
void run_guard(const uint8_t* bytes, std::size_t n, uint8_t knobs) {
    struct Ev {
        uint32_t t;
        const uint8_t* d;
        std::size_t n;
        bool ours;
    };
    SysexGuard g;
    RtMidiModel rt;
    std::vector<std::vector<uint8_t>> expected; // events starting with a channel status byte
    std::vector<std::vector<uint8_t>> out_store;
    std::size_t i = 0;
    const std::size_t step = 1 + ((knobs >> 3) & 3);
    while (i < n) {
        std::vector<Ev> src;
        uint32_t t = 0;
        while (i < n && src.size() < 8) {
            const std::size_t len = std::min<std::size_t>(1 + bytes[i] % 5, n - i);
            t += static_cast<uint32_t>(bytes[i] % step);
            if (t >= 64) break;
            src.push_back({t, bytes + i, len, false});
            if (bytes[i] >= 0x80 && bytes[i] < 0xF0 && len <= SysexGuard::max_event_bytes)
                expected.emplace_back(bytes + i, bytes + i + len);
            i += len;
        }
        out_store.clear();
        std::vector<Ev> out;
        g.cycle(
            64, static_cast<uint32_t>(src.size()),
            [&](uint32_t k, uint32_t& tt, const uint8_t*& d, std::size_t& len) {
                tt = src[k].t;
                d = src[k].d;
                len = src[k].n;
                return true;
            },
            [&](uint32_t tt, const uint8_t* d, std::size_t len) {
                require(tt < 64, "guard wrote past the cycle");
                require(out.empty() || tt >= out.back().t, "guard wrote out of time order");
                out_store.emplace_back(d, d + len);
                out.push_back({tt, nullptr, len, true});
                return true;
            });
        for (std::size_t k = 0; k < out.size(); ++k) out[k].d = out_store[k].data();
        std::vector<Ev> merged = src;
        merged.insert(merged.end(), out.begin(), out.end());
        std::stable_sort(merged.begin(), merged.end(), [](const Ev& a, const Ev& b) { return a.t < b.t; });
        for (std::size_t k = 1; k < merged.size(); ++k)
            require(merged[k].t != merged[k - 1].t || merged[k].ours == merged[k - 1].ours,
                    "guard wrote on a frame a source event uses");
        for (const Ev& e : merged) rt.feed(e.d, e.n);
        if (src.empty() && out.empty()) break;
    }
    for (int k = 0; k < 4; ++k) // anything carried over
        g.cycle(
            64, 0, [](uint32_t, uint32_t&, const uint8_t*&, std::size_t&) { return false; },
            [&](uint32_t, const uint8_t* d, std::size_t len) {
                rt.feed(d, len);
                return true;
            });
    std::vector<std::vector<uint8_t>> got;
    for (const auto& e : rt.delivered)
        if (e[0] >= 0x80 && e[0] < 0xF0) got.push_back(e);
    std::sort(expected.begin(), expected.end());
    std::sort(got.begin(), got.end());
    require(got == expected, "a channel message was lost or doubled through RtMidi and the guard");
    require(g.stats().lost == 0, "guard lost a message");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t knobs = data[0]; // bit 0: learn, bit 1: replug; bits 2-7: chunk size
    const uint8_t* bytes = data + 1;
    const std::size_t n = size - 1;

    // Decoder: whole, in chunks, and per buffer.
    Decoder whole(1);
    std::vector<MidiEvent> a;
    whole.feed(bytes, n, 0, [&](const MidiEvent& e) { a.push_back(e); });
    require(whole.stats().accounted() + whole.pending_bytes() == whole.stats().bytes, "byte accounting");
    require(whole.stats().bytes == n, "byte count");
    require(whole.stats().events == a.size(), "event count");

    Decoder chunked(1);
    std::vector<MidiEvent> b;
    const std::size_t chunk = 1 + (knobs >> 2);
    for (std::size_t i = 0; i < n; i += chunk)
        chunked.feed(bytes + i, std::min(chunk, n - i), 0, [&](const MidiEvent& e) { b.push_back(e); });
    require(a == b, "chunking changed the events");
    require(whole.stats() == chunked.stats(), "chunking changed the counters");
    require(chunked.shared_stats() == chunked.stats(), "published counters");

    whole.finish();
    require(whole.stats().accounted() == whole.stats().bytes, "byte accounting after finish");
    require(whole.pending_bytes() == 0 && !whole.in_sysex(), "finish leaves nothing open");
    const DecodedMessage m = decode_message(bytes, n, 0, 1);
    require(m.stats.events == a.size() && m.count + m.stats.overflow == a.size(), "decode_message events");
    require(m.stats.accounted() == m.stats.bytes, "decode_message accounting");
    for (std::size_t i = 0; i < m.count; ++i) require(m.events[i] == a[i], "decode_message differs");
    for (const MidiEvent& e : a) check_event(e);

    // Per event (the daemon's callback): whole messages, nothing carried over.
    Decoder per_event(1);
    for (std::size_t i = 0; i < n; i += chunk) {
        const std::size_t len = std::min(chunk, n - i);
        std::vector<MidiEvent> one;
        per_event.feed_message(bytes + i, len, 0, [&](const MidiEvent& e) { one.push_back(e); });
        require(per_event.pending_bytes() == 0 && !per_event.in_sysex(), "an event left state behind");
        require(per_event.stats().accounted() == per_event.stats().bytes, "per-event accounting");
        const DecodedMessage dm = decode_message(bytes + i, len, 0, 1);
        require(dm.count + dm.stats.overflow == one.size(), "feed_message and decode_message differ");
        for (std::size_t k = 0; k < dm.count; ++k) require(dm.events[k] == one[k], "per-event events differ");
        for (const MidiEvent& e : one) check_event(e);
    }
    run_guard(bytes, n, knobs);

    // Mapper and feedback on what came out.
    static const ControllerConfig desk_cfg = desk();
    static const ControllerConfig pad_cfg = pad();
    Controller d = make(desk_cfg);
    Controller p = make(pad_cfg);
    MixSnapshot view(3, 6);
    for (std::size_t i = 0; i < 3; ++i) view.dose[i] = static_cast<double>(n % 200);
    check_messages(d.feedback.resync(view));
    check_messages(p.feedback.resync(view));
    run_mapper(d, view, a, knobs);

    MixSnapshot before = view;
    run_mapper(p, view, a, knobs);
    // The bound pad never touched anyone but the drummer.
    for (std::size_t mu = 1; mu < 3; ++mu) {
        require(view.master[mu] == before.master[mu], "pad changed another master");
        require(view.more[mu] == before.more[mu] && view.talk[mu] == before.talk[mu],
                "pad changed another switch");
        require(view.dim[mu] == before.dim[mu] && view.scenes[mu] == before.scenes[mu] &&
                    view.panic[mu] == before.panic[mu],
                "pad changed another state");
        for (std::size_t i = 0; i < 6; ++i) {
            require(view.send_db[mu * 6 + i] == before.send_db[mu * 6 + i], "pad changed another send");
            require(view.mute[mu * 6 + i] == before.mute[mu * 6 + i], "pad changed another mute");
        }
    }
    require(view.talk_all == before.talk_all && view.dim_all == before.dim_all &&
                view.scene_all == before.scene_all && view.panic_all == before.panic_all,
            "pad changed a global state");
    return 0;
}
