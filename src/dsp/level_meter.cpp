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
