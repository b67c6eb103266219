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
    auto in = [](double v, double lo, double hi, double def) { return v >= lo && v <= hi ? v : def; };
    _s = s;
    _s.budget_pct = _s.budget_pct > 0.0 ? _s.budget_pct : 100.0; // also NaN -> 100
    _s.who_allowance_pa2h = _s.who_allowance_pa2h > 0.0 ? _s.who_allowance_pa2h : who_mode1_pa2h;
    _s.rate_db_per_s = _s.rate_db_per_s > 0.0 ? std::min(_s.rate_db_per_s, 1.0) : 1.0 / 30.0;
    _s.depth_db = _s.depth_db >= 0.0 ? std::min(_s.depth_db, max_depth_db) : 12.0;
    _s.plan_margin_pct = _s.plan_margin_pct >= 0.0 ? std::min(_s.plan_margin_pct, 20.0) : 1.0;
    _s.release_db_per_s = _s.release_db_per_s > 0.0 ? std::min(_s.release_db_per_s, 10.0) : 1.0;
    _s.fast_tau_s = in(_s.fast_tau_s, 60.0, 3600.0, 600.0);
    _s.slow_tau_s = in(_s.slow_tau_s, _s.fast_tau_s, 14400.0, std::max(1800.0, _s.fast_tau_s));
    _s.band_db = in(_s.band_db, 0.0, 6.0, 1.25);
    _s.rearm_s = in(_s.rearm_s, 0.0, 86400.0, 600.0);
}

void DoseGuard::suspend(std::string who, double when_utc) {
    _suspended = true;
    _suspended_by = std::move(who);
    _suspended_at = when_utc;
}

void DoseGuard::resume() noexcept {
    _suspended = false;
}

void DoseGuard::restore(const GuardState& st) noexcept {
    auto pos = [](double v) { return std::isfinite(v) && v > 0.0 ? v : 0.0; };
    _st.attenuation_db = std::min(pos(st.attenuation_db), max_depth_db);
    _st.elapsed_s = pos(st.elapsed_s);
    _st.mix_slow_pa2 = pos(st.mix_slow_pa2);
    _st.mix_fast_pa2 = pos(st.mix_fast_pa2);
    _st.leak_slow_pa2 = pos(st.leak_slow_pa2);
    _st.leak_fast_pa2 = pos(st.leak_fast_pa2);
    _st.over_episode = st.over_episode;
    _st.within_s = pos(st.within_s);
    _started = false;
}

void DoseGuard::reset() noexcept {
    _st = GuardState{};
    _needed = 0.0;
    _allowed = inf;
    _level_u = -inf;
    _projected = std::numeric_limits<double>::quiet_NaN();
    _started = false;
}

