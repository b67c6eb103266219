// The synthetic band (band.hpp): four parts on a shared 120 bpm sixteenth-note grid.
//
// Every voice is a small synthesiser driven by a step sequencer: on_step(k) is called at the first
// sample of sixteenth k (k counts from the start, a 4-bar loop is 64 steps) and sample() makes one
// sample. Randomness comes from SplitMix64 streams seeded from (seed, channel), so a channel's
// output depends only on the seed, its index, the rate and the sample position.
#include "earshot/render/band.hpp"

#include "earshot/dsp/units.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace earshot::render {

namespace {

constexpr double pi = 3.14159265358979323846;
constexpr double bpm = 120.0;
constexpr double step_s = 60.0 / bpm / 4.0; // a sixteenth, seconds
constexpr int loop_steps = 64;              // 4 bars of 16 sixteenths

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and the same everywhere.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() noexcept {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; } // [0, 1)
    double bipolar() noexcept { return 2.0 * uniform() - 1.0; }                         // [-1, 1)
    int below(int n) noexcept { return static_cast<int>(uniform() * n); }
};

double midi_hz(double note) noexcept {
    return 440.0 * std::pow(2.0, (note - 69.0) / 12.0);
}

// PolyBLEP correction of a naive saw at phase t in [0, 1) with increment dt.
double poly_blep(double t, double dt) noexcept {
    if (t < dt) {
        const double x = t / dt;
        return x + x - x * x - 1.0;
    }
    if (t > 1.0 - dt) {
        const double x = (t - 1.0) / dt;
        return x * x + x + x + 1.0;
    }
    return 0.0;
}

// Band-limited saw, -1..1.
struct Saw {
    double t = 0;
    double next(double dt) noexcept {
        const double y = 2.0 * t - 1.0 - poly_blep(t, dt);
        t += dt;
        if (t >= 1.0) t -= 1.0;
        return y;
    }
};

// Exponential decay envelope: value *= k each sample.
struct Decay {
    double v = 0, k = 0;
    void start(double level, double tau_s, double fs) noexcept {
        v = level;
        k = std::exp(-1.0 / (tau_s * fs));
    }
    double next() noexcept {
        const double y = v;
        v *= k;
        if (v < 1e-6) v = 0;
        return y;
    }
    bool active() const noexcept { return v > 0; }
};

// One-pole low-pass; high-pass = x - lowpass(x).
struct OnePole {
    double a = 0, y = 0;
    void set(double fc, double fs) noexcept { a = 1.0 - std::exp(-2.0 * pi * std::min(fc, 0.45 * fs) / fs); }
    double lp(double x) noexcept { return y += a * (x - y); }
    double hp(double x) noexcept { return x - lp(x); }
};

// Zero-delay-feedback state-variable filter (low-pass and band-pass outputs).
struct Svf {
    double ic1 = 0, ic2 = 0, a1 = 1, a2 = 0, a3 = 0;
    void set(double fc, double q, double fs) noexcept {
        const double g = std::tan(pi * std::min(fc, 0.45 * fs) / fs);
        const double k = 1.0 / q;
        a1 = 1.0 / (1.0 + g * (g + k));
        a2 = g * a1;
        a3 = g * a2;
    }
    double lp(double x) noexcept {
        const double v3 = x - ic2;
        const double v1 = a1 * ic1 + a2 * v3;
        const double v2 = ic2 + a2 * ic1 + a3 * v3;
        ic1 = 2.0 * v1 - ic1;
        ic2 = 2.0 * v2 - ic2;
        return v2;
    }
};

// RBJ band-pass (0 dB peak), transposed direct form II.
struct BandPass {
    double b0 = 0, a1 = 0, a2 = 0, z1 = 0, z2 = 0;
    void set(double fc, double bw, double fs) noexcept {
        const double w = 2.0 * pi * std::min(fc, 0.45 * fs) / fs;
        const double alpha = std::sin(w) * bw / (2.0 * fc);
        const double a0 = 1.0 + alpha;
        b0 = alpha / a0;
        a1 = -2.0 * std::cos(w) / a0;
        a2 = (1.0 - alpha) / a0;
    }
    double process(double x) noexcept {
        const double y = b0 * x + z1;
        z1 = -a1 * y + z2;
        z2 = -b0 * x - a2 * y;
        return y;
    }
};

