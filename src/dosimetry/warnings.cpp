// Dose and loudness warnings: thresholds with hysteresis, momentary hold-off (docs/protection.md).
#include "earshot/dosimetry/warnings.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace earshot::dosimetry {

const char* to_string(WarningKind k) noexcept {
    switch (k) {
    case WarningKind::niosh_daily:
        return "niosh_daily";
    case WarningKind::who_weekly:
        return "who_weekly";
    case WarningKind::momentary_cap:
        return "momentary_cap";
    case WarningKind::momentary_rs2:
        return "momentary_rs2";
    }
    return "?";
}

DoseWarnings::DoseWarnings(WarningSettings s) : _s(std::move(s)) {
    // Keep only positive finite thresholds, ascending, without duplicates.
    auto& t = _s.thresholds_pct;
    t.erase(std::remove_if(t.begin(), t.end(), [](double v) { return !(v > 0.0) || !std::isfinite(v); }),
            t.end());
    std::sort(t.begin(), t.end());
    t.erase(std::unique(t.begin(), t.end()), t.end());
    if (!(_s.repeat_every_pct > 0.0) || !std::isfinite(_s.repeat_every_pct)) _s.repeat_every_pct = 0.0;
    _s.hysteresis = std::clamp(std::isfinite(_s.hysteresis) ? _s.hysteresis : 0.05, 0.0, 0.5);
    if (!(_s.holdoff_s >= 0.0)) _s.holdoff_s = 10.0;
}

double DoseWarnings::threshold(int i) const noexcept {
    const auto& t = _s.thresholds_pct;
    const int n = static_cast<int>(t.size());
    if (i < n) return t[static_cast<std::size_t>(i)];
    if (_s.repeat_every_pct <= 0.0) return std::numeric_limits<double>::infinity();
    const double last = n > 0 ? t.back() : 0.0;
    return last + _s.repeat_every_pct * static_cast<double>(i - n + 1);
}

double DoseWarnings::next_threshold(WarningKind k) const noexcept {
    if (k == WarningKind::niosh_daily) return threshold(_niosh.next);
    if (k == WarningKind::who_weekly) return threshold(_who.next);
    return std::numeric_limits<double>::infinity();
}

void DoseWarnings::dose(WarningKind k, Armed& a, double value, std::vector<Warning>& out) {
    if (std::isnan(value)) return;
    // Re-arm: every fired threshold the value has fallen clearly below (the highest first).
    while (a.next > 0 && value < threshold(a.next - 1) * (1.0 - _s.hysteresis)) --a.next;
    // Fire: every armed threshold the value has reached, in ascending order.
    for (int n = 0; n < max_events_per_update && value >= threshold(a.next); ++n) {
        out.push_back({k, threshold(a.next), value, 0.0});
        ++a.next;
    }
    // A runaway value (or an absurd jump): the thresholds passed without a warning count as fired.
    while (value >= threshold(a.next)) ++a.next;
}

void DoseWarnings::update(double niosh_pct, double who_pct, std::vector<Warning>& out) {
    dose(WarningKind::niosh_daily, _niosh, niosh_pct, out);
    dose(WarningKind::who_weekly, _who, who_pct, out);
}

void DoseWarnings::prime(double niosh_pct, double who_pct) noexcept {
    auto set = [this](Armed& a, double v) {
        if (std::isnan(v)) return;
        a.next = 0;
        while (v >= threshold(a.next)) ++a.next;
    };
    set(_niosh, niosh_pct);
    set(_who, who_pct);
}

void DoseWarnings::momentary(double t_s, double laeq_1s_dba, double cap_dba, double rs2_dba,
                             std::vector<Warning>& out) {
    if (!std::isfinite(laeq_1s_dba)) return;
    auto check = [&](WarningKind k, double limit, double margin, double& last, bool& fired) {
        if (!std::isfinite(limit) || !(laeq_1s_dba > limit + margin)) return;
        if (fired && t_s - last < _s.holdoff_s) return;
        out.push_back({k, limit, laeq_1s_dba, t_s});
        last = t_s;
        fired = true;
    };
    check(WarningKind::momentary_cap, cap_dba, _s.cap_margin_db, _last_cap, _fired_cap);
    check(WarningKind::momentary_rs2, rs2_dba, _s.rs2_margin_db, _last_rs2, _fired_rs2);
}

void DoseWarnings::reset() noexcept {
    _niosh = _who = Armed{};
    _last_cap = _last_rs2 = 0.0;
    _fired_cap = _fired_rs2 = false;
}

} // namespace earshot::dosimetry
