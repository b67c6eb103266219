#include "earshot/dsp/limiter.hpp"

#include "earshot/dsp/units.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace earshot::dsp {

namespace {
// Inputs are sanitised (NaN/Inf/denormal -> 0) and clipped at +120 dBFS before anything else:
// floats beyond that are not audio, and the bound keeps the detector's sums and T/e finite.
constexpr float input_limit = 1.0e6f;
inline float condition(float x) noexcept {
    return std::clamp(sanitize(x), -input_limit, input_limit);
}
} // namespace

void TruePeakLimiter::prepare(double fs_hz, int channels, double lookahead_ms, double release_ms) {
    _channels = std::clamp(channels, 1, max_channels);
    const int delay = TruePeakInterpolator::delay;
    const int total = static_cast<int>(std::lround(lookahead_ms * 1e-3 * fs_hz));
    _box = std::max(8, total - delay - hold);
    _latency = delay + _box + hold;
    _window = _box + 2 * hold + 1;
    // Room for a whole block (process_slow writes up to max_block samples before it reads the
    // delayed ones) on top of the latency and the interpolator's window.
    uint32_t len = 16;
    while (len <
           static_cast<uint32_t>(_latency + TruePeakInterpolator::taps + 1) + TruePeakInterpolator::max_block)
        len *= 2;
    _ring_len = len;
    for (int c = 0; c < max_channels; ++c) _ring[c].assign(2 * static_cast<std::size_t>(len), 0.0f);
    _dq.assign(static_cast<std::size_t>(_window), MinEntry{0, 1.0f});
    _boxv.assign(static_cast<std::size_t>(_box), 1.0f);
    const double tau = std::max(release_ms, 1.0) * 1e-3;
    _a_rel = 1.0 - std::exp(-1.0 / (tau * fs_hz));
    reset();
}

void TruePeakLimiter::set_ceiling(float ceiling) noexcept {
    if (!(ceiling > 0.0f) || !std::isfinite(ceiling)) ceiling = 1e-6f; // fail towards silence
    _ceil = ceiling;
    _target = ceiling;
}

void TruePeakLimiter::reset() noexcept {
    for (auto& r : _ring) std::fill(r.begin(), r.end(), 0.0f);
    _dq_head = _dq_size = 0;
    std::fill(_boxv.begin(), _boxv.end(), 1.0f);
    _box_pos = 0;
    _box_non_unity = 0;
    _box_sum = static_cast<double>(_box);
    _r = 1.0;
    _g = 1.0f;
    _n = 0;
    _pos = 0;
    _quiet_run = 0;
    _stats = Stats{};
}

TruePeakLimiter::Stats TruePeakLimiter::take_stats() noexcept {
    Stats s = _stats;
    _stats = Stats{};
    return s;
}

void TruePeakLimiter::copy_state_from(const TruePeakLimiter& o) noexcept {
    if (o._ring_len != _ring_len || o._box != _box || o._channels != _channels) return;
    for (int c = 0; c < max_channels; ++c) std::copy(o._ring[c].begin(), o._ring[c].end(), _ring[c].begin());
    std::copy(o._dq.begin(), o._dq.end(), _dq.begin());
    _dq_head = o._dq_head;
    _dq_size = o._dq_size;
    std::copy(o._boxv.begin(), o._boxv.end(), _boxv.begin());
    _box_pos = o._box_pos;
    _box_non_unity = o._box_non_unity;
    _box_sum = o._box_sum;
    _r = o._r;
    _g = o._g;
    _n = o._n;
    _pos = o._pos;
    _quiet_run = o._quiet_run;
}

