// Dose budget guard: highest steady level for a budget, and the rate-limited controller
// (docs/protection.md).
#include "earshot/dosimetry/guard.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace earshot::dosimetry {

namespace {
constexpr double inf = std::numeric_limits<double>::infinity();

bool usable(double x) noexcept {
    return std::isfinite(x);
}
} // namespace

double niosh_level_for(double dose_pct_so_far, double seconds_left, double budget_pct) noexcept {
    const double left = budget_pct - dose_pct_so_far;
    if (!(left > 0.0)) return -inf; // used up (or NaN input: nothing is safe)
    if (!(seconds_left > 0.0) || left == inf) return inf;
    // 100 t / (8 / 2^((L - 85)/3)) = left  ->  L = 85 + 3 log2(8 left / (100 t)), t in hours.
    return 85.0 + 3.0 * std::log2(8.0 * left / (100.0 * seconds_left / 3600.0));
}

double who_level_for(double week_pa2h_so_far, double seconds_left, double allowance_pa2h,
                     double budget_pct) noexcept {
    const double left = allowance_pa2h * budget_pct / 100.0 - week_pa2h_so_far; // Pa^2 h
    if (!(left > 0.0)) return -inf;
    if (!(seconds_left > 0.0) || left == inf) return inf;
    return level_db(left / (seconds_left / 3600.0));
}

double niosh_projected_pct(double dose_pct_so_far, double level_dba, double seconds_left) noexcept {
    if (!(seconds_left > 0.0) || level_dba == -inf) return dose_pct_so_far;
    return dose_pct_so_far + 100.0 * (seconds_left / 3600.0) / niosh_allowed_h(level_dba);
}

double who_projected_pct(double week_pa2h_so_far, double level_dba, double seconds_left,
                         double allowance_pa2h) noexcept {
    const double e = seconds_left > 0.0 ? pa2(level_dba) * seconds_left / 3600.0 : 0.0;
    return 100.0 * (week_pa2h_so_far + e) / allowance_pa2h;
}

DoseGuard::DoseGuard(const GuardSettings& s) {
    configure(s);
}

void DoseGuard::configure(const GuardSettings& s) {
    _s = s;
    _s.budget_pct = _s.budget_pct > 0.0 ? _s.budget_pct : 100.0; // also NaN -> 100
    _s.who_allowance_pa2h = _s.who_allowance_pa2h > 0.0 ? _s.who_allowance_pa2h : who_mode1_pa2h;
    _s.rate_db_per_s = _s.rate_db_per_s > 0.0 ? std::min(_s.rate_db_per_s, 1.0) : 1.0 / 30.0;
    _s.depth_db = _s.depth_db >= 0.0 ? std::min(_s.depth_db, max_depth_db) : 12.0;
    _s.plan_margin_pct = _s.plan_margin_pct >= 0.0 ? std::min(_s.plan_margin_pct, 20.0) : 1.0;
    _s.release_db_per_s = _s.release_db_per_s > 0.0 ? std::min(_s.release_db_per_s, 10.0) : 1.0;
}

void DoseGuard::suspend(std::string who, double when_utc) {
    _suspended = true;
    _suspended_by = std::move(who);
    _suspended_at = when_utc;
}

void DoseGuard::resume() noexcept {
    _suspended = false;
}

void DoseGuard::reset() noexcept {
    _ring = {};
    _pos = _count = 0;
    _atten = _needed = 0.0;
    _allowed = inf;
    _level_u = -inf;
    _projected = std::numeric_limits<double>::quiet_NaN();
}

double DoseGuard::update(const GuardInput& in) {
    const double dt = in.seconds > 0.0 && in.seconds < 3600.0 ? in.seconds : 0.0; // NaN -> 0
    // 1. The interval before the guard: the level heard plus the attenuation it was heard with.
    if (dt > 0.0) {
        const double applied = usable(in.applied_db) ? in.applied_db : _atten;
        const double heard = usable(in.level_dba) ? in.level_dba : -inf; // NaN/-inf: silence
        Slot& s = _ring[static_cast<std::size_t>(_pos)];
        s.mix_pa2s = heard == -inf ? 0.0 : pa2(heard + applied) * dt;
        s.leak_pa2s = usable(in.leak_dba) ? pa2(in.leak_dba) * dt : 0.0;
        s.seconds = dt;
        _pos = _pos + 1 == window ? 0 : _pos + 1;
        _count = std::min(_count + 1, window);
    }
    double mix = 0.0, leak = 0.0, secs = 0.0;
    for (const Slot& s : _ring) {
        mix += s.mix_pa2s;
        leak += s.leak_pa2s;
        secs += s.seconds;
    }
    const double mix_p2 = secs > 0.0 ? mix / secs : 0.0;   // Pa^2, unattenuated mix
    const double leak_p2 = secs > 0.0 ? leak / secs : 0.0; // Pa^2, leak
    _level_u = level_db(mix_p2 + leak_p2);

    // 2. The highest steady level that fits the budget (less the planning margin), and the
    //    attenuation of the mix that brings the average there (the leak stays as it is).
    const double plan_pct = _s.budget_pct * (1.0 - _s.plan_margin_pct / 100.0);
    const double t_left = in.seconds_left > 0.0 ? in.seconds_left : 0.0; // NaN -> 0
    const double niosh = usable(in.niosh_pct) ? in.niosh_pct : 0.0;
    const double week = usable(in.week_pa2h) ? in.week_pa2h : 0.0;
    _allowed = _s.budget == GuardBudget::niosh_daily
                   ? niosh_level_for(niosh, t_left, plan_pct)
                   : who_level_for(week, t_left, _s.who_allowance_pa2h, plan_pct);
    if (_allowed == -inf) {
        _needed = inf; // the budget is used up: any sound is too much (held through pauses)
    } else if (!(mix_p2 > 0.0) || _allowed == inf) {
        _needed = 0.0;
    } else {
        const double room = pa2(_allowed) - leak_p2; // Pa^2 the mix may have
        _needed = room > 0.0 ? std::max(0.0, level_db(mix_p2) - level_db(room)) : inf;
    }

    // 3. Move: towards min(needed, depth) at the rate in `limit`; back to 0 otherwise.
    if (dt > 0.0) {
        const double target = limiting() ? std::min(_needed, _s.depth_db) : 0.0;
        const double up = _s.rate_db_per_s * dt;
        const double down = (limiting() ? _s.rate_db_per_s : _s.release_db_per_s) * dt;
        // (A depth lowered by configure() is reached at the rate too: no jump.)
        _atten = std::max(0.0, _atten + std::clamp(target - _atten, -down, up));
    }

    // 4. Status: the budget figure at the end of the show at the current output level.
    const double out_db = level_db(mix_p2 * std::pow(10.0, -_atten / 10.0) + leak_p2);
    _projected = _s.budget == GuardBudget::niosh_daily
                     ? niosh_projected_pct(niosh, out_db, t_left)
                     : who_projected_pct(week, out_db, t_left, _s.who_allowance_pa2h);
    return _atten;
}

} // namespace earshot::dosimetry
