#!/usr/bin/python3
"""SIGHUP while the band plays (issue 4): a valid change is applied with a ramp (checked sample by
sample against the known input: no step larger than the configured ramp allows) and the mixes it
does not touch stay bit-exact; a lookahead_ms change keeps the running delay line and JACK is told
the delay that really runs; an invalid config is rejected with its errors logged and the old one
keeps running; a musician added gets new ports (with its own latency) that fade in from silence; a
musician removed fades out (ramped, sample by sample) before its port goes; changed connect rules
apply to existing ports (connections only the old rules named go, hand-made ones stay)."""

import signal
import threading
import time

import numpy as np

from harness import (Rig, base_config, check, db, envelope, gain_per_sample, main_wrapper, periodic_sine, rms,
                     steepest, wait_for)

AMP = 0.1
BLOCK = 480  # 10 periods of 1 kHz: exact RMS per block
FULL = AMP * np.sqrt(0.5) / np.sqrt(2)  # drums_L RMS at 0 dB send, centre pan
RAMP = 960  # mixer.ramp_ms 20 at 48 kHz: every reload change is a linear ramp this long
LAT = 48  # drums' and bass' limiter look-ahead (1.0 ms) as it runs

KEYS = """  - id: keys
    output: stereo
    connect: ["{sink2}:in_L", "{sink2}:in_R"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110, lookahead_ms: 0.5 }}
    mix:
      sends:
        tone: {{ gain_db: 0 }}
"""


def record_during(rig, sink, d, action, delay=0.3, after=0.5):
    """Records in freewheel while `action` (a reload) runs `delay` s (wall) after the start, until
    `after` s (wall) past the moment the daemon logged the reload's outcome: the change always lands
    inside the recording, however fast freewheel runs on the machine."""
    out = {}
    stop = threading.Event()

    def rec():
        out["y"] = sink.record(3600.0, timeout=120, stop=stop)
    th = threading.Thread(target=rec)
    n0 = d.log_text().count("config reloaded") + d.log_text().count("reload rejected")
    rig.freewheel(True)
    th.start()
    time.sleep(delay)
    action()
    wait_for(lambda: d.log_text().count("config reloaded") + d.log_text().count("reload rejected") > n0, 10,
             "the reload")
    time.sleep(after)
    stop.set()
    th.join()
    rig.freewheel(False)
    return out["y"]


def check_ramp(what, t0, y, ref, g_from, g_to):
    """y (one channel, frame times from t0) against ref = the output at gain 1: the gain goes from
    g_from to g_to as one linear ramp of RAMP samples; no sample-to-sample change is steeper than
    that ramp allows (a jump, even mid-block, shows as a step of the whole change)."""
    idx, g = gain_per_sample(y, ref, 0.5 * float(np.max(np.abs(ref))))
    check(abs(g[0] - g_from) < 1e-4 and abs(g[-1] - g_to) < 1e-4,
          f"{what}: gain {g[0]:.5f} -> {g[-1]:.5f} (expected {g_from:.5f} -> {g_to:.5f})")
    allowed = abs(g_from - g_to) / RAMP
    slope = steepest(idx, g)
    check(slope <= 1.02 * allowed + 2e-6,
          f"{what}: steepest gain change {slope:.3e}/sample, the {RAMP}-sample ramp allows {allowed:.3e}")
    lo, hi = min(g_from, g_to), max(g_from, g_to)
    moving = idx[(g > lo + 1e-4) & (g < hi - 1e-4)]
    span = int(moving[-1] - moving[0]) if len(moving) else 0
    check(span >= 0.95 * RAMP, f"{what}: the change is spread over {span} samples (ramp {RAMP})")
    return t0 + (int(moving[0]) if len(moving) else 0)