struct VoiceParams {
    double fs = 48000;
    int channel = 0;
    int variant = 0;      // channel / 4: 0 for the first player of each part
    uint64_t seed = 0;    // stream seed for this channel
    double gain = 1;      // linear output level
    double offset_s = 0;  // late by this much (timing)
    double swing = 0;     // off-beat sixteenths late by this fraction of a step
    double transpose = 0; // semitones (bass, vocal)
    double pitch_mul = 1; // click pitch / drum tuning factor
};

} // namespace

class BandGenerator::Voice {
public:
    explicit Voice(const VoiceParams& p) : _p(p), _rng(p.seed), _step_len(step_s * p.fs) {
        _next = event_sample(0);
    }
    virtual ~Voice() = default;
    Voice(const Voice&) = delete;
    Voice& operator=(const Voice&) = delete;

    void render(float* out, std::size_t n) noexcept {
        const double g = _p.gain;
        for (std::size_t i = 0; i < n; ++i) {
            while (_n >= _next) {
                on_step(_step);
                ++_step;
                _next = event_sample(_step);
            }
            out[i] = static_cast<float>(g * sample());
            ++_n;
        }
    }

protected:
    virtual void on_step(uint64_t step) noexcept = 0;
    virtual double sample() noexcept = 0;
    double fs() const noexcept { return _p.fs; }
    double step_len() const noexcept { return _step_len; } // samples per sixteenth
    const VoiceParams& params() const noexcept { return _p; }
    Rng& rng() noexcept { return _rng; }

private:
    uint64_t event_sample(uint64_t k) const noexcept {
        double t = _p.offset_s * _p.fs + static_cast<double>(k) * _step_len;
        if (k % 4 == 2) t += _p.swing * _step_len;
        return static_cast<uint64_t>(std::ceil(t));
    }

    VoiceParams _p;
    Rng _rng;
    double _step_len;
    uint64_t _n = 0;    // samples produced
    uint64_t _step = 0; // next sixteenth to trigger
    uint64_t _next = 0; // its first sample
};

namespace {

using Voice = BandGenerator::Voice;

// 0: click — a short sine blip per beat, higher on the downbeat.
class Click final : public Voice {
public:
    explicit Click(const VoiceParams& p) : Voice(p) {
        _subdivide = p.variant > 0 && (Rng(p.seed ^ 0xC11Cull).next() & 1u); // some players click eighths
    }

private:
    void on_step(uint64_t step) noexcept override {
        const uint64_t s = step % 16;
        const bool beat = s % 4 == 0;
        if (!beat && !(_subdivide && s % 2 == 0)) return;
        const double f = (s == 0 ? 1500.0 : 1000.0) * params().pitch_mul;
        _w = 2.0 * pi * f / fs();
        _ph = 0;
        _env.start(s == 0 ? 1.0 : beat ? 0.7 : 0.4, 0.006, fs());
        _attack = 0;
        _attack_len = std::max(1.0, 0.0005 * fs());
    }
    double sample() noexcept override {
        if (!_env.active()) return 0.0;
        const double a = _attack < _attack_len ? _attack++ / _attack_len : 1.0;
        const double y = a * _env.next() * std::sin(_ph);
        _ph += _w;
        return y;
    }

    bool _subdivide = false;
    double _w = 0, _ph = 0, _attack = 0, _attack_len = 1;
    Decay _env;
};

// 1: drums — kick, snare, hats, a fill and a crash.
class Drums final : public Voice {
public:
    explicit Drums(const VoiceParams& p) : Voice(p) {
        _hp1.set(6500.0, p.fs);
        _hp2.set(6500.0, p.fs);
        _sn_hp.set(900.0, p.fs);
        _sn_lp.set(7000.0, p.fs);
        _crash_hp.set(4000.0, p.fs);
        Rng r(p.seed ^ 0xD3D5ull);
        _sixteenth_hats = p.variant > 0 && (r.next() & 1u);
        _extra_kick = 2 * (r.below(3) + 5); // an extra kick on one of the off-beat eighths 10, 12, 14
    }

private:
    void on_step(uint64_t step) noexcept override {
        const int s = static_cast<int>(step % 16);
        const int bar = static_cast<int>((step / 16) % 4);
        const bool fill = bar == 3 && s >= 12;
        if (s == 0 || s == 8 || (bar % 2 == 1 && s == _extra_kick) || (s == 10 && bar == 1))
            kick(s == 0 ? 1.0 : 0.85);
        if (s == 4 || s == 12) snare(bar == 3 && s == 12 ? 1.25 : 0.9);
        if (fill && s != 12) snare(0.8 + 0.15 * (s - 12)); // a 16th fill into the next loop
        if (s % 2 == 0 || _sixteenth_hats) hat(s % 4 == 0 ? 0.45 : 0.3, s == 14 && !fill ? 0.09 : 0.014);
        if (step % loop_steps == 0 && step > 0) _crash.start(1.0, 0.9, fs());
    }
    void kick(double vel) noexcept {
        _kick_sweep.start(1.0, 0.025, fs());
        _kick_env.start(vel, 0.22, fs());
        _kick_click.start(0.5 * vel, 0.002, fs());
    }
    void snare(double vel) noexcept {
        _sn_env.start(vel, 0.07, fs());
        _sn_body.start(0.6 * vel, 0.05, fs());
        _sn_ph = 0;
    }
    void hat(double vel, double tau) noexcept { _hat_env.start(vel, tau, fs()); }