double DoseGuard::update(const GuardInput& in) {
    const double dt = in.seconds > 0.0 && in.seconds < 3600.0 ? in.seconds : 0.0; // NaN -> 0
    double& atten = _st.attenuation_db;
    // What the musician heard at the end of the interval: the engine's gain if given (it ramps to
    // the guard's output within a second, and may lag it by a block), else the guard's output.
    const double applied = usable(in.applied_db) ? std::clamp(in.applied_db, 0.0, max_depth_db) : atten;
    // 1. The interval before the guard (the level heard plus the attenuation it was heard with)
    //    into the two energy averages. Until a time constant has passed, the weight dt / elapsed
    //    makes the average the plain energy mean since the start.
    if (dt > 0.0) {
        const double heard = usable(in.level_dba) ? in.level_dba : -inf; // NaN/-inf: silence
        const double mix = heard == -inf ? 0.0 : pa2(heard + applied);
        const double leak = usable(in.leak_dba) ? pa2(in.leak_dba) : 0.0;
        _st.elapsed_s += dt;
        const double ws = std::min(1.0, dt / std::min(_s.slow_tau_s, _st.elapsed_s));
        const double wf = std::min(1.0, dt / std::min(_s.fast_tau_s, _st.elapsed_s));
        _st.mix_slow_pa2 += (mix - _st.mix_slow_pa2) * ws;
        _st.leak_slow_pa2 += (leak - _st.leak_slow_pa2) * ws;
        _st.mix_fast_pa2 += (mix - _st.mix_fast_pa2) * wf;
        _st.leak_fast_pa2 += (leak - _st.leak_fast_pa2) * wf;
    }

    // 2. The highest steady level that fits the budget (less the planning margin), and the
    //    attenuation of the mix that brings each average there (the leak stays as it is).
    const double plan_pct = _s.budget_pct * (1.0 - _s.plan_margin_pct / 100.0);
    const double t_left = in.seconds_left > 0.0 ? in.seconds_left : 0.0; // NaN -> 0
    const double niosh = usable(in.niosh_pct) ? in.niosh_pct : 0.0;
    const double week = usable(in.week_pa2h) ? in.week_pa2h : 0.0;
    _allowed = _s.budget == GuardBudget::niosh_daily
                   ? niosh_level_for(niosh, t_left, plan_pct)
                   : who_level_for(week, t_left, _s.who_allowance_pa2h, plan_pct);
    auto needed_for = [&](double mix_p2, double leak_p2) {
        if (_allowed == -inf) return inf; // the budget is used up: any sound is too much
        if (!(mix_p2 > 0.0) || _allowed == inf) return 0.0;
        const double room = pa2(_allowed) - leak_p2; // Pa^2 the mix may have
        return room > 0.0 ? std::max(0.0, level_db(mix_p2) - level_db(room)) : inf;
    };
    const double need_slow = needed_for(_st.mix_slow_pa2, _st.leak_slow_pa2);
    const double need_fast = needed_for(_st.mix_fast_pa2, _st.leak_fast_pa2);
    _needed = std::max(need_slow, need_fast);
    const bool fast_rules = need_fast > need_slow ||
                            (need_fast == need_slow &&
                             _st.mix_fast_pa2 + _st.leak_fast_pa2 > _st.mix_slow_pa2 + _st.leak_slow_pa2);
    const double mix_p2 = fast_rules ? _st.mix_fast_pa2 : _st.mix_slow_pa2;
    const double leak_p2 = fast_rules ? _st.leak_fast_pa2 : _st.leak_slow_pa2;
    _level_u = level_db(mix_p2 + leak_p2);

    // 3. Move. `limit`: into the band [target, target + min(band, target)] (target = needed
    //    clamped to the depth; never above the depth), at most rate * dt per update: up whenever
    //    the target is above the attenuation, down only when the attenuation is above the band.
    //    Otherwise back to 0 at the release rate. The step is taken from what was applied, so
    //    the gain the musician hears never moves faster than the rate either.
    if (dt > 0.0) {
        double goal = 0.0, step = _s.release_db_per_s * dt;
        if (limiting()) {
            const double target = std::min(_needed, _s.depth_db);
            const double hi = std::min(_s.depth_db, target + std::min(_s.band_db, target));
            goal = std::clamp(applied, target, hi);
            step = _s.rate_db_per_s * dt;
        }
        // (A depth lowered by configure() is reached at the rate too: no jump.)
        atten = std::max(0.0, applied + std::clamp(goal - applied, -step, step));
    }

    // 4. Status: the budget figure at the end of the show at the estimated level with the current
    //    attenuation, and the over-budget episode.
    const double out_db = level_db(mix_p2 * std::pow(10.0, -atten / 10.0) + leak_p2);
    _projected = _s.budget == GuardBudget::niosh_daily
                     ? niosh_projected_pct(niosh, out_db, t_left)
                     : who_projected_pct(week, out_db, t_left, _s.who_allowance_pa2h);
    _started = false;
    if (dt > 0.0) {
        if (over_budget()) {
            _started = !_st.over_episode;
            _st.over_episode = true;
            _st.within_s = 0.0;
        } else if (_st.over_episode) {
            _st.within_s += dt;
            if (_st.within_s >= _s.rearm_s) _st.over_episode = false;
        }
    }
    return atten;
}

} // namespace earshot::dosimetry
