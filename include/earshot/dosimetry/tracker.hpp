// earshot::dosimetry::MusicianDose — one musician's running dose: the current dose day, the rolling
// 7-day WHO energy, and the exposure-log rows (SPEC §4).
//
// Fed with intervals (normally 1 s of audio, with the wall-clock time at which it was heard) whose
// levels are already field-equivalent dB SPL per ear. The musician's level for an interval is the
// louder ear's, plus the stage leak by energy (hearing-dose.md §4.3, §4.4).
//
// Thread contract: the dosimetry/control thread only; allocates.
//
//   MusicianDose d("drums", 6 * 60, who_mode1_pa2h);
//   d.add(iv, rows);                  // rows receives completed minute rows
//   auto s = d.status();              // day and week figures, time left
#pragma once

#include "earshot/dosimetry/calendar.hpp"
#include "earshot/dosimetry/dose.hpp"

#include <deque>
#include <limits>
#include <string>
#include <vector>

namespace earshot::dosimetry {

inline constexpr double neg_inf = -std::numeric_limits<double>::infinity();

/// One metered interval of a musician.
struct Interval {
    double t_utc = 0;        // start, seconds since the epoch (UTC)
    double seconds = 1;      // duration (audio time)
    double laeq_l = neg_inf; // LAeq over the interval at each ear, dBA (field-equivalent)
    double laeq_r = neg_inf;
    double lafmax = neg_inf;   // max LAF, dBA (louder ear)
    double lcpeak = neg_inf;   // max LCpeak, dBC (louder ear)
    double leak_dba = neg_inf; // stage leak at the ear (stage LAeq - isolation), dBA
    double limiter_gr_db = 0;  // max limiter gain reduction, dB (>= 0)
};

/// One row of the exposure log (SPEC §4; docs/exposure-logs.md).
struct LogRow {
    double start_utc = 0; // seconds since the epoch
    Date day;             // the dose day (local date on which it started)
    double duration_s = 0;
    double laeq_dba = neg_inf;   // musician level (louder ear + leak), energy mean over the row
    double laeq_l_dba = neg_inf; // mix only, per ear
    double laeq_r_dba = neg_inf;
    double leak_dba = neg_inf; // leak alone
    double lafmax_dba = neg_inf;
    double lcpeak_dbc = neg_inf;
    double pa2s = 0;      // exposure in the row (musician level), Pa^2 s
    double leak_pa2s = 0; // of which from the leak
    double niosh_pct = 0; // cumulative for the dose day at the end of the row
    double osha_pct = 0;
    double osha_action_pct = 0;
    double who_weekly_pct = 0; // rolling 7 days at the end of the row
    double limiter_gr_max_db = 0;
    // Per-row contributions (not cumulative), kept so a reader can rebuild the day exactly.
    double niosh_row_pct = 0;
    double osha_row_pct = 0;
    double osha_action_row_pct = 0;
};

struct DoseStatus {
    Date day;
    DoseTotals today;     // the dose day so far
    double week_pa2h = 0; // rolling 7 days
    double who_weekly_pct = 0;
    double current_dba = neg_inf;  // level of the latest interval (musician level)
    double niosh_seconds_left = 0; // to 100 % NIOSH at the current level (+inf when silent)
    double who_seconds_left = 0;   // to 100 % of the weekly allowance at the current level
};

class MusicianDose {
public:
    MusicianDose(std::string id, int day_start_min, double who_allowance_pa2h);

    /// Adds an interval. Completed rows (a minute of audio, or the end of a dose day) are appended
    /// to `rows`.
    void add(const Interval& iv, std::vector<LogRow>& rows);
    /// Closes the open row (shutdown): appends it to `rows` if it has any audio.
    void flush(std::vector<LogRow>& rows);
    /// Replays a row read back from the logs (rebuild at start-up). Rows must come in time order.
    void replay(const LogRow& row);
    /// Figures at wall-clock time `now` (the week window ends at now; the day rolls if needed).
    DoseStatus status(double now_utc) const;

    const std::string& id() const noexcept { return _id; }
    int day_start_min() const noexcept { return _start_min; }
    double who_allowance() const noexcept { return _who_allow; }
    /// Interval rows are cut at this length (seconds of audio).
    static constexpr double row_seconds = 60.0;

private:
    struct Bucket {
        double t; // start of the minute bucket (UTC seconds, multiple of 60)
        double pa2s;
    };
    void roll_day(const Date& d);
    void add_week(double t, double pa2s);
    double week_pa2s(double now) const;

    std::string _id;
    int _start_min;
    double _who_allow;
    Date _day{};
    bool _have_day = false;
    DoseTotals _today;
    std::deque<Bucket> _week; // per-minute energy, oldest first, last 7 days
    double _current_dba = neg_inf;
    // The open row.
    LogRow _row;
    double _row_e_l = 0, _row_e_r = 0, _row_e_leak = 0; // Pa^2 s sums
    DoseTotals _row_dose;
    bool _row_open = false;
};

} // namespace earshot::dosimetry
