// LoudnessCap: A-weighted 1 s box detector, louder ear, segment-wise gain (docs/protection.md).
#include "earshot/dsp/loudness_cap.hpp"

#include "biquad_pair.hpp"

#include "earshot/dsp/units.hpp"

#include <algorithm>
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

using detail::BiquadPair;
using detail::v2d;
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
    _box_norm = 1.0 / (static_cast<double>(box_segments) * static_cast<double>(_seg_len));
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
    _clamp_rel_step = std::pow(10.0, clamp_release_db_per_s * seg_s / 20.0);
    _step_ratio = std::pow(10.0, step_db / 10.0);
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
    _level_ring.fill(0.0);
    _ring_pos = 0;
    _seg_pos = 0;
    _g_box = _g_clamp = 1.0;
    _g0 = _g1 = 1.0;
    _seg_enabled = false;
    _uncharged_left = box_segments;
    _level_ms = 0.0;
    _min_gain = 1.0f;
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
        _level_ring = o._level_ring;
        _ring_pos = o._ring_pos;
        _seg_pos = o._seg_pos;
        _seg_enabled = o._seg_enabled;
        _uncharged_left = o._uncharged_left;
        _g_box = o._g_box;
        _g_clamp = o._g_clamp;
        _g0 = o._g0;
        _g1 = o._g1;
        _level_ms = o._level_ms;
        _min_gain = o._min_gain;
        return;
    }
    // A different layout: carry the gain on (no jump), start the detector afresh.
    const double g = static_cast<double>(o.gain());
    reset();
    _g_box = _g0 = _g1 = g;
    _min_gain = o.gain();
}

