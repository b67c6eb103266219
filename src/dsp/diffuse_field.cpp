#include "earshot/dsp/diffuse_field.hpp"

#include <cmath>

namespace earshot::dsp {

namespace {

constexpr double pi = 3.14159265358979323846;

// Peaking sections {f0 Hz, gain dB, Q} of H(s) = (s^2 + s (A/Q) w0 + w0^2) / (s^2 + s / (A Q) w0 + w0^2),
// A = 10^(gain/40), fitted offline to -(DF -> eardrum) (Levenberg-Marquardt on the dB error at the 23
// table frequencies; the fit script is reproduced in docs/dosimetry.md).
struct Peak {
    double f0, gain_db, q;
};
constexpr Peak fitted[DiffuseFieldCorrection::sections] = {
    {2744.456, -11.322, 1.521}, {4480.179, -6.184, 3.010}, {7352.420, -6.327, 2.429},
    {2052.859, -4.085, 0.428},  {393.664, -0.681, 1.800},  {12064.180, -2.222, 1.914},
};

double peak_analog_db(const Peak& p, double f) {
    const double A = std::pow(10.0, p.gain_db / 40.0), w = f / p.f0;
    const double num = (1 - w * w) * (1 - w * w) + (w * A / p.q) * (w * A / p.q);
    const double den = (1 - w * w) * (1 - w * w) + (w / (A * p.q)) * (w / (A * p.q));
    return 10.0 * std::log10(num / den);
}

} // namespace

const double DiffuseFieldCorrection::table_hz[table_size] = {100,  125,  160,  200,  250,   315,   400,  500,
                                                             630,  800,  1000, 1250, 1600,  2000,  2500, 3150,
                                                             4000, 5000, 6300, 8000, 10000, 12500, 16000};
const double DiffuseFieldCorrection::table_db[table_size] = {0.0,  0.1,  0.3, 0.4, 0.5, 1.0,  1.6,  1.7,
                                                             2.2,  2.9,  3.8, 5.3, 7.2, 10.2, 14.9, 14.4,
                                                             12.7, 10.8, 8.7, 8.5, 5.0, 4.0,  2.0};

double DiffuseFieldCorrection::analog_db(double f_hz) noexcept {
    double s = 0;
    for (const Peak& p : fitted) s += peak_analog_db(p, f_hz);
    return s;
}

void DiffuseFieldCorrection::prepare(double fs_hz) {
    _fs = fs_hz;
    for (int i = 0; i < sections; ++i) {
        const Peak& p = fitted[i];
        BiquadCoeffs& s = _s[static_cast<std::size_t>(i)];
        // Bilinear transform with the centre frequency prewarped; above ~0.45 fs the section is
        // not realisable and is left out (at 44.1 kHz all six fit: the highest is 12.1 kHz).
        if (p.f0 >= 0.45 * fs_hz) {
            s = BiquadCoeffs{};
            continue;
        }
        // Digital peaking section at f0 with the analog bandwidth kept in octaves: the bilinear
        // transform squeezes bandwidth towards Nyquist, so the octave bandwidth is stretched by
        // w0 / sin(w0) (the usual warping compensation for peaking EQs).
        const double A = std::pow(10.0, p.gain_db / 40.0);
        const double w0 = 2.0 * pi * p.f0 / fs_hz;
        const double bw_oct = 2.0 / std::log(2.0) * std::asinh(1.0 / (2.0 * p.q));
        const double alpha = std::sin(w0) * std::sinh(std::log(2.0) / 2.0 * bw_oct * w0 / std::sin(w0));
        const double a0 = 1.0 + alpha / A;
        s.b0 = (1.0 + alpha * A) / a0;
        s.b1 = -2.0 * std::cos(w0) / a0;
        s.b2 = (1.0 - alpha * A) / a0;
        s.a1 = -2.0 * std::cos(w0) / a0;
        s.a2 = (1.0 - alpha / A) / a0;
    }
    reset();
}

double DiffuseFieldCorrection::response_db(double f_hz) const noexcept {
    return cascade_response_db(_s.data(), sections, 1.0, f_hz, _fs);
}

bool DiffuseFieldCorrection::finite() const noexcept {
    double s = 0;
    for (const auto& z : _z) s += z[0] + z[1];
    return std::isfinite(s);
}

} // namespace earshot::dsp
