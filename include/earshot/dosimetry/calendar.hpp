// earshot::dosimetry calendar — dose days in the machine's local time zone (SPEC §4).
//
// A dose day starts at a configurable local time (dosimetry.day_starts, default 06:00) and is named
// by the local date on which it starts: with 06:00, 2026-03-29 02:30 local belongs to dose day
// 2026-03-28. Day arithmetic is done on calendar dates, and the start instant of a day comes from
// mktime() with tm_isdst = -1, so days across a DST change are 23 or 25 hours long and a start time
// that does not exist locally (inside a spring-forward gap) moves to the first valid instant.
//
// Thread contract: any thread (uses localtime_r / mktime, which read the TZ database).
//
//   Date d = dose_day(std::time(nullptr), 6 * 60);   // today's dose day
//   std::time_t s = day_start(d, 6 * 60);             // when it began (UTC seconds)
#pragma once

#include <ctime>
#include <string>

namespace earshot::dosimetry {

struct Date {
    int year = 1970, month = 1, day = 1;
    bool operator==(const Date&) const = default;
    auto operator<=>(const Date&) const = default;
    /// "YYYY-MM-DD"
    std::string str() const;
    /// Parses "YYYY-MM-DD" (validated, including the day of the month). False on error.
    static bool parse(const std::string& s, Date& out);
};

/// The calendar date n days after d (n may be negative).
Date add_days(Date d, int n) noexcept;
/// The dose day containing the instant t, for a day starting at `start_min` minutes after local midnight.
Date dose_day(std::time_t t, int start_min) noexcept;
/// The instant (UTC seconds) at which dose day d starts.
std::time_t day_start(const Date& d, int start_min) noexcept;
/// ISO 8601 UTC, "2026-11-25T06:44:33Z".
std::string iso_utc(std::time_t t);
/// Parses the ISO 8601 UTC form written by iso_utc (fractional seconds allowed). False on error.
bool parse_iso_utc(const std::string& s, double& seconds_since_epoch);

} // namespace earshot::dosimetry
