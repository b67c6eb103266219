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

double DoseWarnings::threshold(int64_t i) const noexcept {
    const auto& t = _s.thresholds_pct;
    const int64_t n = static_cast<int64_t>(t.size());
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

int64_t DoseWarnings::count_at_or_below(double v) const noexcept {
    const auto& t = _s.thresholds_pct;
    const int64_t n = static_cast<int64_t>(t.size());
    if (!(v >= threshold(0))) return 0; // also NaN
    // A first guess straight from the list or the repeat step (no loop over the thresholds: a
    // runaway value of 1e13 % costs the same as 120 %), then at most a step either way for rounding.
    int64_t k = n;
    if (n > 0 && v < t.back()) {
        k = static_cast<int64_t>(std::upper_bound(t.begin(), t.end(), v) - t.begin());
    } else if (_s.repeat_every_pct > 0.0) {
        const double last = n > 0 ? t.back() : 0.0;
        const double j = std::floor((v - last) / _s.repeat_every_pct);
        k = n + static_cast<int64_t>(std::clamp(j, 0.0, static_cast<double>(max_index - n)));
    }
    while (k > 0 && threshold(k - 1) > v) --k;
    while (k < max_index && threshold(k) <= v) ++k;
    return k;
}

void DoseWarnings::dose(WarningKind k, Armed& a, double value, std::vector<Warning>& out) {
    if (std::isnan(value)) return;
    // Re-arm: every fired threshold the value has fallen clearly below, i.e. keep the fired ones
    // with threshold * (1 - hysteresis) <= value (computed, then checked exactly).
    const double keep_below = _s.hysteresis < 1.0 ? value / (1.0 - _s.hysteresis) : value;
    int64_t keep = std::min(a.next, count_at_or_below(keep_below));
    while (keep > 0 && value < threshold(keep - 1) * (1.0 - _s.hysteresis)) --keep;
    while (keep < a.next && !(value < threshold(keep) * (1.0 - _s.hysteresis))) ++keep;
    a.next = keep;
    // Fire: every armed threshold the value has reached, in ascending order.
    for (int n = 0; n < max_events_per_update && a.next < max_index && value >= threshold(a.next); ++n) {
        out.push_back({k, threshold(a.next), value, 0.0});
        ++a.next;
    }
    // A runaway value (or an absurd jump): the thresholds passed without a warning count as fired.
    a.next = std::max(a.next, count_at_or_below(value));
}

void DoseWarnings::update(double niosh_pct, double who_pct, std::vector<Warning>& out) {
    dose(WarningKind::niosh_daily, _niosh, niosh_pct, out);
    dose(WarningKind::who_weekly, _who, who_pct, out);
}

void DoseWarnings::prime(double niosh_pct, double who_pct) noexcept {
    if (!std::isnan(niosh_pct)) _niosh.next = count_at_or_below(niosh_pct);
    if (!std::isnan(who_pct)) _who.next = count_at_or_below(who_pct);
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
