// Shared helpers of the dosimetry tests: a POSIX TZ guard (no tzdata needed), temp dirs, UTC times.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>

namespace earshot::test {

// Central European time with its DST rules as a POSIX TZ string (needs no tzdata files).
struct TzGuard {
    std::string old;
    bool had;
    explicit TzGuard(const char* tz) {
        const char* o = std::getenv("TZ");
        had = o != nullptr;
        if (had) old = o;
        setenv("TZ", tz, 1);
        tzset();
    }
    ~TzGuard() {
        if (had)
            setenv("TZ", old.c_str(), 1);
        else
            unsetenv("TZ");
        tzset();
    }
};
inline constexpr const char* cet = "CET-1CEST,M3.5.0,M10.5.0/3";

inline std::string temp_dir() {
    std::string t = (std::filesystem::temp_directory_path() / "earshot-dosimetry-XXXXXX").string();
    REQUIRE(mkdtemp(t.data()) != nullptr);
    return t;
}

inline double utc(int y, int mo, int d, int h, int mi) {
    std::tm t{};
    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    return static_cast<double>(timegm(&t));
}

} // namespace earshot::test
