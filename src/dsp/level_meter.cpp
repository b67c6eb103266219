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
using detail::BiquadLanes;

// Lane-wise max / min, written out where used (a wide vector is never passed by value).
#define EARSHOT_VMAX(a, b) ((a) > (b) ? (a) : (b))
#define EARSHOT_VMIN(a, b) ((a) < (b) ? (a) : (b))
} // namespace

// L meters in lockstep, one lane each (none of them eardrum). Per lane exactly process()'s
// arithmetic, so the result is bit-identical to L mono runs.
template <int L>
[[gnu::always_inline]] inline void LevelMeter::run_lanes(LevelMeter* const* m, const float* const* x,
                                                         uint32_t n) noexcept {
    static_assert(AcWeighting::nc == 2 && AcWeighting::na == 1, "the lanes run 2 C + 1 A sections");
    using V = typename detail::VecD<L>::type;
    BiquadLanes<L> c0, c1, s0;
    std::array<double, 2>* z[L];
    for (int k = 0; k < L; ++k) z[k] = &m[k]->_w._zc[0];
    c0.load(m[0]->_w._c[0], z);
    for (int k = 0; k < L; ++k) z[k] = &m[k]->_w._zc[1];
    c1.load(m[0]->_w._c[1], z);
    for (int k = 0; k < L; ++k) z[k] = &m[k]->_w._za[0];
    s0.load(m[0]->_w._a[0], z);
    V af, as, yf, ys, dither, fmax, smax, cmax;
    for (int k = 0; k < L; ++k) {
        af[k] = m[0]->_alpha_f;
        as[k] = m[0]->_alpha_s;
        yf[k] = m[k]->_yf;
        ys[k] = m[k]->_ys;
        dither[k] = m[k]->_flip;
        fmax[k] = m[k]->_iv.laf_max_ms;
        smax[k] = m[k]->_iv.las_max_ms;
        cmax[k] = m[k]->_iv.c_peak;
    }
    const V kf = 1.0 - af, ks = 1.0 - as;
    const V zero = af * 0.0;
    V sum = zero;
    // C peak as the running max and min of c (two instructions), max(|c|) = max(cmax, -cmin).
    V cmin = -cmax;
    for (uint32_t i = 0; i < n; ++i) {
        V raw;
        for (int k = 0; k < L; ++k) raw[k] = static_cast<double>(x[k][i]);
        V c = (raw - raw == 0.0 ? raw : zero) + dither; // non-finite -> 0, as sanitise()
        dither = -dither;
        c0.step(c);
        c1.step(c);
        V w = c;
        s0.step(w);
        const V sq = w * w;
        sum += sq;
        yf = kf * yf + af * sq;
        ys = ks * ys + as * sq;
        fmax = EARSHOT_VMAX(fmax, yf);
        smax = EARSHOT_VMAX(smax, ys);
        cmax = EARSHOT_VMAX(cmax, c);
        cmin = EARSHOT_VMIN(cmin, c);
    }
    for (int k = 0; k < L; ++k) z[k] = &m[k]->_w._zc[0];
    c0.store(z);
    for (int k = 0; k < L; ++k) z[k] = &m[k]->_w._zc[1];
    c1.store(z);
    for (int k = 0; k < L; ++k) z[k] = &m[k]->_w._za[0];
    s0.store(z);
    const V cpk = EARSHOT_VMAX(cmax, -cmin);
    for (int k = 0; k < L; ++k) {
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

namespace {
void quad_base(LevelMeter* const* m, const float* const* x, uint32_t n) noexcept {
    LevelMeter::process_pair(*m[0], *m[1], x[0], x[1], n);
    LevelMeter::process_pair(*m[2], *m[3], x[2], x[3], n);
}
using QuadFn = void (*)(LevelMeter* const*, const float* const*, uint32_t) noexcept;
} // namespace

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Four double lanes per ymm register: two stereo mixes per pass.
[[gnu::target("avx2")]] void LevelMeter::quad_avx2(LevelMeter* const* m, const float* const* x,
                                                   uint32_t n) noexcept {
    run_lanes<4>(m, x, n);
}

namespace {
QuadFn pick_quad() noexcept {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? &LevelMeter::quad_avx2 : &quad_base;
}
} // namespace
#else
namespace {
QuadFn pick_quad() noexcept {
    return &quad_base;
}
} // namespace
#endif

namespace {
const QuadFn quad_fn = pick_quad(); // chosen at static initialisation, before any RT cycle
} // namespace

void LevelMeter::process_pair(LevelMeter& a, LevelMeter& b, const float* xa, const float* xb,
                              uint32_t n) noexcept {
    if (a._eardrum || b._eardrum) {
        // The diffuse-field correction runs per channel; this path stays exactly process().
        a.process(xa, n);
        b.process(xb, n);
        return;
    }
    LevelMeter* m[2] = {&a, &b};
    const float* x[2] = {xa, xb};
    run_lanes<2>(m, x, n);
}

void LevelMeter::process_quad(LevelMeter* const* m, const float* const* x, uint32_t n) noexcept {
    if (m[0]->_eardrum || m[1]->_eardrum || m[2]->_eardrum || m[3]->_eardrum) {
        process_pair(*m[0], *m[1], x[0], x[1], n);
        process_pair(*m[2], *m[3], x[2], x[3], n);
        return;
    }
    quad_fn(m, x, n);
}

const char* LevelMeter::quad_kernel_name() noexcept {
    return quad_fn == &quad_base ? "sse2" : "avx2";
}

} // namespace earshot::dsp