void TruePeakLimiter::process(float* const* io, uint32_t n) noexcept {
    const bool idle = _dq_size == 0 && _r == 1.0 && _box_non_unity == 0;
    if (idle && _quiet_run >= static_cast<uint64_t>(TruePeakInterpolator::taps - 1)) {
        // Fast path: prove that no interval touched by this block can reach T. A NaN or +-Inf
        // sample (its bits at or above those of +Inf) needs the slow path.
        uint32_t bits = 0;
        for (int c = 0; c < _channels; ++c) bits = std::max(bits, abs_max_bits(io[c], n));
        if (!bits_non_finite(bits) && bits_to_float(bits) * _ip.abs_sum_bound() <= _target) {
            fast_delay(io, n);
            return;
        }
    }
    process_slow(io, n);
}

void TruePeakLimiter::fast_delay(float* const* io, uint32_t n) noexcept {
    const uint32_t len = _ring_len, lat = static_cast<uint32_t>(_latency);
    const float cl = _ceil;
    constexpr float tiny = std::numeric_limits<float>::min();
    uint32_t pos = _pos;
    for (int c = 0; c < _channels; ++c) {
        float* ring = _ring[c].data();
        float* x = io[c];
        for (uint32_t i = 0; i < n; ++i) x[i] = std::fabs(x[i]) < tiny ? 0.0f : x[i]; // denormals
        // Through the mirrored ring in segments that do not wrap: store the input in both halves,
        // then read the delayed samples (contiguous thanks to the mirror) back into the buffer.
        uint32_t p = _pos;
        for (uint32_t i = 0; i < n;) {
            // At most len - lat at a time: a longer write would overwrite samples still to be read.
            const uint32_t seg = std::min({n - i, len - p, len - lat});
            std::memcpy(ring + p, x + i, seg * sizeof(float));
            std::memcpy(ring + p + len, x + i, seg * sizeof(float));
            std::memcpy(x + i, ring + p + len - lat, seg * sizeof(float));
            i += seg;
            p = (p + seg) & (len - 1);
        }
        pos = p;
        // The clamp can only act if the ceiling was lowered while samples were in the delay line.
        if (bits_to_float(abs_max_bits(x, n)) > cl) { // (finite: the fast path saw no NaN/Inf)
            for (uint32_t i = 0; i < n; ++i) {
                const float y = std::clamp(x[i], -cl, cl);
                _stats.clamped_samples += y != x[i];
                x[i] = y;
            }
        }
    }
    _pos = pos;
    _n += n;
    _quiet_run += n;
    _g = 1.0f;
}

void TruePeakLimiter::process_slow(float* const* io, uint32_t n) noexcept {
    // In blocks that do not wrap the ring: the vectorisable stages (sanitise and store, the true-peak
    // estimates, the delayed output) run over the whole block; only the gain computation is a
    // per-sample recursion. Every value is computed exactly as a sample-by-sample run would.
    const uint32_t len = _ring_len;
    uint32_t done = 0;
    while (done < n) {
        const uint32_t m = std::min({n - done, len - _pos, TruePeakInterpolator::max_block});
        slow_block(io, done, m);
        done += m;
    }
}

