// earshot::dsp::GainRamp — a declicked gain: linear ramps from the current gain to a target.
//
// Every fader, mute, pan, scene, start-up and reconnect gain in earshot goes through a GainRamp
// (SPEC §3.2 "no jumps"). A change sets a new target; the gain then moves linearly to it over
// `ramp_samples` samples, so the largest sample-to-sample change caused by the ramp is
// |target - current| / ramp_samples times the signal's peak. When the ramp ends the gain
// snaps exactly to the target and the unit goes idle (a constant multiply, or a skip at 0).
//
// Thread contract: prepare() and set_ramp_samples() [control thread, before use];
// set_target(), process*() and reset() are [RT-safe] and never allocate.
//
//   GainRamp g; g.set_ramp_samples(960); g.reset(0.0f);
//   g.set_target(1.0f);                    // ramps up over 20 ms at 48 kHz
//   g.apply(buf, n);                       // buf *= gain, ramped
#pragma once

#include <cstdint>

namespace earshot::dsp {

class GainRamp {
public:
    /// Sets the ramp length (>= 1 sample). Takes effect at the next set_target(). [RT-safe]
    void set_ramp_samples(uint32_t n) noexcept { _ramp_len = n > 0 ? n : 1; }
    uint32_t ramp_samples() const noexcept { return _ramp_len; }

    /// Jumps to g immediately (only for units that are not yet audible). [RT-safe]
    void reset(float g) noexcept {
        _cur = g;
        _target = g;
        _step = 0.0f;
        _left = 0;
    }

    /// Starts a linear ramp from the current gain to g over ramp_samples(). [RT-safe]
    void set_target(float g) noexcept {
        if (g == _target && _left == 0) return;
        _target = g;
        _left = _ramp_len;
        _step = (g - _cur) / static_cast<float>(_ramp_len);
    }

    float current() const noexcept { return _cur; }
    float target() const noexcept { return _target; }
    bool ramping() const noexcept { return _left != 0; }
    /// True when the gain is exactly 0 and will stay there: callers may skip the work.
    bool silent() const noexcept { return _left == 0 && _cur == 0.0f; }

    /// Advances the ramp by one sample and returns the gain for that sample. [RT-safe]
    float next() noexcept {
        if (_left == 0) return _cur;
        // Position-based (target - step * remaining): no accumulated rounding, exact arrival.
        --_left;
        _cur = _target - _step * static_cast<float>(_left);
        return _cur;
    }

    /// buf[i] *= gain(i) for n samples. [RT-safe]
    void apply(float* buf, uint32_t n) noexcept;
    /// dst[i] += gain(i) * src[i] for n samples. [RT-safe]
    void mix_into(float* dst, const float* src, uint32_t n) noexcept;
    /// Writes the per-sample gains to g[0..n). [RT-safe]
    void fill(float* g, uint32_t n) noexcept;

private:
    float _cur = 0.0f;      // gain applied to the last sample, linear
    float _target = 0.0f;   // gain the ramp is heading for, linear
    float _step = 0.0f;     // per-sample increment while ramping
    uint32_t _left = 0;     // samples left in the ramp (0 = idle)
    uint32_t _ramp_len = 1; // ramp length in samples
};

} // namespace earshot::dsp
