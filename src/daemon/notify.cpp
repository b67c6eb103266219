#include "earshot/daemon/notify.hpp"

#include <systemd/sd-daemon.h>

namespace earshot::daemon::notify {

void ready(const std::string& status) {
    const std::string msg = "READY=1\nSTATUS=" + status;
    sd_notify(0, msg.c_str());
}
void reloading() {
    sd_notify(0, "RELOADING=1");
}
void stopping() {
    sd_notify(0, "STOPPING=1");
}
void status(const std::string& line) {
    const std::string msg = "STATUS=" + line;
    sd_notify(0, msg.c_str());
}
void watchdog() {
    sd_notify(0, "WATCHDOG=1");
}
uint64_t watchdog_usec() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) return usec;
    return 0;
}

} // namespace earshot::daemon::notify