    double sample() noexcept override {
        double y = 0;
        const double noise = rng().bipolar();
        if (_kick_env.active()) {
            const double f_end = 52.0 * params().pitch_mul;
            const double f = f_end + (160.0 - f_end) * _kick_sweep.next();
            _kick_ph += 2.0 * pi * f / fs();
            y += 1.2 * _kick_env.next() * std::sin(_kick_ph) + _kick_click.next() * noise;
        }
        if (_sn_env.active()) {
            const double n = _sn_lp.lp(_sn_hp.hp(noise));
            _sn_ph += 2.0 * pi * 185.0 * params().pitch_mul / fs();
            y += 1.1 * _sn_env.next() * n + _sn_body.next() * std::sin(_sn_ph);
        }
        const double h = _hp2.hp(_hp1.hp(noise));
        if (_hat_env.active()) y += _hat_env.next() * h;
        if (_crash.active()) y += 0.35 * _crash.next() * _crash_hp.hp(noise);
        return y;
    }

    OnePole _hp1, _hp2, _sn_hp, _sn_lp, _crash_hp;
    Decay _kick_env, _kick_sweep, _kick_click, _sn_env, _sn_body, _hat_env, _crash;
    double _kick_ph = 0, _sn_ph = 0;
    bool _sixteenth_hats = false;
    int _extra_kick = 10;
};

// 2: bass — a 4-bar line (Em C G D), saw through an enveloped low-pass.
class Bass final : public Voice {
public:
    explicit Bass(const VoiceParams& p) : Voice(p) {
        Rng r(p.seed ^ 0xBA55ull);
        _alt = r.below(3);
        _c_attack = 1.0 - std::exp(-1.0 / (0.004 * p.fs));
        _c_release = 1.0 - std::exp(-1.0 / (0.015 * p.fs));
    }

private:
    struct Note {
        int step;     // within the bar
        int len;      // sixteenths
        int interval; // semitones above the bar's root
    };
    static constexpr std::array<int, 4> roots{28, 36, 31, 38}; // E1 C2 G1 D2
    static constexpr std::array<Note, 8> line{
        {{0, 3, 0}, {3, 1, 0}, {4, 2, 0}, {6, 2, 12}, {8, 3, 0}, {11, 1, 7}, {12, 2, 0}, {14, 2, 10}}};

    void on_step(uint64_t step) noexcept override {
        const int s = static_cast<int>(step % 16);
        const int bar = static_cast<int>((step / 16) % 4);
        for (const Note& n : line) {
            if (n.step != s) continue;
            int iv = n.interval;
            if (s == 14 && (bar + _alt) % 3 == 0) iv = 7; // the last note of some bars walks to the fifth
            const double note = roots[static_cast<std::size_t>(bar)] + iv + params().transpose;
            _dt = midi_hz(note) / fs();
            _gate_off = static_cast<uint64_t>(0.85 * n.len * step_len());
            _t = 0;
            _amp_target = s % 4 == 0 ? 1.0 : 0.8;
            _filter_env.start(1.0, 0.09, fs());
            _sustain.start(0.3, 0.15, fs());
        }
    }
    double sample() noexcept override {
        const bool gate = _t < _gate_off;
        ++_t;
        // Attack ~4 ms, release ~15 ms (one-pole towards the gate level); decays to 70 % while held.
        const double target = gate ? _amp_target * (0.7 + _sustain.next()) : 0.0;
        _amp += (target - _amp) * (gate ? _c_attack : _c_release);
        if (_amp < 1e-6 && !gate) {
            _amp = 0;
            return _lp.lp(0.0);
        }
        if (_k++ % 16 == 0) _lp.set(250.0 + 1400.0 * _filter_env.v, 0.9, fs());
        _filter_env.next();
        const double x = 0.8 * _saw.next(_dt) + 0.5 * std::sin(2.0 * pi * _saw.t); // saw + fundamental
        return _amp * _lp.lp(x);
    }

