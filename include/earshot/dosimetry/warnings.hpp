// earshot::dosimetry::DoseWarnings — the dose and loudness warnings of one musician (issue 7):
// logged, shown in status/top and sent to the musician's pad LED by the daemon.
//
// Dose thresholds (hearing-dose.md §5.2 item 4; IEC 62368-1 10.6.3.2 via §2.2): 50 %, 80 % and
// 100 % of the day's NIOSH dose and of the WHO/H.870 weekly allowance, then every further 100 %
// (200, 300, ...). Each fires once when its quantity rises to it (a jump over several fires them all,
// in ascending order, in one update), and re-arms when the quantity falls below it by the hysteresis
// (5 % of the threshold: 100 % re-arms below 95 %). The weekly figure falls as the 7-day window rolls;
// the daily one falls to 0 at the dose-day change, which re-arms all of its thresholds.
//
// Momentary warnings (IEC 62368-1 10.6.3.3: MEL above RS2; hearing-dose.md §2.2, §5.2 item 3): the
// 1 s LAeq above the musician's loudness cap (by more than the cap's tolerance, 0.5 dB) or above RS2
// (100 dBA by default). At most one per kind per hold-off (10 s of audio time): a loud passage gives
// one warning at its start and a reminder every 10 s while it lasts, not one per second.
//
// Thread contract: the control thread; appends to the caller's vector (allocates).
//
//   DoseWarnings w;                    // default thresholds
//   std::vector<Warning> ev;
//   w.update(niosh_pct, who_pct, ev);  // 0, 1 or more events, in order
//   w.momentary(t_s, laeq_1s, cap_dba, 100.0, ev);
#pragma once

#include <cstdint>
#include <vector>

namespace earshot::dosimetry {

enum class WarningKind : uint8_t {
    niosh_daily,   // the day's NIOSH dose reached `threshold` %
    who_weekly,    // the rolling weekly dose reached `threshold` % of the allowance
    momentary_cap, // LAeq,1s above the loudness cap (`threshold` dBA)
    momentary_rs2, // LAeq,1s above RS2 (`threshold` dBA)
};

/// "niosh_daily", "who_weekly", "momentary_cap", "momentary_rs2".
const char* to_string(WarningKind k) noexcept;

struct Warning {
    WarningKind kind;
    double threshold; // % for the doses, dBA for the momentary kinds
    double value;     // the quantity when it fired (%, or LAeq,1s in dBA)
    double t_s;       // audio time of a momentary warning (s); 0 for the dose kinds
};

struct WarningSettings {
    std::vector<double> thresholds_pct{50.0, 80.0, 100.0}; // ascending, > 0
    double repeat_every_pct = 100.0; // after the last threshold: every further this much (0: none)
    double hysteresis = 0.05;        // re-arm below threshold * (1 - hysteresis), [0, 0.5]
    double holdoff_s = 10.0;         // momentary: at most one per kind per this much audio time
    double cap_margin_db = 0.5;      // momentary_cap fires above cap + this (the cap's tolerance)
    double rs2_margin_db = 0.0;      // momentary_rs2 fires above RS2 + this
};

class DoseWarnings {
public:
    static constexpr int max_events_per_update = 64;       // per quantity (a runaway value cannot flood)
    static constexpr int64_t max_index = int64_t{1} << 52; // thresholds counted at most (exact in a double)

    explicit DoseWarnings(WarningSettings s = {});

    /// Feeds the current daily NIOSH % and weekly WHO %; appends a warning for every threshold
    /// crossed upwards since the last call (NIOSH first, each in ascending order). NaN is ignored.
    void update(double niosh_pct, double who_pct, std::vector<Warning>& out);
    /// Sets the armed state for these values without warning (start-up from the logs: what was
    /// reached before the restart is not announced again).
    void prime(double niosh_pct, double who_pct) noexcept;
    /// Feeds one LAeq,1s (dBA) at audio time t_s; cap_dba / rs2_dba may be NaN or +inf (none).
    void momentary(double t_s, double laeq_1s_dba, double cap_dba, double rs2_dba, std::vector<Warning>& out);

    /// The i-th dose threshold (%), i >= 0 (+inf past the end when there are no repeats).
    double threshold(int64_t i) const noexcept;
    /// The next threshold that will fire for a dose kind (%; +inf if none).
    double next_threshold(WarningKind k) const noexcept;
    const WarningSettings& settings() const noexcept { return _s; }
    /// Re-arms everything.
    void reset() noexcept;

private:
    struct Armed {
        int64_t next = 0; // index of the lowest threshold not yet fired
    };
    void dose(WarningKind k, Armed& a, double value, std::vector<Warning>& out);
    /// How many thresholds are <= v (the index of the first one above it), at most max_index;
    /// computed, not counted, so its cost does not grow with v.
    int64_t count_at_or_below(double v) const noexcept;

    WarningSettings _s;
    Armed _niosh, _who;
    double _last_cap = 0, _last_rs2 = 0; // audio time of the last momentary warning of each kind
    bool _fired_cap = false, _fired_rs2 = false;
};

} // namespace earshot::dosimetry