// Accumulates the A-weighted squares of one channel into _seg_sum[c], and the output's (the same
// squares times the gain each sample gets: ga + gs * (i + 1)) into _seg_out[c].
void LoudnessCap::detect_mono(const float* x, int c, uint32_t n, double ga, double gs) noexcept {
    const std::size_t k = static_cast<std::size_t>(c);
    State z = _z[k];
    DiffuseFieldCorrection& df = _df[k];
    const BiquadCoeffs s0 = _sec[0], s1 = _sec[1], s2 = _sec[2];
    const bool eardrum = _eardrum;
    double d = _dither, sum = 0.0, out = 0.0;
    for (uint32_t i = 0; i < n; ++i) {
        double v = sanitise(x[i]) + d;
        d = -d;
        if (eardrum) v = df.process(v);
        const double a = tdf2(s2, z[2], tdf2(s1, z[1], tdf2(s0, z[0], v)));
        const double sq = a * a;
        sum += sq;
        const double g = ga + gs * static_cast<double>(i + 1);
        out += g * g * sq;
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

// Both ears in lockstep, two double lanes per vector (no diffuse-field correction).
void LoudnessCap::detect_pair(const float* xl, const float* xr, uint32_t n, double ga, double gs) noexcept {
    BiquadPair s0, s1, s2;
    s0.load(_sec[0], _z[0][0], _z[1][0]);
    s1.load(_sec[1], _z[0][1], _z[1][1]);
    s2.load(_sec[2], _z[0][2], _z[1][2]);
    const v2d zero = {0.0, 0.0};
    v2d d = {_dither, _dither}, sum = zero, out = zero;
    if (gs == 0.0) { // a steady gain: the output energy is ga^2 times the input's
        for (uint32_t i = 0; i < n; ++i) {
            const v2d raw = {static_cast<double>(xl[i]), static_cast<double>(xr[i])};
            const v2d v = (raw - raw == 0.0 ? raw : zero) + d; // non-finite -> 0, as sanitise()
            d = -d;
            v2d a = v;
            s0.step(a);
            s1.step(a);
            s2.step(a);
            sum += a * a;
        }
        out = (ga * ga) * sum;
    } else {
        for (uint32_t i = 0; i < n; ++i) {
            const v2d raw = {static_cast<double>(xl[i]), static_cast<double>(xr[i])};
            const v2d v = (raw - raw == 0.0 ? raw : zero) + d;
            d = -d;
            v2d a = v;
            s0.step(a);
            s1.step(a);
            s2.step(a);
            const v2d sq = a * a;
            sum += sq;
            const double g = ga + gs * static_cast<double>(i + 1);
            out += (g * g) * sq;
        }
    }
    s0.store(_z[0][0], _z[1][0]);
    s1.store(_z[0][1], _z[1][1]);
    s2.store(_z[0][2], _z[1][2]);
    for (std::size_t k = 0; k < 2; ++k) {
        double s = sum[k], o = out[k];
        if (!finite_state(_z[k]) || !std::isfinite(s + o)) [[unlikely]] {
            _z[k] = State{};
            s = o = 0.0;
        }
        _seg_sum[k] += s;
        _seg_out[k] += o;
    }
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

void LoudnessCap::end_segment() noexcept {
    constexpr std::size_t nseg = box_segments;
    const std::size_t slot = static_cast<std::size_t>(_ring_pos);
    const double seg = static_cast<double>(_seg_len);
    const double share = _cap_ms * seg;                      // the cap's energy per segment
    const double budget = share * static_cast<double>(nseg); // ... and per 1 s window
    // Box: the louder ear's mean square over the last 1 s (re-summed every segment: no drift).
    std::array<double, max_channels> e_in{};
    double p = 0.0;
    for (int c = 0; c < _channels; ++c) {
        const std::size_t k = static_cast<std::size_t>(c);
        _ring[k][slot] = _seg_sum[k];
        _seg_sum[k] = 0.0;
        for (double v : _ring[k]) e_in[k] += v;
        p = std::max(p, e_in[k]);
    }
    p *= _box_norm;
    // Output the clamp does not charge in full, only up to the cap's share: the first second of a
    // step (the box rose by more than step_db within the last second; the slot being replaced holds
    // the box level of 1 s ago), which no causal limiter can hold, and the output of the cap's first
    // second after being off (the windows still hold un-capped output). So neither punishes the
    // following second.
    if (!_seg_enabled) _uncharged_left = static_cast<int>(nseg);
    const bool uncharged = _uncharged_left > 0 || p > _level_ring[slot] * _step_ratio;
    if (_uncharged_left > 0) --_uncharged_left;
    _seg_enabled = _enabled;
    _level_ring[slot] = p;
    _level_ms = p;
    // Clamp: for every window that ends h = 1..100 segments from now, the output energy already in
    // it (its newest 100 - h segments) plus h segments to come at the box's mean energy must stay
    // within the budget.
    double clamp2 = 1e300; // lowest g^2 those windows allow
    for (int c = 0; c < _channels; ++c) {
        const std::size_t k = static_cast<std::size_t>(c);
        auto& out = _out_ring[k];
        out[slot] = uncharged ? std::min(_seg_out[k], share) : _seg_out[k];
        _seg_out[k] = 0.0;
        if (!_enabled || !(e_in[k] > 0.0)) continue;
        double past = 0.0;
        for (double v : out) past += v;
        const double p_seg = e_in[k] / static_cast<double>(nseg);
        std::size_t old = slot + 1 == nseg ? 0 : slot + 1; // the oldest segment
        for (std::size_t h = 1; h <= nseg; ++h) {
            past -= out[old]; // the window ending h segments ahead no longer holds it
            old = old + 1 == nseg ? 0 : old + 1;
            clamp2 = std::min(clamp2, (budget - past) / (static_cast<double>(h) * p_seg));
        }
    }
    _ring_pos = slot + 1 == nseg ? 0 : static_cast<int>(slot + 1);
    // Box gain: down at once, up at the release rate; min() with 1 lands exactly on 1 (idle).
    const double box_req = (_enabled && p > _cap_ms) ? std::max(std::sqrt(_cap_ms / p), _gain_floor) : 1.0;
    _g_box = box_req <= _g_box ? box_req : std::min(box_req, _g_box * _rel_step);
    // Clamp: a factor on top of the box gain, at most clamp_depth_db deep; down at once, up at its
    // own rate. (Relative, so it never slows the box's own recovery after a loud passage.)
    double c_req = clamp2 >= _g_box * _g_box ? 1.0 : std::sqrt(std::max(clamp2, 0.0)) / _g_box;
    c_req = std::max(c_req, _clamp_floor);
    _g_clamp = c_req <= _g_clamp ? c_req : std::min(c_req, _g_clamp * _clamp_rel_step);
    const double next = std::max(_g_box * _g_clamp, _gain_floor);
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
        // The detector reads the chunk before the gain touches it (feed-forward); it is told the
        // gain each sample will get, for the output energy: ga + gs * (i + 1).
        const double gs = (_g1 - _g0) / static_cast<double>(_seg_len);
        const double ga = _g0 + gs * static_cast<double>(_seg_pos);
        if (ch == 2 && !_eardrum) {
            detect_pair(p[0], p[1], m, ga, gs);
        } else {
            for (int c = 0; c < ch; ++c) detect_mono(p[c], c, m, ga, gs);
        }
        if (m & 1u) _dither = -_dither;
        _seg_enabled = _seg_enabled && _enabled;
        apply_gain(p, ch, m);
        _seg_pos += m;
        i += m;
        if (_seg_pos == _seg_len) end_segment();
    }
}

} // namespace earshot::dsp