    Saw _saw;
    Svf _lp;
    Decay _filter_env, _sustain;
    double _dt = 0, _amp = 0, _amp_target = 1, _c_attack = 1, _c_release = 1;
    uint64_t _t = 0, _gate_off = 0, _k = 0;
    int _alt = 0;
};

// 3: vocal — glottal-like pulse train through three formant band-passes, with vibrato and glides.
class Vocal final : public Voice {
public:
    explicit Vocal(const VoiceParams& p) : Voice(p) {
        Rng r(p.seed ^ 0x70C4ull);
        _vib_rate = 5.2 + 1.0 * r.uniform();
        for (auto& v : _vel) v = 0.8 + 0.2 * r.uniform();
        _breath.set(3000.0, p.fs);
        _c_attack = 1.0 - std::exp(-1.0 / (0.03 * p.fs));
        _c_release = 1.0 - std::exp(-1.0 / (0.06 * p.fs));
        _c_glide = 1.0 - std::exp(-32.0 / (0.04 * p.fs));
        for (int i = 0; i < 3; ++i) _f[i] = vowels[0][i];
        update_formants();
    }

private:
    struct Note {
        int step;  // within the 4-bar loop
        int len;   // sixteenths
        int midi;  // pitch
        int vowel; // index into vowels
    };
    // Formant centre frequencies (Hz): a, e, i, o, u.
    static constexpr double vowels[5][3] = {
        {730, 1090, 2440}, {530, 1840, 2480}, {270, 2290, 3010}, {570, 840, 2410}, {300, 870, 2240}};
    static constexpr double bandwidths[3] = {90, 110, 160};
    static constexpr double formant_gain[3] = {1.0, 0.6, 0.35};
    static constexpr std::array<Note, 15> melody{{{0, 4, 67, 0},
                                                  {4, 2, 69, 1},
                                                  {6, 2, 71, 0},
                                                  {8, 6, 71, 3},
                                                  {14, 2, 69, 2}, // bar 1, Em
                                                  {16, 4, 67, 0},
                                                  {20, 4, 64, 1},
                                                  {24, 7, 67, 3}, // bar 2, C
                                                  {34, 2, 71, 2},
                                                  {36, 4, 74, 0},
                                                  {40, 4, 71, 1},
                                                  {44, 4, 67, 0}, // bar 3, G
                                                  {48, 6, 66, 3},
                                                  {54, 2, 64, 4},
                                                  {56, 4, 66, 0}}}; // bar 4, D

    void on_step(uint64_t step) noexcept override {
        const int s = static_cast<int>(step % loop_steps);
        for (std::size_t i = 0; i < melody.size(); ++i) {
            const Note& n = melody[i];
            if (n.step != s) continue;
            const double target = n.midi + params().transpose;
            const bool legato = _gate && _t < _gate_off + static_cast<uint64_t>(0.5 * step_len());
            _note_target = target;
            if (!legato) _note = target; // a fresh attack starts on pitch; legato notes glide
            _vowel = n.vowel;
            _gate = true;
            _t = 0;
            _gate_off = static_cast<uint64_t>((n.len - 0.3) * step_len());
            _level = _vel[i % _vel.size()];
            if (!legato) _vib_t = 0;
        }
    }
    void update_formants() noexcept {
        for (int i = 0; i < 3; ++i) _bp[i].set(_f[i], bandwidths[i], fs());
    }
    double sample() noexcept override {
        const bool gate = _gate && _t < _gate_off;
        ++_t;
        _amp += ((gate ? _level : 0.0) - _amp) * (gate ? _c_attack : _c_release);
        if (!gate && _amp < 1e-5) {
            _amp = 0;
            _gate = false;
            return 0.0;
        }
        if (_k++ % 32 == 0) {
            // Every 32 samples: glide the pitch and the formants, redesign the band-passes.
            const double c = _c_glide;
            _note += (_note_target - _note) * c;
            for (int i = 0; i < 3; ++i) _f[i] += (vowels[_vowel][i] - _f[i]) * c;
            update_formants();
        }
        const double tv = _vib_t++ / fs();
        const double depth = 0.35 * std::min(1.0, std::max(0.0, (tv - 0.2) / 0.3)); // semitones
        const double f0 = midi_hz(_note + depth * std::sin(2.0 * pi * _vib_rate * tv));
        const double src = _saw.next(f0 / fs()) + 0.08 * _breath.hp(rng().bipolar());
        double y = 0;
        for (int i = 0; i < 3; ++i) y += formant_gain[i] * _bp[i].process(src);
        return _amp * y;
    }

