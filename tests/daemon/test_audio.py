#!/usr/bin/python3
"""earshotd live: audio through, calibrated levels, sample-exact look-ahead delay per musician (two
different look-aheads), the latency JACK reports for each, auto-connect of clients that appear later, and the ceiling (SPEC §3.1, §3.3) in the live
graph — against a private jackd (dummy backend), in freewheel for the sample-exact parts."""

import numpy as np

from harness import (FS, Rig, base_config, check, db, main_wrapper, rms, sine, wait_for)

CEILING = 10 ** ((110 - (94 + 20 + 3.010299956639812)) / 20)  # 110 dB SPL peak -> 0.44618 linear


def true_peak_4x(x):
    """4x true peak with the same independent reference as the limiter's property test
    (tests/common/reference_true_peak.hpp: 16 taps per phase, Kaiser beta 8; docs/limiter.md)."""
    half, beta = 8, 8.0
    x = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x)))
    for p in (1, 2, 3):
        j = np.arange(2 * half)
        d = p / 4.0 + (half - 1) - j
        r = d / half
        w = np.i0(beta * np.sqrt(np.clip(1 - r * r, 0, None))) / np.i0(beta)
        c = np.sinc(d) * w
        c /= c.sum()
        y = np.convolve(x, c[::-1], mode="valid")
        peak = max(peak, float(np.max(np.abs(y))))
    return peak


