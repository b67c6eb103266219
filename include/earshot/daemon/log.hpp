// earshot::daemon logging — one line per message on stderr, with the sd-daemon priority prefix
// ("<3>" error ... "<7>" debug) that journald turns into the message priority (sd-daemon(3)).
//
// Rate limit: each message *key* (a short fixed string naming the kind of message, e.g. "xrun")
// may print at most `burst` lines per `window_s` seconds; further lines of that key are counted and
// summarised once the window ends ("... 41 more 'xrun' messages suppressed"). Messages without a key
// are never limited (start-up, shutdown, config errors).
//
// Thread contract: any non-RT thread (a mutex guards the limiter). Never call from the JACK process
// callback: the RT thread reports through counters and flags that the control loop turns into logs.
//
//   log::info("connected to JACK server '%s' at %u Hz", name, rate);
//   log::warn_limited("xrun", "xrun #%llu", n);
#pragma once

#include <cstdarg>
#include <cstdio>

namespace earshot::daemon::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// Where lines go (default stderr) and the limiter's settings; tests use a temporary file.
void configure(std::FILE* out, int burst = 10, double window_s = 30.0);
/// Whether debug lines are printed (default off).
void set_debug(bool on);

void message(Level lv, const char* key, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void vmessage(Level lv, const char* key, const char* fmt, std::va_list ap);

#define EARSHOT_LOG_FN(name, level)                                                                          \
    inline void name(const char* fmt, ...) __attribute__((format(printf, 1, 2)));                            \
    inline void name(const char* fmt, ...) {                                                                 \
        std::va_list ap;                                                                                     \
        va_start(ap, fmt);                                                                                   \
        vmessage(level, nullptr, fmt, ap);                                                                   \
        va_end(ap);                                                                                          \
    }                                                                                                        \
    inline void name##_limited(const char* key, const char* fmt, ...) __attribute__((format(printf, 2, 3))); \
    inline void name##_limited(const char* key, const char* fmt, ...) {                                      \
        std::va_list ap;                                                                                     \
        va_start(ap, fmt);                                                                                   \
        vmessage(level, key, fmt, ap);                                                                       \
        va_end(ap);                                                                                          \
    }

EARSHOT_LOG_FN(error, Level::error)
EARSHOT_LOG_FN(warn, Level::warning)
EARSHOT_LOG_FN(notice, Level::notice)
EARSHOT_LOG_FN(info, Level::info)
EARSHOT_LOG_FN(debug, Level::debug)
#undef EARSHOT_LOG_FN

/// Prints the summaries of windows that ended (the control loop calls it about once a second).
void flush_suppressed();

} // namespace earshot::daemon::log
