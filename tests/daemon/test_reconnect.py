#!/usr/bin/python3
"""The JACK server is killed and restarted: earshotd keeps running and keeps the dose, reconnects by
itself with back-off, its ports and connections come back, audio flows again and the outputs ramp
up from silence — nothing comes back at full level (issue 4; SPEC §3.2, §3.6)."""

import signal
import time

import numpy as np

from harness import (Rig, base_config, check, db, envelope, main_wrapper, rms, sine, wait_for)

AMP = 0.316  # -10 dBFS peak: drums hear 101 dBA per ear (centre pan)


def run(earshotd):
    # Period 1024: the dummy driver runs without xruns there (jack-testing.md §2.3), so the
    # real-time recording of the fade after the reconnect is clean.
    with Rig(earshotd, period=1024) as rig:
        rig.start_jack()
        # A long start-up ramp (10 s) makes the fade after the reconnect easy to see.
        cfg = rig.write_config(base_config(rig.server, startup_ms=10000))
        d = rig.start_daemon(cfg)
        st = d.wait_connected()
        me = st["jack"]["client"]
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")

        # Real time: the dose counts what is heard. Wait for 4 s of dose past the fade.
        wait_for(lambda: (d.musician("drums").get("dose") or {}).get("seconds", 0) >= 12, 20, "12 s of dose")
        before = d.musician("drums")["dose"]
        check(before["niosh_pct"] > 0.5, f"drums' NIOSH dose is counting ({before['niosh_pct']:.3f} %)")

        # Kill the server hard. Clients get their shutdown callback (jack-testing.md pitfall 9).
        # (The test's own clients leave first: python-jack can crash when its server vanishes.)
        for p in rig.players:
            p.close()
        rig.players.clear()
        rig.ctl.close()
        rig.ctl = None
        rig.jackd.kill(signal.SIGKILL)
        wait_for(lambda: (d.status() or {}).get("jack", {}).get("state") == "waiting", 5, "earshotd to notice")
        check(d.alive(), "earshotd keeps running without a JACK server")
        time.sleep(2.5)  # a few back-off retries against no server
        kept = d.musician("drums")["dose"]
        check(kept["niosh_pct"] >= before["niosh_pct"], "the dose is kept while JACK is away")
        check("retrying" in d.log_text(), "the log says it retries")

        # The server comes back under the same name; clients (re)appear right away.
        rig.start_jack()
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        sink.recording = True  # from before earshotd rejoins: the fade must start from silence
        t_back = time.monotonic()
        d.wait_connected(timeout=20)
        check(time.monotonic() - t_back < 8, f"earshotd rejoined within {time.monotonic() - t_back:.1f} s")
        wait_for(lambda: sorted(rig.ports(me + ":")) == sorted(f"{me}:{p}" for p in ["tone", "kick", "drums_L", "drums_R", "bass"]),
                 5, "earshotd's ports")
        check(True, "its ports are back")
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 5, "tone reconnected")
        wait_for(lambda: rig.connections(f"{me}:drums_R") == [sink.port("in_R")], 5, "drums_R reconnected")
        wait_for(lambda: rig.connections(f"{me}:bass") == [sink.port("in_m")], 5, "bass reconnected")
        check(True, "connections are re-applied by the config's rules")

        # Outputs ramp up from silence: record 2 s in real time from before the rejoin.
        t0, y = sink.record(2.0)
        L = y[0]
        steady = AMP * np.sqrt(0.5) / np.sqrt(2)  # RMS at full level
        env = envelope(L, 480)  # 10 periods of 1 kHz: exact RMS per block
        on = np.nonzero(env > 1e-6)[0]
        check(len(on) > 0, "audio flows after the reconnect")
        first = env[on[0]]
        check(first < 0.1 * steady, f"the first audible block is {db(first / steady):.1f} dB below full level")
        d_env = np.diff(env[on[0]:])
        # A fade of 10 s rises 0.0048 of full level per 10 ms block; a jump (a restart at full
        # level, a missing ramp) would be a step of up to 1. Clock-driven xruns on the dummy driver
        # can dent a block slightly; a dent is not a jump and is allowed up to 1 % of full level.
        check(d_env.max() < 0.02 * steady, f"no jump up during the fade (largest step {d_env.max() / steady:.4f} of full)")
        check(d_env.min() > -0.01 * steady, f"and no dip beyond xrun dents (largest step down {-d_env.min() / steady:.4f})")
        check(env[-1] < 0.5 * steady, f"2 s into a 10 s fade the level is still {db(env[-1] / steady):.1f} dB down")

        # Fast-forward (freewheel) past the fade: full level again.
        rig.freewheel(True)
        sink.record(10.0)
        _, y = sink.record(1.0)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / steady)) < 0.05, f"full level after the fade ({db(rms(y[0]) / steady):+.3f} dB)")

        # The day's dose continued from where it was, and keeps counting.
        wait_for(lambda: d.musician("drums")["dose"]["niosh_pct"] > kept["niosh_pct"] + 0.01, 15,
                 "the dose to count again after the reconnect")
        after = d.musician("drums")["dose"]
        check(after["seconds"] >= kept["seconds"],
              f"the dose day continues: {kept['seconds']} s -> {after['seconds']} s, NIOSH "
              f"{kept['niosh_pct']:.3f} % -> {after['niosh_pct']:.3f} %")
        check(d.log_text().count("connected to JACK server") == 2, "one join at start, one after the restart")
        rc = d.stop()
        check(rc == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