def run(earshotd):
    with Rig(earshotd) as rig:
        rig.start_jack()
        # Different look-aheads, so a latency that is not per musician shows: drums 1.0 ms (48
        # frames), bass 0.5 ms (24 frames).
        cfg = rig.write_config(base_config(rig.server, drums_lookahead=1.0, bass_lookahead=0.5))
        d = rig.start_daemon(cfg)
        st = d.wait_connected()
        me = st["jack"]["client"]
        check(sorted(rig.ports(me + ":")) == sorted(f"{me}:{p}" for p in ["tone", "kick", "drums_L", "drums_R", "bass"]),
              "ports are named as SPEC §2 says: inputs by id, stereo <id>_L/_R, mono <id>")

        # Clients that appear after the daemon are connected by the rules (regex and exact names).
        src = rig.player("src", outs=["out"])
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 10, "auto-connect of tone to src:out")
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "auto-connect of drums_L")
        wait_for(lambda: rig.connections(f"{me}:bass") == [sink.port("in_m")], 10, "auto-connect of bass")
        check(True, "a regex source rule and exact destination rules connect clients that start later")

        # Latency: each output's capture latency is its own limiter's look-ahead on top of what
        # feeds it (a python client: 0); the input's playback latency is the largest look-ahead.
        check(rig.latency_range(f"{me}:drums_L") == (48, 48), "drums_L reports a capture latency of 48 frames")
        check(rig.latency_range(f"{me}:drums_R") == (48, 48), "drums_R too")
        check(rig.latency_range(f"{me}:bass") == (24, 24), "bass (0.5 ms) reports a capture latency of 24 frames")
        check(rig.latency_range(f"{me}:tone", capture=False) == (48, 48),
              "the input reports the largest look-ahead (48 frames) as its playback latency")
        check(st["jack"]["latency_frames"] == 48, "status.json reports latency_frames 48 (the largest)")

        # Audio through, in freewheel (sample-exact): a 1 kHz sine at -20 dBFS peak.
        amp = 0.1
        src.gen = sine(1000.0, amp)
        rig.freewheel(True)
        # Let the 300 ms start-up fade finish, then record.
        src_rec_t0, _ = sink.record(0.5)
        t0, y = sink.record(2.0)
        rig.freewheel(False)
        L, R, M = y
        check(abs(db(rms(L) * np.sqrt(2)) - (-20 - 3.0103)) < 0.02,
              f"drums_L: centre pan gives -23.01 dBFS peak ({db(rms(L) * np.sqrt(2)):.3f})")
        check(abs(db(rms(R) * np.sqrt(2)) - (-20 - 3.0103)) < 0.02, "drums_R: the same on the right")
        check(abs(db(rms(M) * np.sqrt(2)) - (-20 - 6.0)) < 0.02,
              f"bass (mono, master -6 dB): -26 dBFS peak ({db(rms(M) * np.sqrt(2)):.3f})")
        # Sample-exact: output(t) = gain * input(t - 48), with t the JACK frame time.
        t = np.arange(len(L)) + t0
        expect = np.sqrt(0.5) * amp * np.sin(2 * np.pi * 1000.0 * (t - 48) / FS)
        err = float(np.max(np.abs(L - expect)))
        check(err < 1e-5, f"drums_L is the input delayed by exactly 48 frames (max error {err:.2e})")
        expect_m = 10 ** (-6 / 20) * amp * np.sin(2 * np.pi * 1000.0 * (t - 24) / FS)
        err = float(np.max(np.abs(M - expect_m)))
        check(err < 1e-5, f"bass is the input delayed by exactly 24 frames, as reported (max error {err:.2e})")
        # Calibrated level at the ear, from the daemon's own meters (status.json, A-weighted 1 s).
        def level_ok():
            m = d.musician("drums")
            l = m.get("laeq_1s_dba") or [None]
            return m if l[0] is not None and abs(l[0] - (94 - 3.0103)) < 0.1 else None
        m = wait_for(level_ok, 5, "drums' LAeq,1s at 90.99 dBA in status.json")
        check(True, f"status.json: drums LAeq,1s = {m['laeq_1s_dba']} dBA per ear (expected 90.99)")

        # The ceiling holds in the live graph: +40 dBFS squares, loud noise, huge impulses, DC, fs/2.
        rng = np.random.default_rng(7)
        attacks = {
            "square +40 dBFS": lambda t0, n: 100.0 * np.sign(np.sin(2 * np.pi * 997 * (np.arange(n) + t0) / FS)),
            "white noise +20 dBFS": lambda t0, n: 10.0 * rng.standard_normal(n),
            "impulses 1e6": lambda t0, n: np.where((np.arange(n) + t0) % 4801 == 0, 1e6, 0.0),
            "DC +12 dBFS": lambda t0, n: np.full(n, 4.0),
            "fs/2 +30 dBFS": lambda t0, n: 31.6 * np.where((np.arange(n) + t0) % 2 == 0, 1.0, -1.0),
            "bursts": lambda t0, n: np.where(((np.arange(n) + t0) // 2400) % 2 == 0, 50.0 * rng.standard_normal(n), 0.0),
        }
        rig.freewheel(True)
        for name, gen in attacks.items():
            src.gen = gen
            _, y = sink.record(1.5)
            peak = float(np.max(np.abs(y)))
            check(np.all(np.isfinite(y)) and peak <= CEILING * (1 + 1e-6),
                  f"{name}: every output sample within the ceiling ({peak:.5f} <= {CEILING:.5f})")
            tp = max(true_peak_4x(ch[-48000:]) for ch in y)
            check(db(tp) <= db(CEILING) + 0.5, f"{name}: 4x true peak {db(tp) - db(CEILING):+.2f} dB re the ceiling")
        # NaN and Inf on the input: silence on the outputs, counted.
        src.gen = lambda t0, n: np.where((np.arange(n) + t0) % 1000 < 500, np.nan, np.inf)
        sink.record(0.2)  # what was in flight (the look-ahead, the queue) when the signal changed
        _, y = sink.record(0.5)
        check(np.all(y == 0.0), "NaN/Inf input blocks reach the outputs as silence")
        rig.freewheel(False)
        wait_for(lambda: d.status()["engine"]["bad_input_blocks"] > 0, 5, "bad_input_blocks counted")
        check(True, "status.json counts the bad input blocks")

        src.gen = sine(1000.0, amp)
        check(d.alive(), "earshotd is still running")
        rc = d.stop()
        check(rc == 0, f"SIGTERM: exit status 0 ({rc})")


if __name__ == "__main__":
    main_wrapper(run)
