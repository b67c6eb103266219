// earshot::dosimetry dose budget guard (issue 7, `dosimetry.guard: off | warn | limit`): given the
// planned end of the show and a budget (the daily NIOSH dose, or the WHO/H.870 weekly allowance),
// the highest steady level that still fits, and a slow controller that lowers the musician's mix
// when the projected dose would exceed the budget (hearing-dose.md §1.1, §2.1, §5.2 item 4).
//
// The highest steady level for the time left t (hours), with D% of the daily NIOSH dose used and a
// budget B%: the dose still allowed, B - D, spread evenly (NIOSH: 100 t / (8 / 2^((L - 85)/3)) %):
//   L_niosh = 85 + 3 log2( 8 (B - D) / (100 t) )
// and for the weekly energy E (Pa^2 h) against an allowance A (1.6 Pa^2 h, mode 1) and budget B%:
//   L_who = 10 log10( (A B/100 - E) / (t p0^2) )
// +inf when no time is left (nothing more can be added), -inf when the budget is already used up.
// The weekly window rolls: energy leaving it during the show is not counted (conservative).
//
// The controller (DoseGuard), fed once per interval of audio (normally 1 s):
//   * estimates what the rest of the show will sound like from the musician's *unattenuated* mix
//     (the level heard plus the attenuation it was heard with) with two energy averages: a slow one
//     (time constant 30 min) that spans several songs and breaks, and a faster one (10 min) that
//     catches a show getting louder. Until a time constant has passed, its average is the plain
//     energy mean since the guard started (no start-up bias). The stage leak (which the guard cannot
//     lower) is averaged the same way;
//   * needed = the attenuation that brings the louder-needing of the two averages (leak added by
//     energy) to the highest steady level that fits the budget minus a planning margin (1 %);
//   * in `limit` mode the attenuation rises (by at most rate * dt per update: default 1 dB per 30 s)
//     whenever min(needed, depth) is above it, and falls (at the same rate) only while it is more
//     than band_db (1.25 dB) above needed, or more than twice needed when needed is under 1.25 dB.
//     So it holds through the breaks between songs and does not hunt. In `off`/`warn`, or suspended
//     by an engineer, it returns to 0 at release_db_per_s (1 dB/s: no jump).
// Because the averages are of the level *before* the attenuation, the attenuation does not feed back
// into the level the controller sees; the only feedback is through the dose, which the attenuation
// slows, which raises the allowed level: a stable correction that brings the show onto the plan.
// docs/protection.md has the 3-hour arithmetic and the measured shows.
//
// "Over budget" (the projected figure above the budget) starts an episode, reported once
// (over_budget_started()); the episode ends after the projection has stayed within the budget for
// rearm_s (30 min) of audio, so a projection that hovers on the budget is not announced again and
// again.
//
// The state that planning needs (state()/restore()) is a handful of numbers, so the daemon can keep
// it across restarts.
//
// Thread contract: the control thread (it allocates only in suspend()).
//
//   DoseGuard g({.mode = GuardMode::limit});
//   double atten_db = g.update({.seconds = 1, .level_dba = 97.3, .niosh_pct = 41, .seconds_left = 5400});
//   g.projected_pct();                 // the dose at the planned end at the current level
#pragma once

#include "earshot/dosimetry/dose.hpp"

#include <limits>
#include <string>

