// earshot::dosimetry dose accounting — NIOSH, OSHA, EU and WHO/H.870 figures from per-interval
// A-weighted levels (hearing-dose.md §1, §2.1, §7; SPEC §4).
//
// Input: intervals (normally 1 s) of a musician's exposure, each with its duration, its LAeq in
// field-equivalent dBA (the louder ear, leak included) and its LCpeak. All figures are accumulated per
// interval, so the per-interval forms of NIOSH (2^((L-85)/3)) and OSHA (thresholds) are exact:
//   NIOSH %  = 100 * sum( dt_h / (8 / 2^((L - 85)/3)) )                       3 dB exchange, no threshold
//   OSHA %   = 100 * sum over L >= 90 of dt_h / (8 / 2^((L - 90)/5))          PEL (threshold 90 dBA)
//   OSHA action % = same with threshold 80 dBA                                 hearing conservation
//   E [Pa^2 h] = sum( 4e-10 * 10^(L/10) * dt_h )
//   EU LEX,8h = 10 log10( E / (8 h * 4e-10) )
//   WHO weekly % = 100 * E_7days / 1.6 Pa^2 h (mode 1) or / 0.51 Pa^2 h (mode 2, "sensitive")
//
// Thread contract: plain value types, control/dosimetry thread only.
//
//   DoseTotals d; d.add(94.0, 97.0, 60.0);     // 60 s at 94 dBA, LCpeak 97 dBC
//   d.niosh_pct();                              // 1.667
#pragma once

#include <cstdint>
#include <limits>

namespace earshot::dosimetry {

inline constexpr double p0_sq = 4.0e-10;      // Pa^2
inline constexpr double who_mode1_pa2h = 1.6; // 80 dBA for 40 h
// H.870 mode 2 ("0.51 Pa^2 h"): defined as 75 dBA for 40 h = 4e-10 * 10^7.5 * 40 = 0.50596 Pa^2 h;
// the exact value is used so that 75 dBA x 40 h reads 100 % (hearing-dose.md §7.4).
inline constexpr double who_mode2_pa2h = 0.505964425626941;

/// Squared pressure for a level in dB: 4e-10 * 10^(L/10) Pa^2 (0 for -inf).
double pa2(double level_db) noexcept;
/// Level in dB for a squared pressure (-inf for 0).
double level_db(double pa2_value) noexcept;
/// Energy sum of two levels in dB (leak + mix): 10 log10(10^(a/10) + 10^(b/10)).
double energy_sum_db(double a_db, double b_db) noexcept;

/// NIOSH allowed time at level L, hours: 8 / 2^((L - 85)/3).
double niosh_allowed_h(double level_dba) noexcept;
/// OSHA allowed time at level L, hours: 8 / 2^((L - 90)/5).
double osha_allowed_h(double level_dba) noexcept;
/// TWA from a NIOSH dose: 10 log10(D/100) + 85. From an OSHA dose: 16.61 log10(D/100) + 90.
double niosh_twa(double dose_pct) noexcept;
double osha_twa(double dose_pct) noexcept;

/// Accumulated figures over a span (a dose day, a render, a week's energy).
class DoseTotals {
public:
    /// Adds an interval of `seconds` at LAeq `laeq_dba` with peak `lcpeak_dbc` (may be -inf).
    void add(double laeq_dba, double lcpeak_dbc, double seconds) noexcept;
    /// Totals from logged parts (a rebuild from exposure-log rows).
    static DoseTotals from_parts(double seconds, double pa2s, double niosh_pct, double osha_pct,
                                 double osha_action_pct, double lcpeak_dbc) noexcept;
    /// Adds another span's totals.
    void merge(const DoseTotals& o) noexcept;

    double seconds() const noexcept { return _seconds; }
    double pa2h() const noexcept { return _pa2s / 3600.0; }
    double pa2s() const noexcept { return _pa2s; }
    double niosh_pct() const noexcept { return _niosh; }
    double osha_pct() const noexcept { return _osha; }
    double osha_action_pct() const noexcept { return _osha_action; }
    /// LAeq over the accumulated time (-inf when empty or silent).
    double laeq_dba() const noexcept;
    /// EU LEX,8h (ISO 1999 / 2003/10/EC) in dB(A).
    double eu_lex8h_dba() const noexcept;
    double lcpeak_max_dbc() const noexcept { return _lcpeak; }
    /// Percentage of the WHO/H.870 weekly allowance this energy alone represents.
    double who_pct(double allowance_pa2h = who_mode1_pa2h) const noexcept {
        return 100.0 * pa2h() / allowance_pa2h;
    }

private:
    double _seconds = 0;
    double _pa2s = 0;
    double _niosh = 0;
    double _osha = 0;
    double _osha_action = 0;
    double _lcpeak = -std::numeric_limits<double>::infinity();
};

/// Time until a dose reaches 100 % if exposure continues at `level_dba`, in seconds (+inf when the
/// level is -inf). `used_pct` is the dose so far; allowed_h the standard's allowed time at that level.
double seconds_to_full(double used_pct, double allowed_h_at_level) noexcept;
/// Same for the WHO weekly allowance: remaining energy / current power.
double who_seconds_to_full(double used_pa2h, double level_dba,
                           double allowance_pa2h = who_mode1_pa2h) noexcept;

} // namespace earshot::dosimetry
