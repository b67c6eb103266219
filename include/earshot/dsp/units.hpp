// earshot::dsp units — decibel conversions and the sample-sanitising helpers.
//
// Thread contract: every function here is pure, noexcept and RT-safe.
// Conventions: "dBFS" is a *peak* level re amplitude 1.0 (SPEC §2); an RMS level re
// a full-scale square is written "dB RMS". Calibration maps a digital peak of P dBFS
// to a peak SPL of P + offset_db (see config::calibration_offset_db).
//
//   float g = dsp::db_to_gain(-6.0);      // 0.501
//   double l = dsp::gain_to_db(0.5);      // -6.02
//   float s = dsp::sanitize(x);           // NaN/Inf -> 0, denormal -> 0
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace earshot::dsp {

/// Gains at or below this level are "off": a ramp that reaches it snaps to exactly 0.
inline constexpr double gain_off_db = -120.0;
/// 10*log10(2): the peak-to-RMS ratio of a sine in dB.
inline constexpr double sine_crest_db = 3.010299956639812;
/// Squared reference pressure p0^2 = (20 uPa)^2 in Pa^2.
inline constexpr double p0_squared = 4.0e-10;

/// dB -> linear amplitude. -inf and anything <= gain_off_db give exactly 0. [RT-safe]
inline double db_to_gain(double db) noexcept {
    if (!(db > gain_off_db)) return 0.0;
    return std::pow(10.0, db / 20.0);
}

/// Linear amplitude -> dB; 0 (or negative) gives -inf. [RT-safe]
inline double gain_to_db(double g) noexcept {
    if (!(g > 0.0)) return -std::numeric_limits<double>::infinity();
    return 20.0 * std::log10(g);
}

/// Mean square -> dB (10 log10). 0 gives -inf. [RT-safe]
inline double power_to_db(double ms) noexcept {
    if (!(ms > 0.0)) return -std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(ms);
}

/// Replaces NaN, +-Inf and subnormal values by 0. Branch-light; [RT-safe].
inline float sanitize(float x) noexcept {
    // A finite, normal float or zero passes; the rest becomes 0. |x| < FLT_MIN covers subnormals.
    const float a = std::fabs(x);
    return (a <= std::numeric_limits<float>::max() && a >= std::numeric_limits<float>::min()) ? x : 0.0f;
}

/// Clamps x to [-limit, limit]; NaN becomes 0. [RT-safe]
inline float clamp_abs(float x, float limit) noexcept {
    if (!(x == x)) return 0.0f;
    return x > limit ? limit : (x < -limit ? -limit : x);
}

} // namespace earshot::dsp

namespace earshot::dsp {

/// max |x[i]| over a block, as the bit pattern of a non-negative float: the bits of a float with its
/// sign cleared order like the values, and every NaN or +-Inf is at or above 0x7f800000. An integer
/// max, so it vectorises (a float max reduction would need -ffast-math); AVX2 where the CPU has
/// it. [RT-safe]
uint32_t abs_max_bits(const float* x, uint32_t n) noexcept;
/// True if abs_max_bits() saw a NaN or an infinity. [RT-safe]
inline bool bits_non_finite(uint32_t m) noexcept {
    return m >= 0x7f800000u;
}
/// The amplitude abs_max_bits() found (only meaningful when !bits_non_finite(m)). [RT-safe]
inline float bits_to_float(uint32_t m) noexcept {
    float f;
    std::memcpy(&f, &m, sizeof f);
    return f;
}

} // namespace earshot::dsp