namespace earshot::dosimetry {

enum class GuardMode { off, warn, limit };
enum class GuardBudget { niosh_daily, who_weekly };

/// Highest steady level (dBA) that keeps a NIOSH daily dose within budget_pct over seconds_left,
/// with dose_pct_so_far used: +inf if no time is left (or the budget is infinite), -inf if the
/// budget is used up.
double niosh_level_for(double dose_pct_so_far, double seconds_left, double budget_pct = 100.0) noexcept;
/// Highest steady level (dBA) that keeps the weekly exposure within budget_pct of allowance_pa2h
/// over seconds_left, with week_pa2h_so_far used; +inf / -inf as above.
double who_level_for(double week_pa2h_so_far, double seconds_left, double allowance_pa2h = who_mode1_pa2h,
                     double budget_pct = 100.0) noexcept;
/// The NIOSH dose (%) at the end of seconds_left at a steady level_dba, from dose_pct_so_far.
double niosh_projected_pct(double dose_pct_so_far, double level_dba, double seconds_left) noexcept;
/// The weekly dose (% of allowance_pa2h) at the end of seconds_left at a steady level_dba.
double who_projected_pct(double week_pa2h_so_far, double level_dba, double seconds_left,
                         double allowance_pa2h = who_mode1_pa2h) noexcept;

struct GuardSettings {
    GuardMode mode = GuardMode::off;
    GuardBudget budget = GuardBudget::niosh_daily;
    double budget_pct = 100.0;                  // of the daily NIOSH dose or the weekly allowance, > 0
    double who_allowance_pa2h = who_mode1_pa2h; // 1.6 (mode 1) or who_mode2_pa2h
    double rate_db_per_s = 1.0 / 30.0;          // most the attenuation moves per second, (0, 1]
    double depth_db = 12.0;                     // most attenuation, [0, 40] dB
    double plan_margin_pct = 1.0;               // aim this far under the budget (% of it), [0, 20]
    double release_db_per_s = 1.0;              // off / warn / suspended: back to 0 dB at this rate
    double slow_tau_s = 1800.0;                 // the slow level average, [fast_tau_s, 14400] s
    double fast_tau_s = 600.0;                  // the fast level average, [60, 3600] s
    double band_db = 1.25;                      // falls only when this far above needed, [0, 6] dB
    double rearm_s = 1800.0;                    // over-budget episode ends after this long within budget
};

/// One interval of a musician's exposure, as the guard sees it.
struct GuardInput {
    double seconds = 1.0;                                        // interval length (audio time), s
    double level_dba = -std::numeric_limits<double>::infinity(); // mix level heard in the interval
                                                                 // (louder ear, guard applied), dBA
    double leak_dba = -std::numeric_limits<double>::infinity();  // stage leak at the ear, dBA (the
                                                                 // guard cannot lower it)
    double niosh_pct = 0.0;    // the day's NIOSH dose so far, this interval included, %
    double week_pa2h = 0.0;    // rolling 7-day exposure so far, this interval included, Pa^2 h
    double seconds_left = 0.0; // to the planned end of the show (<= 0 or NaN: no plan)
    double applied_db = std::numeric_limits<double>::quiet_NaN(); // attenuation the engine applied at the end
                                                                  // of the interval (NaN: the guard's
                                                                  // previous output, which the engine ramps
                                                                  // to within 1 s); the next step starts here
};

/// What the guard's planning carries from one interval to the next (state() / restore()): the
/// attenuation, the level averages and the over-budget episode. Plain numbers, for persisting.
struct GuardState {
    double attenuation_db = 0; // dB, 0 ... depth
    double elapsed_s = 0;      // audio seconds the averages have seen
    double mix_slow_pa2 = 0;   // unattenuated mix, slow average, Pa^2
    double mix_fast_pa2 = 0;   // ... fast average
    double leak_slow_pa2 = 0;  // stage leak, slow average, Pa^2
    double leak_fast_pa2 = 0;  // ... fast average
    bool over_episode = false; // an over-budget episode is open (announced)
    double within_s = 0;       // audio seconds within the budget since the episode's last excess
};

class DoseGuard {
public:
    static constexpr double max_depth_db = 40.0;

    explicit DoseGuard(const GuardSettings& s = {});
    /// New settings (clamped to their ranges); the running state (attenuation, averages) is kept.
    void configure(const GuardSettings& s);
    const GuardSettings& settings() const noexcept { return _s; }

    /// Feeds one interval; returns the attenuation (dB, >= 0) to apply from now on.
    double update(const GuardInput& in);

    /// The attenuation to apply (dB, 0 ... depth).
    double attenuation_db() const noexcept { return _st.attenuation_db; }
    /// The attenuation the budget needs at the estimated level (dB, 0 ... +inf; may exceed depth).
    double needed_db() const noexcept { return _needed; }
    /// The highest steady level that fits the budget for the rest of the show (dBA, +-inf).
    double allowed_dba() const noexcept { return _allowed; }
    /// The level the plan assumes before the guard (the louder of the two averages, mix + leak), dBA.
    double unattenuated_dba() const noexcept { return _level_u; }
    /// The budget figure (NIOSH % or weekly %) at the planned end if the estimated level continues
    /// with the current attenuation. NaN before the first update.
    double projected_pct() const noexcept { return _projected; }
    /// The projection exceeds the budget (in any mode: this is what `warn` reports).
    bool over_budget() const noexcept { return _projected > _s.budget_pct; }
    /// The last update opened an over-budget episode (announce it once; see the header comment).
    bool over_budget_started() const noexcept { return _started; }
    /// `limit` mode, not suspended, and the budget needs more than the depth allows.
    bool saturated() const noexcept { return limiting() && _needed > _s.depth_db; }
    /// `limit` mode and not suspended.
    bool limiting() const noexcept { return _s.mode == GuardMode::limit && !_suspended; }

    /// An engineer acknowledges and suspends the guard for this musician: the attenuation returns
    /// to 0 at release_db_per_s. Who and when are kept for the log and status (the daemon checks
    /// that the caller may: a musician's own controller may not).
    void suspend(std::string who, double when_utc);
    /// Re-arms the guard (the attenuation moves again at rate_db_per_s).
    void resume() noexcept;
    bool suspended() const noexcept { return _suspended; }
    const std::string& suspended_by() const noexcept { return _suspended_by; }
    double suspended_at() const noexcept { return _suspended_at; }

    /// The planning state, e.g. to persist it.
    const GuardState& state() const noexcept { return _st; }
    /// Continues from a saved state (values out of range are clamped, non-finite ones zeroed). The
    /// derived figures (needed, allowed, projection) follow at the next update.
    void restore(const GuardState& st) noexcept;

    /// Clears the averages and the attenuation (a new show); suspension and settings stay.
    void reset() noexcept;

private:
    GuardSettings _s;
    GuardState _st;
    double _needed = 0;                                           // dB, unclamped
    double _allowed = std::numeric_limits<double>::infinity();    // dBA
    double _level_u = -std::numeric_limits<double>::infinity();   // dBA
    double _projected = std::numeric_limits<double>::quiet_NaN(); // % of the budget figure
    bool _started = false;
    bool _suspended = false;
    std::string _suspended_by;
    double _suspended_at = 0; // UTC seconds
};

} // namespace earshot::dosimetry
