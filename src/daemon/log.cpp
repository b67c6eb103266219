#include "earshot/daemon/log.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace earshot::daemon::log {

namespace {

struct Bucket {
    double window_start = 0;
    int printed = 0;
    long suppressed = 0;
    Level level = Level::info;
};

struct State {
    std::mutex mu;
    std::FILE* out = stderr;
    int burst = 10;
    double window_s = 30.0;
    bool debug = false;
    std::map<std::string, Bucket> buckets;
};

State& state() {
    static State s;
    return s;
}

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void emit(State& s, Level lv, const char* text) {
    std::fprintf(s.out, "<%d>%s\n", static_cast<int>(lv), text);
    std::fflush(s.out);
}

void summarise(State& s, const std::string& key, Bucket& b) {
    if (b.suppressed <= 0) return;
    char line[256];
    std::snprintf(line, sizeof line, "... %ld more '%s' message%s suppressed in the last %.0f s",
                  b.suppressed, key.c_str(), b.suppressed == 1 ? "" : "s", s.window_s);
    emit(s, b.level, line);
    b.suppressed = 0;
}

} // namespace

void configure(std::FILE* out, int burst, double window_s) {
    State& s = state();
    std::lock_guard<std::mutex> g(s.mu);
    s.out = out ? out : stderr;
    s.burst = burst > 0 ? burst : 1;
    s.window_s = window_s > 0 ? window_s : 1.0;
}

void set_debug(bool on) {
    State& s = state();
    std::lock_guard<std::mutex> g(s.mu);
    s.debug = on;
}

void vmessage(Level lv, const char* key, const char* fmt, std::va_list ap) {
    State& s = state();
    char text[1024];
    std::vsnprintf(text, sizeof text, fmt, ap);
    std::lock_guard<std::mutex> g(s.mu);
    if (lv == Level::debug && !s.debug) return;
    if (key) {
        const double t = now_s();
        Bucket& b = s.buckets[key];
        if (t - b.window_start >= s.window_s) {
            summarise(s, key, b);
            b.window_start = t;
            b.printed = 0;
        }
        b.level = lv;
        if (b.printed >= s.burst) {
            ++b.suppressed;
            return;
        }
        ++b.printed;
    }
    emit(s, lv, text);
}

void message(Level lv, const char* key, const char* fmt, ...) {
    std::va_list ap;
    va_start(ap, fmt);
    vmessage(lv, key, fmt, ap);
    va_end(ap);
}

void flush_suppressed() {
    State& s = state();
    std::lock_guard<std::mutex> g(s.mu);
    const double t = now_s();
    for (auto& [key, b] : s.buckets) {
        if (b.suppressed > 0 && t - b.window_start >= s.window_s) {
            summarise(s, key, b);
            b.window_start = t;
            b.printed = 0;
        }
    }
}

} // namespace earshot::daemon::log