void TruePeakLimiter::slow_block(float* const* io, uint32_t off, uint32_t m) noexcept {
    constexpr uint32_t max_block = TruePeakInterpolator::max_block;
    const uint32_t len = _ring_len;
    const uint32_t lat = static_cast<uint32_t>(_latency);
    const uint32_t win = static_cast<uint32_t>(_window);
    const uint32_t boxlen = static_cast<uint32_t>(_box);
    const float bound = _ip.abs_sum_bound();
    const float T = _target;
    const float cl = _ceil;
    const double inv_box = 1.0 / static_cast<double>(_box);
    constexpr float inf = std::numeric_limits<float>::infinity();
    constexpr uint32_t back = TruePeakInterpolator::taps - 1;
    const uint32_t pos0 = _pos; // pos0 + m <= len: no wrap inside the block

    // 1. Sanitise and store (both halves of the mirror); 2. the true peak of interval i - 6 over
    //    all channels, e[i]; the largest |v| * bound of the block decides the quiet run.
    float e[max_block] = {};
    int last_loud = -1; // last sample of the block that could reach T
    for (int c = 0; c < _channels; ++c) {
        float* ring = _ring[c].data();
        const float* x = io[c] + off;
        for (uint32_t i = 0; i < m; ++i) {
            const float v = condition(x[i]);
            ring[pos0 + i] = v;
            ring[pos0 + i + len] = v;
        }
        for (uint32_t i = 0; i < m; ++i)
            if (std::fabs(ring[pos0 + i]) * bound > T) last_loud = std::max(last_loud, static_cast<int>(i));
        _ip.block_peaks(ring + pos0 + len - back, m, e);
    }
    _quiet_run = last_loud < 0 ? _quiet_run + m : m - 1 - static_cast<uint32_t>(last_loud);

    // 3.-6. Per sample: required gain, sliding minimum, release, box average.
    float gains[max_block];
    for (uint32_t i = 0; i < m; ++i) {
        // 3. Required gain for this interval. NaN or Inf (overflow of huge floats) -> silence.
        float greq = 1.0f;
        if (!(e[i] <= T)) greq = (e[i] < inf) ? T / e[i] : 0.0f;

        // 4. Sliding minimum over the last W values (monotonic deque; 1.0 is never stored).
        const uint64_t idx = _n + i;
        if (_dq_size != 0 && _dq[_dq_head].idx + win <= idx) {
            _dq_head = _dq_head + 1 == win ? 0 : _dq_head + 1;
            --_dq_size;
        }
        if (greq < 1.0f) {
            while (_dq_size != 0) {
                uint32_t tail = _dq_head + _dq_size - 1;
                if (tail >= win) tail -= win;
                if (_dq[tail].v >= greq)
                    --_dq_size;
                else
                    break;
            }
            uint32_t slot = _dq_head + _dq_size;
            if (slot >= win) slot -= win;
            _dq[slot] = MinEntry{idx, greq};
            ++_dq_size;
        }
        const double mn = _dq_size != 0 ? static_cast<double>(_dq[_dq_head].v) : 1.0;

        // 5. Release: attack is instant (r <= m always), recovery is a one-pole towards m.
        if (mn <= _r) {
            _r = mn;
        } else {
            _r += _a_rel * (mn - _r);
            if (_r > mn) _r = mn;
            if (mn == 1.0 && _r > 1.0 - 1e-6) _r = 1.0;
        }

        // 6. Box average of the last L release outputs (stored as float, rounded down so that
        //    the stored value never exceeds r).
        const float old = _boxv[_box_pos];
        float rf = static_cast<float>(_r);
        if (static_cast<double>(rf) > _r) rf = std::nextafter(rf, 0.0f);
        _box_non_unity -= old < 1.0f;
        _boxv[_box_pos] = rf;
        _box_non_unity += rf < 1.0f;
        _box_sum += static_cast<double>(rf) - static_cast<double>(old);
        _box_pos = _box_pos + 1 == boxlen ? 0 : _box_pos + 1;
        float g;
        if (_box_non_unity == 0) {
            _box_sum = static_cast<double>(_box);
            g = 1.0f;
        } else {
            g = static_cast<float>(_box_sum * inv_box);
            if (g > 1.0f) g = 1.0f;
        }
        gains[i] = g;
        if (g < 1.0f) {
            ++_stats.active_samples;
            if (g < _stats.min_gain) _stats.min_gain = g;
        }
    }
    _g = gains[m - 1];

    // 7. Delayed sample times gain, then the final clamp at the ceiling. (The delayed samples were
    //    written at least `lat` samples before: the ring holds lat + max_block + window.)
    for (int c = 0; c < _channels; ++c) {
        const float* d = _ring[c].data() + pos0 + len - lat;
        float* y = io[c] + off;
        uint32_t clamped = 0;
        for (uint32_t i = 0; i < m; ++i) {
            const float v = d[i] * gains[i];
            const float vc = std::clamp(v, -cl, cl);
            clamped += vc != v;
            y[i] = vc;
        }
        _stats.clamped_samples += clamped;
    }
    _pos = (pos0 + m) & (len - 1);
    _n += m;
}

} // namespace earshot::dsp
