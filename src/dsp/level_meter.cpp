#include "earshot/dsp/level_meter.hpp"

#include <cmath>

namespace earshot::dsp {

void LevelMeter::prepare(double fs_hz) {
    _w.prepare(fs_hz);
    _alpha_f = 1.0 - std::exp(-1.0 / (fs_hz * 0.125));
    _alpha_s = 1.0 - std::exp(-1.0 / (fs_hz * 1.0));
    reset();
}

void LevelMeter::reset() noexcept {
    _w.reset();
    _yf = _ys = 0.0;
    _iv = Interval{};
    _flip = 1e-25;
}

void LevelMeter::process(const float* x, uint32_t n) noexcept {
    double sum = 0.0, fmax = _iv.laf_max_ms, smax = _iv.las_max_ms, cpk = _iv.c_peak;
    double yf = _yf, ys = _ys, flip = _flip;
    const double af = _alpha_f, as = _alpha_s;
    for (uint32_t i = 0; i < n; ++i) {
        const float xf = x[i];
        // Non-finite input counts as silence. A +-1e-25 dither keeps the recursions out of
        // denormals (its power, 1e-50, is 400 dB below anything audible).
        double v = std::isfinite(xf) ? static_cast<double>(xf) : 0.0;
        v += flip;
        flip = -flip;
        double a, c;
        _w.process(v, a, c);
        const double sq = a * a;
        sum += sq;
        yf += af * (sq - yf);
        ys += as * (sq - ys);
        fmax = yf > fmax ? yf : fmax;
        smax = ys > smax ? ys : smax;
        const double ac = std::fabs(c);
        cpk = ac > cpk ? ac : cpk;
    }
    if (!_w.finite() || !std::isfinite(yf) || !std::isfinite(ys) || !std::isfinite(sum)) {
        // Hygiene: a state that went non-finite is reset, and this block counts as silence.
        _w.reset();
        yf = ys = 0.0;
        sum = 0.0;
        fmax = _iv.laf_max_ms;
        smax = _iv.las_max_ms;
        cpk = _iv.c_peak;
    }
    _yf = yf;
    _ys = ys;
    _flip = flip;
    _iv.sum_sq_a += sum;
    _iv.samples += n;
    _iv.laf_max_ms = fmax;
    _iv.las_max_ms = smax;
    _iv.c_peak = cpk;
    _iv.laf_end_ms = yf;
}

LevelMeter::Interval LevelMeter::take() noexcept {
    Interval out = _iv;
    _iv = Interval{};
    return out;
}

} // namespace earshot::dsp

namespace earshot::dsp {

namespace {
typedef double v2d __attribute__((vector_size(16))); // GCC/Clang vector extension: two lanes

struct Sec2 {
    v2d b0, b1, b2, a1, a2; // coefficients (equal in both lanes)
    v2d z0, z1;             // state, lane 0 = meter a, lane 1 = meter b
    void load(const BiquadCoeffs& c, const std::array<double, 2>& za, const std::array<double, 2>& zb) {
        b0 = v2d{c.b0, c.b0};
        b1 = v2d{c.b1, c.b1};
        b2 = v2d{c.b2, c.b2};
        a1 = v2d{c.a1, c.a1};
        a2 = v2d{c.a2, c.a2};
        z0 = v2d{za[0], zb[0]};
        z1 = v2d{za[1], zb[1]};
    }
    void store(std::array<double, 2>& za, std::array<double, 2>& zb) const {
        za = {z0[0], z1[0]};
        zb = {z0[1], z1[1]};
    }
    v2d run(v2d x) {
        const v2d y = b0 * x + z0;
        z0 = b1 * x - a1 * y + z1;
        z1 = b2 * x - a2 * y;
        return y;
    }
};

inline v2d vmax(v2d a, v2d b) {
    return a > b ? a : b;
}
} // namespace

void LevelMeter::process_pair(LevelMeter& a, LevelMeter& b, const float* xa, const float* xb,
                              uint32_t n) noexcept {
    Sec2 c0, c1, s0, s1;
    c0.load(a._w._c[0], a._w._zc[0], b._w._zc[0]);
    c1.load(a._w._c[1], a._w._zc[1], b._w._zc[1]);
    s0.load(a._w._a[0], a._w._za[0], b._w._za[0]);
    s1.load(a._w._a[1], a._w._za[1], b._w._za[1]);
    const v2d cg = {a._w._c_gain, a._w._c_gain}, ag = {a._w._a_gain, a._w._a_gain};
    const v2d af = {a._alpha_f, a._alpha_f}, as = {a._alpha_s, a._alpha_s};
    v2d yf = {a._yf, b._yf}, ys = {a._ys, b._ys}, flip = {a._flip, b._flip};
    v2d sum = {0.0, 0.0};
    v2d fmax = {a._iv.laf_max_ms, b._iv.laf_max_ms}, smax = {a._iv.las_max_ms, b._iv.las_max_ms};
    v2d cpk = {a._iv.c_peak, b._iv.c_peak};
    for (uint32_t i = 0; i < n; ++i) {
        const float fa = xa[i], fb = xb[i];
        v2d v = {std::isfinite(fa) ? static_cast<double>(fa) : 0.0,
                 std::isfinite(fb) ? static_cast<double>(fb) : 0.0};
        v += flip;
        flip = -flip;
        const v2d c = c1.run(c0.run(v * cg));
        const v2d w = s1.run(s0.run(c)) * ag;
        const v2d sq = w * w;
        sum += sq;
        yf += af * (sq - yf);
        ys += as * (sq - ys);
        fmax = vmax(fmax, yf);
        smax = vmax(smax, ys);
        const v2d ac = c < 0.0 ? -c : c;
        cpk = vmax(cpk, ac);
    }
    c0.store(a._w._zc[0], b._w._zc[0]);
    c1.store(a._w._zc[1], b._w._zc[1]);
    s0.store(a._w._za[0], b._w._za[0]);
    s1.store(a._w._za[1], b._w._za[1]);
    LevelMeter* m[2] = {&a, &b};
    for (int k = 0; k < 2; ++k) {
        LevelMeter& t = *m[k];
        double s = sum[k], f = fmax[k], sm = smax[k], cp = cpk[k], y1 = yf[k], y2 = ys[k];
        if (!t._w.finite() || !std::isfinite(y1) || !std::isfinite(y2) || !std::isfinite(s)) {
            t._w.reset();
            y1 = y2 = s = 0.0;
            f = t._iv.laf_max_ms;
            sm = t._iv.las_max_ms;
            cp = t._iv.c_peak;
        }
        t._yf = y1;
        t._ys = y2;
        t._flip = flip[k];
        t._iv.sum_sq_a += s;
        t._iv.samples += n;
        t._iv.laf_max_ms = f;
        t._iv.las_max_ms = sm;
        t._iv.c_peak = cp;
        t._iv.laf_end_ms = y1;
    }
}

} // namespace earshot::dsp
