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
//   * keeps the musician's *unattenuated* mix level: the level heard plus the attenuation it was
//     heard with, energy-averaged over the last 60 intervals (60 s), and the stage leak's (which
//     the guard cannot lower) the same way;
//   * needed = the attenuation that brings that average (leak added by energy) to the highest
//     steady level that fits the budget minus a planning margin (1 % of the budget by default);
//   * in `limit` mode the attenuation moves towards min(needed, depth) by at most rate * dt per
//     update, both ways (default 1 dB per 30 s, depth 12 dB); in `off`/`warn`, or suspended by an
//     engineer, it returns to 0 at release_db_per_s (1 dB/s: no jump).
// Because the average is of the level *before* the attenuation, the attenuation does not feed back
// into the level the controller sees (no loop through the 60 s average, no oscillation); the only
// feedback is through the dose, which the attenuation slows, which raises the allowed level: a
// stable, monotone correction. Holding `needed` keeps the dose rate at (budget left) / (time left),
// so the show ends on the planned budget. docs/protection.md has the 3-hour arithmetic.
//
// Thread contract: the control thread (it allocates only in suspend()).
//
//   DoseGuard g({.mode = GuardMode::limit});
//   double atten_db = g.update({.seconds = 1, .level_dba = 97.3, .niosh_pct = 41, .seconds_left = 5400});
//   g.projected_pct();                 // the dose at the planned end at the current level
#pragma once

#include "earshot/dosimetry/dose.hpp"

#include <array>
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
    double applied_db =
        std::numeric_limits<double>::quiet_NaN(); // attenuation the interval was
                                                  // heard with (NaN: the guard's previous output, which the
                                                  // engine ramps to within 1 s)
};

class DoseGuard {
public:
    static constexpr int window = 60; // intervals in the level average (60 s at 1 s each)
    static constexpr double max_depth_db = 40.0;

    explicit DoseGuard(const GuardSettings& s = {});
    /// New settings (clamped to their ranges); the running state (attenuation, history) is kept.
    void configure(const GuardSettings& s);
    const GuardSettings& settings() const noexcept { return _s; }

    /// Feeds one interval; returns the attenuation (dB, >= 0) to apply from now on.
    double update(const GuardInput& in);

    /// The attenuation to apply (dB, 0 ... depth).
    double attenuation_db() const noexcept { return _atten; }
    /// The attenuation the budget needs at the current level (dB, 0 ... +inf; may exceed depth).
    double needed_db() const noexcept { return _needed; }
    /// The highest steady level that fits the budget for the rest of the show (dBA, +-inf).
    double allowed_dba() const noexcept { return _allowed; }
    /// The average level before the guard (mix + leak, last 60 s), dBA.
    double unattenuated_dba() const noexcept { return _level_u; }
    /// The budget figure (NIOSH % or weekly %) at the planned end at the current output level
    /// (average level minus the current attenuation). NaN before the first update.
    double projected_pct() const noexcept { return _projected; }
    /// The projection exceeds the budget (in any mode: this is what `warn` reports).
    bool over_budget() const noexcept { return _projected > _s.budget_pct; }
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

    /// Clears the level history and the attenuation (a new show); suspension and settings stay.
    void reset() noexcept;

private:
    struct Slot {
        double mix_pa2s = 0;  // unattenuated mix exposure in the interval, Pa^2 s
        double leak_pa2s = 0; // leak exposure in the interval, Pa^2 s
        double seconds = 0;
    };

    GuardSettings _s;
    std::array<Slot, window> _ring{}; // the last `window` intervals
    int _pos = 0, _count = 0;
    double _atten = 0;                                            // dB, current output
    double _needed = 0;                                           // dB, unclamped
    double _allowed = std::numeric_limits<double>::infinity();    // dBA
    double _level_u = -std::numeric_limits<double>::infinity();   // dBA
    double _projected = std::numeric_limits<double>::quiet_NaN(); // % of the budget figure
    bool _suspended = false;
    std::string _suspended_by;
    double _suspended_at = 0; // UTC seconds
};

} // namespace earshot::dosimetry
