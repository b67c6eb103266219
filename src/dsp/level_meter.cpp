// LevelMeter: A/C weighting, Leq sum, F/S time weighting and C peak of one ear (docs/dsp-weighting.md).
#include "earshot/dsp/level_meter.hpp"

#include "biquad_pair.hpp"

#include <cmath>

namespace earshot::dsp {

namespace {
constexpr double tau_fast = 0.125; // s, IEC 61672-1 F
constexpr double tau_slow = 1.0;   // s, IEC 61672-1 S

// A float sample as double, non-finite -> 0 (x - x is 0 exactly for every finite x, NaN otherwise).
inline double sanitise(float x) noexcept {
    const double d = static_cast<double>(x);
    return d - d == 0.0 ? d : 0.0;
}
} // namespace

void LevelMeter::prepare(double fs_hz, bool eardrum) {
    _w.prepare(fs_hz);
    _df.prepare(fs_hz);
    _eardrum = eardrum;
    _alpha_f = 1.0 - std::exp(-1.0 / (fs_hz * tau_fast));
    _alpha_s = 1.0 - std::exp(-1.0 / (fs_hz * tau_slow));
    reset();
}

void LevelMeter::reset() noexcept {
    _w.reset();
    _flip = 1e-25;
    _df.reset();
    _yf = _ys = 0.0;
    _iv = Interval{};
}

void LevelMeter::process(const float* x, uint32_t n) noexcept {
    double sum = 0.0, fmax = _iv.laf_max_ms, smax = _iv.las_max_ms, cpk = _iv.c_peak;
    double yf = _yf, ys = _ys, dither = _flip;
    const double af = _alpha_f, as = _alpha_s, kf = 1.0 - af, ks = 1.0 - as;
    const bool eardrum = _eardrum;
    for (uint32_t i = 0; i < n; ++i) {
        // Non-finite input counts as silence. The +-1e-25 offset keeps every recursion out of
        // denormals (its power, 1e-50, is 500 dB below full scale).
        double v = sanitise(x[i]) + dither;
        dither = -dither;
        if (eardrum) v = _df.process(v);
        double a, c;
        _w.cascade(v, a, c);
        const double sq = a * a;
        sum += sq;
        yf = kf * yf + af * sq; // y += alpha (x^2 - y), with a shorter dependency chain
        ys = ks * ys + as * sq;
        fmax = yf > fmax ? yf : fmax;
        smax = ys > smax ? ys : smax;
        const double ac = std::fabs(c);
        cpk = ac > cpk ? ac : cpk;
    }
    _flip = dither;
    if (!_w.finite() || !_df.finite() || !std::isfinite(yf) || !std::isfinite(ys) || !std::isfinite(sum)) {
        // Hygiene: a state that went non-finite restarts from zero, and this block counts as silence.
        _w.reset();
        _df.reset();
        yf = ys = 0.0;
        sum = 0.0;
        fmax = _iv.laf_max_ms;
        smax = _iv.las_max_ms;
        cpk = _iv.c_peak;
    }
    _yf = yf;
    _ys = ys;
    _iv.sum_sq_a += sum;
    _iv.samples += n;
    _iv.laf_max_ms = fmax;
    _iv.las_max_ms = smax;
    _iv.c_peak = cpk;
    _iv.laf_end_ms = yf;
}

LevelMeter::Interval LevelMeter::take() noexcept {
    const Interval out = _iv;
    _iv = Interval{};
    _iv.laf_end_ms = _yf; // the F meter runs on: an empty interval still reports its current value
    return out;
}

namespace {
using detail::BiquadPair;
using detail::v2d;

inline v2d vmax(v2d a, v2d b) {
    return a > b ? a : b;
}
inline v2d vmin(v2d a, v2d b) {
    return a < b ? a : b;
}
} // namespace

void LevelMeter::process_pair(LevelMeter& a, LevelMeter& b, const float* xa, const float* xb,
                              uint32_t n) noexcept {
    if (a._eardrum || b._eardrum) {
        // The diffuse-field correction runs per channel; this path stays exactly process().
        a.process(xa, n);
        b.process(xb, n);
        return;
    }
    static_assert(AcWeighting::nc == 2 && AcWeighting::na == 1, "process_pair runs 2 C + 1 A sections");
    BiquadPair c0, c1, s0;
    c0.load(a._w._c[0], a._w._zc[0], b._w._zc[0]);
    c1.load(a._w._c[1], a._w._zc[1], b._w._zc[1]);
    s0.load(a._w._a[0], a._w._za[0], b._w._za[0]);
    const v2d af = {a._alpha_f, a._alpha_f}, as = {a._alpha_s, a._alpha_s};
    const v2d kf = 1.0 - af, ks = 1.0 - as;
    const v2d zero = {0.0, 0.0};
    v2d yf = {a._yf, b._yf}, ys = {a._ys, b._ys}, dither = {a._flip, b._flip};
    v2d sum = zero;
    v2d fmax = {a._iv.laf_max_ms, b._iv.laf_max_ms}, smax = {a._iv.las_max_ms, b._iv.las_max_ms};
    // C peak as the running max and min of c (two instructions), max(|c|) = max(cmax, -cmin).
    v2d cmax = {a._iv.c_peak, b._iv.c_peak}, cmin = -cmax;
    for (uint32_t i = 0; i < n; ++i) {
        const v2d raw = {static_cast<double>(xa[i]), static_cast<double>(xb[i])};
        const v2d v = (raw - raw == 0.0 ? raw : zero) + dither; // non-finite -> 0, as sanitise()
        dither = -dither;
        const v2d c = c1.run(c0.run(v));
        const v2d w = s0.run(c);
        const v2d sq = w * w;
        sum += sq;
        yf = kf * yf + af * sq;
        ys = ks * ys + as * sq;
        fmax = vmax(fmax, yf);
        smax = vmax(smax, ys);
        cmax = vmax(cmax, c);
        cmin = vmin(cmin, c);
    }
    c0.store(a._w._zc[0], b._w._zc[0]);
    c1.store(a._w._zc[1], b._w._zc[1]);
    s0.store(a._w._za[0], b._w._za[0]);
    const v2d cpk = vmax(cmax, -cmin);
    LevelMeter* m[2] = {&a, &b};
    for (int k = 0; k < 2; ++k) {
        LevelMeter& t = *m[k];
        double s = sum[k], f = fmax[k], sm = smax[k], cp = cpk[k], y1 = yf[k], y2 = ys[k];
        t._flip = dither[k];
        if (!t._w.finite() || !std::isfinite(y1) || !std::isfinite(y2) || !std::isfinite(s)) {
            t._w.reset();
            y1 = y2 = s = 0.0;
            f = t._iv.laf_max_ms;
            sm = t._iv.las_max_ms;
            cp = t._iv.c_peak;
        }
        t._yf = y1;
        t._ys = y2;
        t._iv.sum_sq_a += s;
        t._iv.samples += n;
        t._iv.laf_max_ms = f;
        t._iv.las_max_ms = sm;
        t._iv.c_peak = cp;
        t._iv.laf_end_ms = y1;
    }
}

} // namespace earshot::dsp