    Saw _saw;
    OnePole _breath;
    std::array<BandPass, 3> _bp;
    double _f[3] = {0, 0, 0};
    std::array<double, 7> _vel{};
    double _note = 64, _note_target = 64, _amp = 0, _level = 1, _vib_rate = 5.5, _vib_t = 0;
    double _c_attack = 1, _c_release = 1, _c_glide = 1;
    int _vowel = 0;
    bool _gate = false;
    uint64_t _t = 0, _gate_off = 0, _k = 0;
};

// Output levels per part, tuned so regular peaks sit around -12..-6 dBFS (tests/render check it).
constexpr double part_gain[4] = {0.50, 0.25, 0.45, 0.85};

std::unique_ptr<Voice> make_voice(int channel, double fs, uint32_t seed) {
    VoiceParams p;
    p.fs = fs;
    p.channel = channel;
    p.variant = channel / 4;
    p.seed =
        (static_cast<uint64_t>(seed) << 32) ^ (0x5EEDull + static_cast<uint64_t>(channel) * 0x100000001B3ull);
    p.gain = part_gain[channel % 4];
    if (p.variant > 0) {
        Rng r(p.seed ^ 0xA11Dull);
        p.gain *= dsp::db_to_gain(-4.0 + 6.0 * r.uniform()); // -4 .. +2 dB
        p.offset_s = 0.012 * r.uniform();
        p.swing = 0.12 * r.uniform();
        static constexpr double bass_shift[4] = {12, 0, 7, 19};
        static constexpr double vocal_shift[4] = {-12, 7, -5, 12};
        static constexpr double click_mul[4] = {0.8, 1.25, 1.5, 0.66};
        const int k = r.below(4);
        p.transpose = channel % 4 == 2 ? bass_shift[k] : channel % 4 == 3 ? vocal_shift[k] : 0.0;
        p.pitch_mul = channel % 4 == 0 ? click_mul[k] : 0.85 + 0.3 * r.uniform();
    }
    switch (band_part(channel)) {
    case BandPart::click:
        return std::make_unique<Click>(p);
    case BandPart::drums:
        return std::make_unique<Drums>(p);
    case BandPart::bass:
        return std::make_unique<Bass>(p);
    case BandPart::vocal:
        return std::make_unique<Vocal>(p);
    }
    return std::make_unique<Click>(p);
}

} // namespace

const char* band_part_name(int channel) noexcept {
    switch (band_part(channel)) {
    case BandPart::click:
        return "click";
    case BandPart::drums:
        return "drums";
    case BandPart::bass:
        return "bass";
    case BandPart::vocal:
        return "vocal";
    }
    return "click";
}

BandGenerator::BandGenerator(int channels, double fs_hz, uint32_t seed) {
    if (channels < 1) throw std::invalid_argument("band generator: channels must be >= 1");
    if (!(fs_hz >= 8000.0 && fs_hz <= 384000.0))
        throw std::invalid_argument("band generator: sample rate must be in [8000, 384000] Hz");
    for (int c = 0; c < channels; ++c) _voices.push_back(make_voice(c, fs_hz, seed));
}

BandGenerator::~BandGenerator() = default;

int BandGenerator::channels() const noexcept {
    return static_cast<int>(_voices.size());
}

void BandGenerator::generate(float* const* out, std::size_t n) noexcept {
    for (std::size_t c = 0; c < _voices.size(); ++c) _voices[c]->render(out[c], n);
}

std::vector<std::vector<float>> generate_band(int channels, double fs, std::size_t frames, uint32_t seed) {
    BandGenerator g(channels, fs, seed);
    std::vector<std::vector<float>> out(static_cast<std::size_t>(channels), std::vector<float>(frames));
    std::vector<float*> ptr;
    for (auto& c : out) ptr.push_back(c.data());
    g.generate(ptr.data(), frames);
    return out;
}

} // namespace earshot::render
