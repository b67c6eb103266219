#include "earshot/dosimetry/calendar.hpp"

#include <cstdio>
#include <cstdlib>

namespace earshot::dosimetry {

namespace {

bool leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}
int days_in_month(int y, int m) {
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}
// Calendar arithmetic in UTC (no time zone involved): noon of the date as UTC seconds, and back.
long long days_from_civil(int y, int m, int d) {
    std::tm t{};
    t.tm_year = y - 1900;
    t.tm_mon = m - 1;
    t.tm_mday = d;
    t.tm_hour = 12;
    return static_cast<long long>(timegm(&t)) / 86400;
}
Date civil_from_days(long long z) {
    const std::time_t t = static_cast<std::time_t>(z * 86400 + 43200);
    std::tm g{};
    gmtime_r(&t, &g);
    return Date{g.tm_year + 1900, g.tm_mon + 1, g.tm_mday};
}

} // namespace

std::string Date::str() const {
    char b[32];
    std::snprintf(b, sizeof b, "%04d-%02d-%02d", year, month, day);
    return b;
}

bool Date::parse(const std::string& s, Date& out) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
    for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u})
        if (s[i] < '0' || s[i] > '9') return false;
    const int y = std::atoi(s.substr(0, 4).c_str()), m = std::atoi(s.substr(5, 2).c_str()),
              d = std::atoi(s.substr(8, 2).c_str());
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return false;
    out = Date{y, m, d};
    return true;
}

Date add_days(Date d, int n) noexcept {
    return civil_from_days(days_from_civil(d.year, d.month, d.day) + n);
}

Date dose_day(std::time_t t, int start_min) noexcept {
    std::tm lt{};
    localtime_r(&t, &lt);
    Date d{lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday};
    if (lt.tm_hour * 60 + lt.tm_min < start_min) d = add_days(d, -1);
    // Inside a DST gap the local clock may jump past the start; the day_start() check keeps the
    // two functions consistent: t belongs to d iff day_start(d) <= t < day_start(d + 1).
    if (t < day_start(d, start_min))
        d = add_days(d, -1);
    else if (t >= day_start(add_days(d, 1), start_min))
        d = add_days(d, 1);
    return d;
}

std::time_t day_start(const Date& d, int start_min) noexcept {
    // Try the wall time as standard and as daylight time; keep the interpretations that map back to
    // the same wall time. Two (a fall-back overlap): the earlier. None (a spring-forward gap): the
    // later, i.e. the wall time moved forward by the gap. Deterministic, unlike tm_isdst = -1.
    std::time_t best = 0;
    bool have = false;
    std::time_t gap_pick = 0;
    for (int dst = 0; dst <= 1; ++dst) {
        std::tm lt{};
        lt.tm_year = d.year - 1900;
        lt.tm_mon = d.month - 1;
        lt.tm_mday = d.day;
        lt.tm_hour = start_min / 60;
        lt.tm_min = start_min % 60;
        lt.tm_isdst = dst;
        const std::time_t t = std::mktime(&lt);
        std::tm back{};
        localtime_r(&t, &back);
        const bool same = back.tm_year == d.year - 1900 && back.tm_mon == d.month - 1 &&
                          back.tm_mday == d.day && back.tm_hour == start_min / 60 &&
                          back.tm_min == start_min % 60;
        if (same && (!have || t < best)) {
            best = t;
            have = true;
        }
        if (t > gap_pick) gap_pick = t;
    }
    return have ? best : gap_pick;
}

std::string iso_utc(std::time_t t) {
    std::tm g{};
    gmtime_r(&t, &g);
    char b[64];
    std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02dZ", g.tm_year + 1900, g.tm_mon + 1, g.tm_mday,
                  g.tm_hour, g.tm_min, g.tm_sec);
    return b;
}

bool parse_iso_utc(const std::string& s, double& out) {
    int y, mo, d, h, mi;
    double sec;
    char z = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%c", &y, &mo, &d, &h, &mi, &sec, &z) != 7 || z != 'Z')
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec < 0 || sec >= 61)
        return false;
    out = static_cast<double>(days_from_civil(y, mo, d)) * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
    return true;
}

} // namespace earshot::dosimetry
