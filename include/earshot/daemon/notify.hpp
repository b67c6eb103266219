// earshot::daemon notify — the sd_notify(3) protocol towards systemd (only TU with libsystemd).
//
// Without NOTIFY_SOCKET (not started by systemd) every call is a no-op. The daemon sends READY=1
// once, when the JACK client is first active and connected, and after that only to close a
// RELOADING=1, which it sends for a reload while connected; STATUS= carries a one-line summary;
// WATCHDOG=1 is sent by the control loop only while the RT cycle advances (or while it waits for a
// JACK server, which is a healthy state of the daemon); STOPPING=1 at shutdown.
//
// Thread contract: control thread.
#pragma once

#include <cstdint>
#include <string>

namespace earshot::daemon::notify {

void ready(const std::string& status);
void reloading();
void stopping();
void status(const std::string& line);
void watchdog();
/// The watchdog interval requested by systemd (WATCHDOG_USEC for this pid), 0 when disabled.
uint64_t watchdog_usec();

} // namespace earshot::daemon::notify
