// LoudnessCap: A-weighted detector per 10 ms segment, 1 s / 150 ms means, onsets, the window clamp
// (docs/protection.md).
#include "earshot/dsp/loudness_cap.hpp"

#include "biquad_pair.hpp"

#include "earshot/dsp/units.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>

namespace earshot::dsp {

namespace {
// A float sample as double, non-finite -> 0 (x - x is 0 exactly for every finite x, NaN otherwise).
inline double sanitise(float x) noexcept {
    const double d = static_cast<double>(x);
    return d - d == 0.0 ? d : 0.0;
}

// One transposed direct form II section (the operation order of AcWeighting's sections).
inline double tdf2(const BiquadCoeffs& s, std::array<double, 2>& z, double x) noexcept {
    const double y = s.b0 * x + z[0];
    z[0] = (s.b1 * x + z[1]) - s.a1 * y;
    z[1] = s.b2 * x - s.a2 * y;
    return y;
}

bool finite_state(const std::array<std::array<double, 2>, 3>& z) noexcept {
    double s = 0.0;
    for (const auto& zi : z) s += zi[0] + zi[1];
    return std::isfinite(s);
}

using detail::BiquadLanes;

// v = {a[0], .., a[L-1]} (by reference: wide vectors are never passed by value).
template <int L, typename T>
[[gnu::always_inline]] inline void gather(typename detail::VecD<L>::type& v, const T* a) noexcept {
    if constexpr (L == 2)
        v = typename detail::VecD<2>::type{static_cast<double>(a[0]), static_cast<double>(a[1])};
    else
        v = typename detail::VecD<4>::type{static_cast<double>(a[0]), static_cast<double>(a[1]),
                                           static_cast<double>(a[2]), static_cast<double>(a[3])};
}
} // namespace

void LoudnessCap::prepare(double fs_hz, int channels, bool eardrum) {
    if (channels < 1 || channels > max_channels)
        throw std::invalid_argument("LoudnessCap: channels must be 1 or 2");
    AcWeighting w;
    w.prepare(fs_hz); // throws outside [8, 384] kHz
    if (w.c_section_count() != 2 || w.a_section_count() != 1)
        throw std::logic_error("LoudnessCap: expects the 2 + 1 section A-weighting design");
    _sec[0] = w.c_section(0);
    _sec[1] = w.c_section(1);
    _sec[2] = w.a_section(0);
    for (auto& df : _df) df.prepare(fs_hz);
    _fs = fs_hz;
    _channels = channels;
    _eardrum = eardrum;
    _seg_len = static_cast<uint32_t>(std::max(1L, std::lround(fs_hz * segment_s)));
    _cap_ms = 1.0;
    _enabled = false;
    set_release_db_per_s(_release_db_per_s);
    reset();
}

void LoudnessCap::set_cap_ms(double ms) noexcept {
    if (ms != ms) return;
    _cap_ms = ms > 1e-30 ? ms : 1e-30;
}

void LoudnessCap::set_cap_db(double db) noexcept {
    set_cap_ms(std::pow(10.0, db / 10.0));
}

double LoudnessCap::cap_db() const noexcept {
    return power_to_db(_cap_ms);
}

void LoudnessCap::set_release_db_per_s(double db_per_s) noexcept {
    if (db_per_s != db_per_s) db_per_s = default_release_db_per_s;
    _release_db_per_s = std::clamp(db_per_s, min_release_db_per_s, max_release_db_per_s);
    const double seg_s = _fs > 0.0 ? static_cast<double>(_seg_len) / _fs : segment_s;
    _rel_step = std::pow(10.0, _release_db_per_s * seg_s / 20.0);
    _fast_rel_step = std::pow(10.0, max_release_db_per_s * seg_s / 20.0);
    _clamp_rel_step = std::pow(10.0, clamp_release_db_per_s * seg_s / 20.0);
    _cap_fall_step = std::pow(10.0, -cap_fall_db_per_s * seg_s / 10.0);
    _jump_ratio = std::pow(10.0, jump_db / 10.0);
    _rise_ratio = std::pow(10.0, rise_db / 10.0);
    _rise_fast_ratio = std::pow(10.0, rise_fast_db / 10.0);
    _loud_jump_ratio = std::pow(10.0, loud_jump_db / 10.0);
    _since_decay_ratio = std::pow(10.0, since_decay_db / 10.0);
    _trend_ratio = std::pow(10.0, trend_margin_db / 10.0);
    _tolerance = std::pow(10.0, tolerance_db / 10.0);
    _weight_fall = seg_s / short_hold_s;
    _clamp_floor = db_to_gain(-clamp_depth_db);
    _gain_floor = db_to_gain(-max_reduction_db);
}

void LoudnessCap::reset() noexcept {
    for (auto& z : _z)
        for (auto& s : z) s = {0.0, 0.0};
    for (auto& df : _df) df.reset();
    _dither = 1e-25;
    _seg_sum = {};
    _seg_out = {};
    for (auto& r : _ring) r.fill(0.0);
    for (auto& r : _out_ring) r.fill(0.0);
    _peak_ring.fill(0.0);
    _ring_pos = 0;
    _seg_pos = 0;
    _seg_phase = 0;
    _cap_eff_ms = _cap_ms;
    _was_enabled = false;
    _crossing_age = _jump_age = _rise_age = idle_age;
    _rise_cross = false;
    _since_sum = {};
    _since_n = 0;
    _rise_count = {};
    _short_weight = {};
    _g_det = _g_slow = _g_clamp = 1.0;
    _g0 = _g1 = 1.0;
    _level_ms = 0.0;
    _min_gain = 1.0f;
}

void LoudnessCap::align_to(uint64_t clock_samples) noexcept {
    _seg_pos = static_cast<uint32_t>(clock_samples % _seg_len);
    _seg_phase = static_cast<int>((clock_samples / _seg_len) % static_cast<uint64_t>(box_segments));
}

float LoudnessCap::gain() const noexcept {
    const double f = static_cast<double>(_seg_pos) / static_cast<double>(_seg_len);
    return static_cast<float>(_g0 + (_g1 - _g0) * f);
}

float LoudnessCap::take_min_gain() noexcept {
    const float m = _min_gain;
    _min_gain = std::min(gain(), static_cast<float>(_g1)); // the ramp under way still counts
    return m;
}

void LoudnessCap::copy_state_from(const LoudnessCap& o) noexcept {
    if (o._fs == _fs && o._channels == _channels && o._eardrum == _eardrum && o._seg_len == _seg_len) {
        _df = o._df;
        _z = o._z;
        _dither = o._dither;
        _seg_sum = o._seg_sum;
        _seg_out = o._seg_out;
        _ring = o._ring;
        _out_ring = o._out_ring;
        _peak_ring = o._peak_ring;
        _ring_pos = o._ring_pos;
        _seg_pos = o._seg_pos;
        _seg_phase = o._seg_phase;
        _cap_eff_ms = o._cap_eff_ms;
        _was_enabled = o._was_enabled;
        _crossing_age = o._crossing_age;
        _jump_age = o._jump_age;
        _rise_age = o._rise_age;
        _rise_cross = o._rise_cross;
        _since_sum = o._since_sum;
        _since_n = o._since_n;
        _rise_count = o._rise_count;
        _short_weight = o._short_weight;
        _g_det = o._g_det;
        _g_slow = o._g_slow;
        _g_clamp = o._g_clamp;
        _g0 = o._g0;
        _g1 = o._g1;
        _level_ms = o._level_ms;
        _min_gain = o._min_gain;
        return;
    }
    // A different layout: carry the gain on (no jump) and the segment clock, start the detector
    // afresh.
    const double g = static_cast<double>(o.gain());
    const uint32_t pos = o._seg_pos;
    const int phase = o._seg_phase;
    reset();
    _seg_pos = pos < _seg_len ? pos : 0;
    _seg_phase = phase;
    _g_det = _g_slow = _g0 = _g1 = g;
    _min_gain = o.gain();
}

// The gain each sample of the next chunk gets, ga + gs * (i + 1) (i = 0 .. m - 1): the segment's
// linear ramp from _g0 to _g1, by position.
void LoudnessCap::ramp_of_chunk(double& ga, double& gs) const noexcept {
    gs = (_g1 - _g0) / static_cast<double>(_seg_len);
    ga = _g0 + gs * static_cast<double>(_seg_pos);
}

// Accumulates the A-weighted squares of one channel into _seg_sum[c], and the output's (the same
// squares times the gain each sample gets) into _seg_out[c].
void LoudnessCap::detect_mono(const float* x, int c, uint32_t n) noexcept {
    const std::size_t k = static_cast<std::size_t>(c);
    double ga, gs;
    ramp_of_chunk(ga, gs);
    State z = _z[k];
    DiffuseFieldCorrection& df = _df[k];
    const BiquadCoeffs s0 = _sec[0], s1 = _sec[1], s2 = _sec[2];
    const bool eardrum = _eardrum;
    double d = _dither, sum = 0.0, out = 0.0;
    if (gs == 0.0) {
        for (uint32_t i = 0; i < n; ++i) {
            double v = sanitise(x[i]) + d;
            d = -d;
            if (eardrum) v = df.process(v);
            const double a = tdf2(s2, z[2], tdf2(s1, z[1], tdf2(s0, z[0], v)));
            sum += a * a;
        }
        out = (ga * ga) * sum;
    } else {
        for (uint32_t i = 0; i < n; ++i) {
            double v = sanitise(x[i]) + d;
            d = -d;
            if (eardrum) v = df.process(v);
            const double a = tdf2(s2, z[2], tdf2(s1, z[1], tdf2(s0, z[0], v)));
            const double sq = a * a;
            sum += sq;
            const double g = ga + gs * static_cast<double>(i + 1);
            out += (g * g) * sq;
        }
    }
    if (!finite_state(z) || !df.finite() || !std::isfinite(sum + out)) [[unlikely]] {
        // Hygiene: a state that went non-finite restarts from zero; this chunk counts as silence.
        z = State{};
        df.reset();
        sum = out = 0.0;
    }
    _z[k] = z;
    _seg_sum[k] += sum;
    _seg_out[k] += out;
}

// L / 2 stereo caps in lockstep (none of them eardrum, all at the same rate): lane 2q + c is
// channel c of caps[q]. Per lane exactly detect_mono()'s arithmetic, so every lane is bit-identical
// to a run of its cap alone, whatever the other lanes do.
template <int L>
[[gnu::always_inline]] inline void LoudnessCap::detect_lanes(LoudnessCap* const* caps, const float* const* x,
                                                             uint32_t n) noexcept {
    using V = typename detail::VecD<L>::type;
    constexpr int Q = L / 2;
    BiquadLanes<L> s0, s1, s2;
    std::array<double, 2>* z[L];
    for (int k = 0; k < L; ++k) z[k] = &caps[k / 2]->_z[static_cast<std::size_t>(k % 2)][0];
    s0.load(caps[0]->_sec[0], z);
    for (int k = 0; k < L; ++k) z[k] = &caps[k / 2]->_z[static_cast<std::size_t>(k % 2)][1];
    s1.load(caps[0]->_sec[1], z);
    for (int k = 0; k < L; ++k) z[k] = &caps[k / 2]->_z[static_cast<std::size_t>(k % 2)][2];
    s2.load(caps[0]->_sec[2], z);
    double ga_q[Q], gs_q[Q];
    bool ramp = false;
    for (int q = 0; q < Q; ++q) {
        caps[q]->ramp_of_chunk(ga_q[q], gs_q[q]);
        ramp = ramp || gs_q[q] != 0.0;
    }
    double d_l[L];
    const float* p[L];
    for (int k = 0; k < L; ++k) {
        d_l[k] = caps[k / 2]->_dither;
        p[k] = x[k];
    }
    V d;
    gather<L>(d, d_l);
    const V zero{};
    V sum = zero, out = zero;
    if (!ramp) { // steady gains: the output energy is ga^2 times the input's (below)
        for (uint32_t i = 0; i < n; ++i) {
            float in[L];
            for (int k = 0; k < L; ++k) in[k] = p[k][i];
            V raw;
            gather<L>(raw, in);
            V a = (raw - raw == 0.0 ? raw : zero) + d; // non-finite -> 0, as sanitise()
            d = -d;
            s0.step(a);
            s1.step(a);
            s2.step(a);
            sum += a * a;
        }
    } else {
        double ga_l[L], gs_l[L];
        for (int k = 0; k < L; ++k) {
            ga_l[k] = ga_q[k / 2];
            gs_l[k] = gs_q[k / 2];
        }
        V ga, gs;
        gather<L>(ga, ga_l);
        gather<L>(gs, gs_l);
        for (uint32_t i = 0; i < n; ++i) {
            float in[L];
            for (int k = 0; k < L; ++k) in[k] = p[k][i];
            V raw;
            gather<L>(raw, in);
            V a = (raw - raw == 0.0 ? raw : zero) + d;
            d = -d;
            s0.step(a);
            s1.step(a);
            s2.step(a);
            const V sq = a * a;
            sum += sq;
            const V g = ga + gs * static_cast<double>(i + 1);
            out += (g * g) * sq;
        }
    }
    for (int k = 0; k < L; ++k) z[k] = &caps[k / 2]->_z[static_cast<std::size_t>(k % 2)][0];
    s0.store(z);
    for (int k = 0; k < L; ++k) z[k] = &caps[k / 2]->_z[static_cast<std::size_t>(k % 2)][1];
    s1.store(z);
    for (int k = 0; k < L; ++k) z[k] = &caps[k / 2]->_z[static_cast<std::size_t>(k % 2)][2];
    s2.store(z);
    for (int k = 0; k < L; ++k) {
        LoudnessCap& cp = *caps[k / 2];
        const std::size_t c = static_cast<std::size_t>(k % 2);
        const int q = k / 2;
        double s = sum[k];
        double o = gs_q[q] == 0.0 ? (ga_q[q] * ga_q[q]) * s : out[k];
        if (!finite_state(cp._z[c]) || !std::isfinite(s + o)) [[unlikely]] {
            cp._z[c] = State{};
            s = o = 0.0;
        }
        cp._seg_sum[c] += s;
        cp._seg_out[c] += o;
    }
}

// Both ears of this cap in lockstep, two double lanes.
void LoudnessCap::detect_pair(const float* const* x, uint32_t n) noexcept {
    LoudnessCap* self[1] = {this};
    detect_lanes<2>(self, x, n);
}

void LoudnessCap::detect_two_base(LoudnessCap& a, LoudnessCap& b, const float* const* x,
                                  uint32_t n) noexcept {
    a.detect_pair(x, n);
    b.detect_pair(x + 2, n);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Four double lanes per ymm register: two stereo caps per pass.
[[gnu::target("avx2")]] void LoudnessCap::detect_two_avx2(LoudnessCap& a, LoudnessCap& b,
                                                          const float* const* x, uint32_t n) noexcept {
    LoudnessCap* c[2] = {&a, &b};
    detect_lanes<4>(c, x, n);
}
#else
void LoudnessCap::detect_two_avx2(LoudnessCap& a, LoudnessCap& b, const float* const* x,
                                  uint32_t n) noexcept {
    detect_two_base(a, b, x, n);
}
#endif

namespace {
using TwoFn = void (*)(LoudnessCap&, LoudnessCap&, const float* const*, uint32_t) noexcept;

TwoFn pick_two() noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return &LoudnessCap::detect_two_avx2;
#endif
    return &LoudnessCap::detect_two_base;
}

const TwoFn two_best = pick_two();   // chosen at static initialisation, before any RT cycle
std::atomic<TwoFn> two_fn{two_best}; // force_baseline_two() (tests) may switch it
} // namespace

const char* LoudnessCap::two_kernel_name() noexcept {
    return two_fn.load(std::memory_order_relaxed) == &LoudnessCap::detect_two_base ? "sse2" : "avx2";
}

void LoudnessCap::force_baseline_two(bool on) noexcept {
    two_fn.store(on ? &LoudnessCap::detect_two_base : two_best, std::memory_order_relaxed);
}

void LoudnessCap::apply_gain(float* const* io, int channels, uint32_t n) noexcept {
    if (_g0 == _g1) {
        if (_g1 == 1.0) return; // idle: bit-exact pass-through
        const float g = static_cast<float>(_g1);
        for (int c = 0; c < channels; ++c) {
            float* p = io[c];
            for (uint32_t i = 0; i < n; ++i) p[i] *= g;
        }
        return;
    }
    // Linear ramp across the segment, by position (no accumulated rounding): the gain at segment
    // position p (1-based) is g0 + (g1 - g0) p / len.
    const double step = (_g1 - _g0) / static_cast<double>(_seg_len);
    const double base = static_cast<double>(_seg_pos);
    for (int c = 0; c < channels; ++c) {
        float* p = io[c];
        for (uint32_t i = 0; i < n; ++i)
            p[i] *= static_cast<float>(_g0 + step * (base + static_cast<double>(i + 1)));
    }
}

// After the detector has read a chunk of m frames: the dither's phase, the gain, the segment.
void LoudnessCap::finish_chunk(float* const* io, int channels, uint32_t m) noexcept {
    if (m & 1u) _dither = -_dither;
    apply_gain(io, channels, m);
    _seg_pos += m;
    if (_seg_pos == _seg_len) end_segment();
}

void LoudnessCap::end_segment() noexcept {
    constexpr int nseg = box_segments;
    const std::size_t slot = static_cast<std::size_t>(_ring_pos);
    auto back = [slot](int j) { // the ring slot j segments before the one just closed
        const int s = static_cast<int>(slot) - j;
        return static_cast<std::size_t>(s < 0 ? s + nseg : s);
    };
    // The cap in force: a raised cap at once (the gain follows at the release rate), a lowered one
    // gliding down while the cap is on (and the second after a drop is an onset: the windows
    // already played were within the old cap, not the new one). Off, a setting applies at once.
    bool cap_fell = false;
    if (_cap_ms < _cap_eff_ms && _was_enabled && _enabled) {
        _cap_eff_ms = std::max(_cap_ms, _cap_eff_ms * _cap_fall_step);
        cap_fell = true;
    } else {
        _cap_eff_ms = _cap_ms;
    }
    const double seg = static_cast<double>(_seg_len);
    const double share = _cap_eff_ms * seg;                               // the cap's energy per segment
    const double budget = share * static_cast<double>(nseg) * _tolerance; // ... per 1 s window (+0.4 dB)

    // Onsets, on the louder ear's segment energies m: a crossing (over the cap after a whole second
    // without a segment over it) and a jump (over the cap and jump_db over every segment of the
    // second before, or, when the step began inside the previous segment, the previous segment
    // already rise_db over and this one jump_db over every segment before that). The slot about to
    // be replaced holds the segment of 1 s ago, so the previous 100 segments are the ring as it
    // stands.
    // A rise (the last two segments' mean rise_db over every 20 ms mean of the second before, the
    // last one too; or one segment rise_fast_db over every segment of the second before), over the
    // cap, starts the mean since the rise, which the detector follows for a second: a step is
    // followed within 20-30 ms instead of the 150 ms mean's 150. (Means of two segments: noise
    // fluctuates less over 20 ms than over 10, music's hits are as loud.)
    double m = 0.0;
    for (int c = 0; c < _channels; ++c) m = std::max(m, _seg_sum[static_cast<std::size_t>(c)]);
    const std::size_t prev = back(1);
    const double m1 = _peak_ring[prev];
    double mprev = 0.0, ref = 0.0, ref2 = 0.0;
    for (int j = 1; j <= nseg; ++j) { // j segments back; the ring holds j = 1..100
        const double v = _peak_ring[back(j)];
        mprev = mprev > v ? mprev : v;
        if (j >= 2) {
            ref = ref > v ? ref : v;
            if (j < nseg) {
                const double pair = 0.5 * (v + _peak_ring[back(j + 1)]);
                ref2 = ref2 > pair ? ref2 : pair;
            }
        }
    }
    _crossing_age = std::min(_crossing_age + 1, idle_age);
    _jump_age = std::min(_jump_age + 1, idle_age);
    _rise_age = std::min(_rise_age + 1, idle_age);
    if (m > share) {
        if (mprev <= share) _crossing_age = 0;
        const bool jump = m > _jump_ratio * mprev || (m1 > _rise_ratio * ref && m > _jump_ratio * ref) ||
                          (m > _loud_jump_ratio * share && m > _rise_fast_ratio * mprev);
        const bool in_step = _jump_age < nseg; // (before this segment) the second after a jump
        if (jump) _jump_age = 0;
        const bool fast = m > _rise_fast_ratio * mprev;
        const bool pair = 0.5 * (m + m1) > _rise_ratio * ref2 && m > _rise_ratio * ref2;
        // In the second after a jump the mean since the jump goes on (a hit in the music that
        // followed does not restart it); another jump does.
        if ((fast || pair) && _rise_age >= 2 && (jump || !in_step)) {
            _rise_age = 0;
            _rise_cross = jump && mprev <= share; // a step out of a second under the cap
            _since_n = fast ? 0 : 1;              // a pair: the segment before counts too
            for (int c = 0; c < _channels; ++c) {
                const std::size_t k = static_cast<std::size_t>(c);
                _since_sum[k] = fast ? 0.0 : _ring[k][prev];
            }
        }
    }
    if ((_enabled && !_was_enabled) || cap_fell) _crossing_age = 0; // switched on, or cap lowered
    _was_enabled = _enabled;
    _peak_ring[slot] = m;

    // Detector per ear: max(1 s mean (+ the weighted 150 ms excess), trend estimate, mean since a
    // rise), as energy per segment.
    const bool after_rise = _rise_age < nseg;
    bool follow = false; // the mean since a rise governs: g_det follows it both ways
    if (after_rise) ++_since_n;
    std::array<double, max_channels> pred{};
    double p_max = 0.0, p1_max = 0.0, level = 0.0;
    for (int c = 0; c < _channels; ++c) {
        const std::size_t k = static_cast<std::size_t>(c);
        auto& ring = _ring[k];
        const double x = _seg_sum[k];
        ring[slot] = x;
        _out_ring[k][slot] = _seg_out[k];
        _seg_sum[k] = _seg_out[k] = 0.0;
        double e1 = 0.0; // re-summed every segment: no drift
        for (double v : ring) e1 += v;
        double es = 0.0, ef = 0.0;
        for (int j = 0; j < short_segments; ++j) {
            const double v = ring[back(j)];
            es += v;
            if (j < trend_segments) ef += v;
        }
        const double p1 = e1 / nseg, ps = es / short_segments, pf = ef / trend_segments;
        // The fast estimate q: the 150 ms mean; on a steady rise (a fade-in, a fader pushed up),
        // which the 150 ms mean lags by half its length, the level now estimated as
        // pf * sqrt(pf / ps) (exact for a rise linear in dB) once the 50 ms mean has led the
        // 150 ms one for 300 ms; in the second after a rise, the mean since the rise.
        double q = ps;
        _rise_count[k] = pf > ps * _trend_ratio ? std::min(_rise_count[k] + 1, idle_age) : 0;
        if (_rise_count[k] >= trend_hold_segments) q = std::max(q, pf * std::sqrt(pf / ps));
        // q counts in proportion to how close the 1 s mean is (or was, in the last 8 s) to the cap:
        // music that stays 2 dB under it passes untouched, an accent on music at the cap is
        // followed within 150 ms.
        const double near_db = power_to_db(p1 / share) + short_from_db;
        const double w_now = std::clamp(near_db / (short_from_db - short_full_db), 0.0, 1.0);
        _short_weight[k] = std::max(w_now, _short_weight[k] - _weight_fall);
        const double w = _short_weight[k];
        double p = q > p1 ? p1 + w * (q - p1) : p1;
        // In the second after a rise: the mean since the rise, with the same weight; after a jump
        // (a step) with a weight of its own, by how far that mean is over the cap (a song whose
        // first hit is a little over the cap is left alone, a real step is followed at once).
        if (after_rise) {
            _since_sum[k] += x;
            const double pr = _since_sum[k] / static_cast<double>(_since_n);
            // Within music that was already near the cap (not a crossing) a rise must also hold:
            // the weight grows over its first four segments and is 0 while the latest segment
            // is 3 dB or more under the mean since the rise (a hit decaying, not a step).
            const double hold = std::min(1.0, static_cast<double>(_since_n - 1) /
                                                  static_cast<double>(since_hold_segments - 1));
            const double wr = _rise_cross ? std::max(w, std::clamp((power_to_db(pr / share) - since_from_db) /
                                                                       (since_full_db - since_from_db),
                                                                   0.0, 1.0))
                                          : (x * _since_decay_ratio >= pr ? w * hold : 0.0);
            const double pp = pr > p1 ? p1 + wr * (pr - p1) : p1;
            if (pp >= p) {
                p = pp;
                follow = follow || wr > 0.0;
            }
        }
        pred[k] = p;
        p_max = std::max(p_max, p);
        p1_max = std::max(p1_max, p1);
        level = std::max(level, e1);
    }
    _level_ms = level / (static_cast<double>(nseg) * seg);

    // Detector gain: down at once; up at the release rate, but at max_release_db_per_s while it
    // is under what the 1 s means alone ask for (g_slow: their gain, itself down at once and up at
    // the release rate; what the fast estimates took away beyond it was a guess about a level that
    // did not last); in the first second after a rise it follows the mean since the rise both
    // ways. min() with 1 lands exactly on 1 (idle).
    const double req = (_enabled && p_max > share) ? std::max(std::sqrt(share / p_max), _gain_floor) : 1.0;
    const double g_box =
        (_enabled && p1_max > share) ? std::max(std::sqrt(share / p1_max), _gain_floor) : 1.0;
    _g_slow = g_box <= _g_slow ? g_box : std::min(g_box, _g_slow * _rel_step);
    if (req <= _g_det || (follow && _enabled)) {
        _g_det = req;
    } else if (_g_det < _g_slow) {
        _g_det = std::min({req, _g_slow, _g_det * _fast_rel_step});
    } else {
        _g_det = std::min(req, _g_det * _rel_step);
    }

    // Clamp: for every window that ends h = 1..100 segments from now and starts after the first
    // second of the last crossing and after the first jump_exempt_segments of the last jump, the
    // output energy already in it (its newest 100 - h segments) plus h segments at pred * g_det^2
    // must stay within the budget. The lowest (budget - known) / h over those windows, found
    // without dividing (cross-multiplied: h > 0).
    const int h_min =
        std::max({1, 2 * nseg - 1 - _crossing_age, jump_exempt_segments + nseg - 1 - _jump_age});
    // ... and, in the second after a crossing, the window that starts on the next 1 s boundary of
    // the segment clock (the dose meter's interval after the onset's own, when aligned).
    int h_grid = 0;
    if (_crossing_age < 2 * nseg) {
        const int phase_o = ((_seg_phase - _crossing_age) % nseg + nseg) % nseg;
        if (phase_o != 0) h_grid = (nseg - phase_o) + nseg - 1 - _crossing_age; // until it has closed
        if (h_grid < 1 || h_grid > nseg || h_grid >= h_min) h_grid = 0;
    }
    _seg_phase = _seg_phase + 1 == nseg ? 0 : _seg_phase + 1;
    double c_req = 1.0;
    if (_enabled && (h_min <= nseg || h_grid > 0)) {
        const double g2 = _g_det * _g_det;
        for (int c = 0; c < _channels; ++c) {
            const std::size_t k = static_cast<std::size_t>(c);
            const double per_seg = pred[k] * g2;
            if (!(per_seg > 0.0)) continue;
            const auto& out = _out_ring[k];
            double known = 0.0;
            for (double v : out) known += v;
            if (known + static_cast<double>(nseg) * per_seg <= budget) continue; // no window can exceed
            double best_num = 1.0, best_den = 0.0;                               // "+infinity"
            std::size_t old = slot + 1 == static_cast<std::size_t>(nseg) ? 0 : slot + 1; // the oldest
            for (int h = 1; h <= nseg; ++h) {
                known -= out[old]; // the window ending h segments ahead no longer holds it
                old = old + 1 == static_cast<std::size_t>(nseg) ? 0 : old + 1;
                if (h < h_min && h != h_grid) continue;
                const double num = budget - known, den = static_cast<double>(h);
                if (best_den == 0.0 || num * best_den < best_num * den) {
                    best_num = num;
                    best_den = den;
                }
            }
            if (best_den > 0.0) {
                const double r = best_num / (best_den * per_seg); // the factor^2 the tightest window allows
                if (r < 1.0) c_req = std::min(c_req, std::sqrt(std::max(r, 0.0)));
            }
        }
    }
    c_req = std::max(c_req, _clamp_floor);
    _g_clamp = c_req <= _g_clamp ? c_req : std::min(c_req, _g_clamp * _clamp_rel_step);

    _ring_pos = slot + 1 == static_cast<std::size_t>(nseg) ? 0 : static_cast<int>(slot + 1);
    const double next = std::max(_g_det * _g_clamp, _gain_floor);
    _g0 = _g1;
    _g1 = next;
    _min_gain = std::min(_min_gain, static_cast<float>(next));
    _seg_pos = 0;
}

void LoudnessCap::process(float* const* io, int channels, uint32_t n) noexcept {
    const int ch = std::min(channels, _channels);
    if (ch < 1) return;
    uint32_t i = 0;
    while (i < n) {
        const uint32_t m = std::min(n - i, _seg_len - _seg_pos);
        float* p[max_channels] = {io[0] + i, ch > 1 ? io[1] + i : nullptr};
        // The detector reads the chunk before the gain touches it (feed-forward).
        if (ch == 2 && !_eardrum) {
            const float* x[2] = {p[0], p[1]};
            detect_pair(x, m);
        } else {
            for (int c = 0; c < ch; ++c) detect_mono(p[c], c, m);
        }
        finish_chunk(p, ch, m);
        i += m;
    }
}

void LoudnessCap::process_two(LoudnessCap& a, float* const* io_a, int ch_a, LoudnessCap& b,
                              float* const* io_b, int ch_b, uint32_t n) noexcept {
    const bool lockstep = &a != &b && std::min(ch_a, a._channels) == 2 && std::min(ch_b, b._channels) == 2 &&
                          !a._eardrum && !b._eardrum && a._fs == b._fs && a._seg_len == b._seg_len &&
                          a._seg_pos == b._seg_pos;
    if (!lockstep) {
        a.process(io_a, ch_a, n);
        b.process(io_b, ch_b, n);
        return;
    }
    const TwoFn fn = two_fn.load(std::memory_order_relaxed);
    uint32_t i = 0;
    while (i < n) {
        const uint32_t m = std::min(n - i, a._seg_len - a._seg_pos); // the same for b
        float* pa[2] = {io_a[0] + i, io_a[1] + i};
        float* pb[2] = {io_b[0] + i, io_b[1] + i};
        const float* x[4] = {pa[0], pa[1], pb[0], pb[1]};
        fn(a, b, x, m);
        a.finish_chunk(pa, 2, m);
        b.finish_chunk(pb, 2, m);
        i += m;
    }
}

} // namespace earshot::dsp
