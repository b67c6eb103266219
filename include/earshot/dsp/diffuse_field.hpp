// earshot::dsp::DiffuseFieldCorrection — eardrum (ear simulator / coupler) level -> diffuse-field
// equivalent level, applied before A/C weighting for musicians calibrated with
// `reference: eardrum` (SPEC §2, hearing-dose.md §4.3).
//
// The target is minus the "DF -> eardrum" row of hearing-dose.md §4.3 (ANSI S3.4-2007 outer-ear
// table, as used in the Moore/Glasberg loudness model; 0 dB below 100 Hz). It is realised as six
// peaking sections whose analog parameters were fitted to that table by least squares (max error
// 0.10 dB at the 23 table frequencies, 100 Hz - 16 kHz; docs/dosimetry.md) and mapped to the actual
// sample rate as digital peaking sections at the same centre frequency and octave bandwidth
// (bandwidth prewarped for the bilinear transform).
//
// Thread contract: prepare() [control thread]; process()/reset() noexcept [RT-safe].
//
//   DiffuseFieldCorrection df; df.prepare(48000);
//   double field = df.process(eardrum_sample);
#pragma once

#include "earshot/dsp/weighting.hpp"

#include <array>

namespace earshot::dsp {

class DiffuseFieldCorrection {
public:
    static constexpr int sections = 6;
    /// The table it approximates: frequencies (Hz) and DF -> eardrum gains (dB).
    static constexpr int table_size = 23;
    static const double table_hz[table_size];
    static const double table_db[table_size];

    void prepare(double fs_hz);
    void reset() noexcept {
        for (auto& z : _z) z = {0.0, 0.0};
    }
    double process(double x) noexcept {
        for (int i = 0; i < sections; ++i) {
            const BiquadCoeffs& s = _s[static_cast<std::size_t>(i)];
            auto& z = _z[static_cast<std::size_t>(i)];
            const double y = s.b0 * x + z[0];
            z[0] = s.b1 * x - s.a1 * y + z[1];
            z[1] = s.b2 * x - s.a2 * y;
            x = y;
        }
        return x;
    }
    /// The designed digital correction at f (Hz), dB (negative: eardrum -> field). [any thread]
    double response_db(double f_hz) const noexcept;
    /// The analog fitted correction at f (Hz), dB. [any thread]
    static double analog_db(double f_hz) noexcept;
    bool finite() const noexcept;
    const BiquadCoeffs& section(int i) const noexcept { return _s[static_cast<std::size_t>(i)]; }

private:
    double _fs = 48000;
    std::array<BiquadCoeffs, sections> _s{};
    std::array<std::array<double, 2>, sections> _z{};
};

} // namespace earshot::dsp
