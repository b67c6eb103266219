#include "earshot/dosimetry/dose.hpp"

#include <algorithm>
#include <cmath>

namespace earshot::dosimetry {

namespace {
constexpr double inf = std::numeric_limits<double>::infinity();
}

double pa2(double level_db) noexcept {
    if (!(level_db > -inf)) return 0.0;
    return p0_sq * std::pow(10.0, level_db / 10.0);
}

double level_db(double pa2_value) noexcept {
    if (!(pa2_value > 0.0)) return -inf;
    return 10.0 * std::log10(pa2_value / p0_sq);
}

double energy_sum_db(double a_db, double b_db) noexcept {
    return level_db(pa2(a_db) + pa2(b_db));
}

double niosh_allowed_h(double level_dba) noexcept {
    return 8.0 / std::pow(2.0, (level_dba - 85.0) / 3.0);
}
double osha_allowed_h(double level_dba) noexcept {
    return 8.0 / std::pow(2.0, (level_dba - 90.0) / 5.0);
}
double niosh_twa(double dose_pct) noexcept {
    return 10.0 * std::log10(dose_pct / 100.0) + 85.0;
}
double osha_twa(double dose_pct) noexcept {
    return 16.61 * std::log10(dose_pct / 100.0) + 90.0;
}

void DoseTotals::add(double laeq_dba, double lcpeak_dbc, double seconds) noexcept {
    if (!(seconds > 0.0)) return;
    _seconds += seconds;
    if (std::isfinite(lcpeak_dbc)) _lcpeak = std::max(_lcpeak, lcpeak_dbc);
    if (!(laeq_dba > -inf) || std::isnan(laeq_dba)) return;
    const double h = seconds / 3600.0;
    _pa2s += pa2(laeq_dba) * seconds;
    _niosh += 100.0 * h / niosh_allowed_h(laeq_dba);
    if (laeq_dba >= 90.0) _osha += 100.0 * h / osha_allowed_h(laeq_dba);
    if (laeq_dba >= 80.0) _osha_action += 100.0 * h / osha_allowed_h(laeq_dba);
}

DoseTotals DoseTotals::from_parts(double seconds, double pa2s, double niosh_pct, double osha_pct,
                                  double osha_action_pct, double lcpeak_dbc) noexcept {
    DoseTotals d;
    d._seconds = seconds;
    d._pa2s = pa2s;
    d._niosh = niosh_pct;
    d._osha = osha_pct;
    d._osha_action = osha_action_pct;
    if (std::isfinite(lcpeak_dbc)) d._lcpeak = lcpeak_dbc;
    return d;
}

void DoseTotals::merge(const DoseTotals& o) noexcept {
    _seconds += o._seconds;
    _pa2s += o._pa2s;
    _niosh += o._niosh;
    _osha += o._osha;
    _osha_action += o._osha_action;
    _lcpeak = std::max(_lcpeak, o._lcpeak);
}

double DoseTotals::laeq_dba() const noexcept {
    if (!(_seconds > 0.0)) return -inf;
    return level_db(_pa2s / _seconds);
}

double DoseTotals::eu_lex8h_dba() const noexcept {
    return level_db(_pa2s / (8.0 * 3600.0));
}

double seconds_to_full(double used_pct, double allowed_h_at_level) noexcept {
    if (used_pct >= 100.0) return 0.0;
    if (!(allowed_h_at_level < inf)) return inf;
    return (100.0 - used_pct) / 100.0 * allowed_h_at_level * 3600.0;
}

double who_seconds_to_full(double used_pa2h, double level_dba, double allowance_pa2h) noexcept {
    if (used_pa2h >= allowance_pa2h) return 0.0;
    const double p = pa2(level_dba);
    if (!(p > 0.0)) return inf;
    return (allowance_pa2h - used_pa2h) / p * 3600.0;
}

} // namespace earshot::dosimetry