def run(earshotd):
    # Period 1024: the dummy driver runs without xruns there (jack-testing.md §2.3), so the
    # real-time recording of the fade-in below is glitch-free.
    with Rig(earshotd, period=1024) as rig:
        rig.start_jack()
        path = rig.write_config(base_config(rig.server))
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        src = rig.player("src", outs=["out"])
        tone = periodic_sine(1000.0, AMP)  # 48 samples a period, repeating bit for bit
        src.gen = tone
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:bass") == [sink.port("in_m")], 10, "bass connected")

        def played(t0, n, lat=LAT):
            return tone.table[(np.arange(n) + t0 - lat) % tone.period].astype(np.float64)
        rig.freewheel(True)
        sink.record(1.0)  # past the start-up fade
        rig.freewheel(False)

        # 1. A valid change: drums' send -6 dB. Bass is untouched and must not move at all.
        rig.write_config(base_config(rig.server, drums_gain=-6))
        t0, y = record_during(rig, sink, d, lambda: d.signal(signal.SIGHUP))
        L, M = envelope(y[0], BLOCK), envelope(y[2], BLOCK)
        check(abs(db(L[0] / FULL)) < 0.01 and abs(db(L[-1] / FULL) + 6.0) < 0.01,
              f"drums went from {db(L[0] / FULL):+.2f} to {db(L[-1] / FULL):+.2f} dB (send 0 -> -6)")
        moving = np.nonzero(np.abs(L - L[-1]) > 1e-6)[0]
        check(len(moving) > 0 and moving[-1] < len(L) - 1, "the reload landed inside the recording")
        check(np.all(np.diff(L) <= 1e-7), "drums' level only falls during the change (a ramp, no jump)")
        steps = np.count_nonzero(np.abs(np.diff(L)) > 1e-7)
        check(steps >= 2, f"the change is spread over {steps} blocks of 10 ms (ramp_ms 20)")
        check_ramp("drums_L", t0, y[0], np.sqrt(0.5) * played(t0, y.shape[1]), 1.0, 10 ** (-6 / 20))
        mono_full = AMP * 0.5012 / np.sqrt(2)
        check(np.max(np.abs(M - M[0])) < 1e-6 * M[0] and abs(db(M[0] / mono_full)) < 0.01,
              "bass (not changed) stays exactly at its level through the reload: no dropout")
        n = y.shape[1] // 48 * 48
        periods = y[2][:n].reshape(-1, 48)
        check(np.array_equal(periods, np.broadcast_to(periods[0], periods.shape)),
              f"bass is bit-exact through the reload: all {len(periods)} periods identical sample for sample")
        check("config reloaded" in d.log_text(), "the log says the config was reloaded")

        # 1b. lookahead_ms of a running musician changes: the limiter keeps its delay line until a
        # restart, and JACK is told the delay that really runs (not the new config's figure).
        rig.write_config(base_config(rig.server, drums_gain=-6, drums_lookahead=1.5))
        n0 = d.log_text().count("config reloaded")
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.log_text().count("config reloaded") > n0, 5, "the look-ahead reload")
        check("drums: lookahead_ms 1.50 (72 frames) takes effect at the next restart" in d.log_text(),
              "the log says the new look-ahead waits for a restart")
        time.sleep(0.3)
        reported = rig.latency_range(f"{me}:drums_L")
        src.gen = lambda t0, n: np.where((np.arange(n) + t0) % 4800 == 0, 0.1, 0.0)
        rig.freewheel(True)
        sink.record(0.3)
        ti, yi = sink.record(0.5)
        rig.freewheel(False)
        src.gen = tone
        hits = np.nonzero(np.abs(yi[0]) > 1e-4)[0]
        delays = sorted(set(int(x) % 4800 for x in hits + ti))
        check(len(hits) >= 4 and delays == [48], f"an impulse comes out {delays} frames later")
        check(reported == (48, 48) and d.status()["jack"]["latency_frames"] == 48,
              f"JACK reports {reported} for drums_L, status.json {d.status()['jack']['latency_frames']}: "
              f"what is measured, not the new config's 72")

        # 2. An invalid config: rejected with file:line:col, the running one stays.
        bad = base_config(rig.server, drums_gain=-6).replace("peak_ceiling_db_spl: 110, lookahead_ms",
                                                              "peak_ceiling_db_spl: 500, lookahead_ms")
        rig.write_config(bad)
        d.signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in d.log_text(), 5, "the rejection in the log")
        log = d.log_text()
        check(f"{path}:" in log and "peak_ceiling_db_spl: 500 is out of range" in log,
              "the error names file:line:col, the key, the value and the range")
        check(d.alive() and d.status()["jack"]["state"] == "connected", "earshotd keeps running")
        rig.freewheel(True)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 6.0) < 0.01, "the old config keeps running (drums still at -6 dB)")

        # 3. A musician added: new ports, connected by their rules, fading in from silence.
        sink2 = rig.player("sink2", ins=["in_L", "in_R"])
        rig.write_config(base_config(rig.server, drums_gain=-6,
                                     extra_musicians=KEYS.format(sink2=sink2.name)))
        # Real time: record from before the reload until well after the 300 ms fade-in.
        out = {}
        th = threading.Thread(target=lambda: out.update(y=sink2.record(2.0, timeout=30)[1]))
        th.start()
        time.sleep(0.2)
        d.signal(signal.SIGHUP)
        wait_for(lambda: rig.connections(f"{me}:keys_R") == [sink2.port("in_R")], 5, "keys_R connected")
        check(rig.connections(f"{me}:keys_L") == [sink2.port("in_L")], "keys' new ports are connected by their rules")
        th.join()
        y = out["y"]
        K = envelope(y[0], BLOCK)
        on = np.nonzero(K > 1e-7)[0]
        check(len(on) > 0, "keys hears the band")
        check(K[on[0]] < 0.1 * FULL, f"keys starts {db(K[on[0]] / FULL):.1f} dB below full level (fade-in)")
        check(np.all(np.diff(K[on[0]:]) > -1e-6), "keys' level only rises")
        check(abs(db(K[-1] / FULL)) < 0.01, "keys reaches its level (start-up ramp 300 ms)")
        check(any(m["id"] == "keys" for m in d.status()["musicians"]), "status.json lists keys")
        check(rig.latency_range(f"{me}:keys_L") == (24, 24) and rig.latency_range(f"{me}:keys_R") == (24, 24),
              "keys' ports report keys' own look-ahead (0.5 ms = 24 frames)")
        check(rig.latency_range(f"{me}:drums_L") == (48, 48), "drums' ports still report 48 frames")
        check(rig.latency_range(f"{me}:tone", capture=False) == (48, 48),
              "the input reports the largest look-ahead as its playback latency")

        # 4. A musician removed: bass fades out, then its port goes.
        cfg = base_config(rig.server, drums_gain=-6, extra_musicians=KEYS.format(sink2=sink2.name))
        start = cfg.index("  - id: bass")
        end = cfg.index("  - id: keys")
        t0, y = record_during(rig, sink, d,
                              lambda: (rig.write_config(cfg[:start] + cfg[end:]), d.signal(signal.SIGHUP)))
        B = envelope(y[2], BLOCK)
        gone = np.nonzero(B < 1e-7)[0]
        check(len(gone) > 0, "bass went silent")
        # The last blocks before silence step down gradually (ramp_ms 20 = 2 blocks), not at once.
        i = gone[0]
        check(i >= 2 and B[i - 1] < B[0] * 0.99, "bass faded out rather than stopping dead")
        check_ramp("bass", t0, y[2], 10 ** (-6 / 20) * played(t0, y.shape[1]), 1.0, 0.0)
        wait_for(lambda: f"{me}:bass" not in rig.ports(me + ":"), 5, "bass' port to be unregistered")
        check(True, "bass' port is unregistered after its fade")

        # 5. Changed connect rules apply to the ports that exist: drums_L moves from sink:in_L to
        # sink2:in_L; a connection made by hand (drums_L -> sink:in_m) is not the rules' business.
        rig.connect(f"{me}:drums_L", sink.port("in_m"))
        moved = (cfg[:start] + cfg[end:]).replace(f'"{sink.name}:in_L", "{sink.name}:in_R"',
                                                  f'"{sink2.name}:in_L", "{sink.name}:in_R"')
        check(moved != cfg[:start] + cfg[end:], "(the drums connect rule is rewritten)")
        rig.write_config(moved)
        n0 = d.log_text().count("config reloaded")
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.log_text().count("config reloaded") > n0, 5, "the connect-rule reload")
        want = sorted([sink2.port("in_L"), sink.port("in_m")])
        wait_for(lambda: rig.connections(f"{me}:drums_L") == want, 5, f"drums_L connected to {want}")
        check(True, "drums_L: connected by its new rule, the old rule's connection dropped, the hand-made one kept")
        check(rig.connections(f"{me}:drums_R") == [sink.port("in_R")], "drums_R (rule unchanged) is untouched")
        rc = d.stop()
        check(rc == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
