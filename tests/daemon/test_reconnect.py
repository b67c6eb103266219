#!/usr/bin/python3
"""The JACK server is killed and restarted: earshotd keeps running and keeps the dose, reconnects by
itself with back-off (0.5, 1, 2, 4, then every 5 s, timed from its debug log), its ports and
connections come back, audio flows again and the outputs ramp up from silence — recorded from before
earshotd rejoins, so the very first samples are checked: nothing comes back at full level (issue 4;
SPEC §3.2, §3.6)."""

import re
import signal
import threading
import time

import numpy as np

from harness import (FS, Rig, base_config, check, db, envelope, main_wrapper, rms, sine, wait_for)

AMP = 0.316  # -10 dBFS peak: drums hear 101 dBA per ear (centre pan)


class LogWatch:
    """Stamps each new line of a log file with the (monotonic) time it was first seen."""

    def __init__(self, path):
        self.path, self.lines, self._stop = path, [], False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        pos, part = 0, ""
        while not self._stop:
            try:
                with open(self.path, errors="replace") as f:
                    f.seek(pos)
                    data = f.read()
                    pos = f.tell()
            except OSError:
                data = ""
            part += data
            *done, part = part.split("\n")
            now = time.monotonic()
            self.lines.extend((now, l) for l in done)
            time.sleep(0.005)

    def stop(self):
        self._stop = True
        self.th.join(1)


def run(earshotd):
    # Period 1024: the dummy driver runs without xruns there (jack-testing.md §2.3), so the
    # real-time recording of the fade after the reconnect is clean.
    with Rig(earshotd, period=1024) as rig:
        rig.start_jack()
        # A long start-up ramp (10 s) makes the fade after the reconnect easy to see.
        cfg = rig.write_config(base_config(rig.server, startup_ms=10000))
        d = rig.start_daemon(cfg, args=["--debug"])  # --debug: one log line per connection attempt
        watch = LogWatch(d.log)
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
        # Back-off: attempts 0.5 s after the loss, then 1, 2, 4 and 5 s apart (5 attempts, 12.5 s).
        attempt = re.compile(r"JACK: attempt (\d+) failed .*; next in ([0-9.]+) s")

        def attempts():
            return [(t, int(m.group(1)), float(m.group(2))) for t, l in watch.lines if (m := attempt.search(l))]
        wait_for(lambda: len(attempts()) >= 5, 20, "five connection attempts")
        lost = [t for t, l in watch.lines if "JACK shut earshotd down" in l]
        a = attempts()
        times = [lost[0]] + [x[0] for x in a[:5]]
        gaps = [round(b - c, 2) for b, c in zip(times[1:], times[:-1])]
        check(all(abs(g - w) < 0.15 for g, w in zip(gaps, [0.5, 1, 2, 4, 5])),
              f"retries after {gaps} s (0.5, 1, 2, 4, 5 expected)")
        check([x[2] for x in a[:5]] == [1.0, 2.0, 4.0, 5.0, 5.0], f"announced waits {[x[2] for x in a[:5]]}")
        st = wait_for(lambda: (d.status() or {}).get("jack", {}).get("attempts", 0) >= 5 and d.status()["jack"], 2,
                      "status.json to count the attempts")
        check(st["state"] == "waiting" and st["attempts"] >= 5 and 0 <= st["retry_in_s"] <= 5.0,
              f"status.json: waiting, {st['attempts']} attempts, next in {st['retry_in_s']} s")
        kept = d.musician("drums")["dose"]
        check(kept["niosh_pct"] >= before["niosh_pct"], "the dose is kept while JACK is away")
        check("retrying" in d.log_text(), "the log says it retries")

        # The server comes back under the same name; clients (re)appear right away. The sink
        # records from its first cycle, before earshotd rejoins: the fade must start from silence.
        rig.start_jack()
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"], record_now=True)
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

        # Outputs ramp up from silence: everything the sink got since its first cycle, until 2 s
        # past now.
        t0, y = sink.record(time.monotonic() - t_back + 2.0, keep=True)
        L = y[0]
        steady = AMP * np.sqrt(0.5) / np.sqrt(2)  # RMS at full level
        peak_full = AMP * np.sqrt(0.5)
        heard = np.nonzero(np.abs(L) > 0)[0]
        check(len(heard) > 0 and heard[0] > 0,
              f"the recording starts before the rejoin ({heard[0] if len(heard) else '-'} silent samples first)")
        first_ms = np.abs(L[heard[0]:heard[0] + FS // 10])
        # 10 s from silence: 1 % of full level after 100 ms; the outputs are connected a little
        # after the engine starts, so allow up to 5 % (-26 dB). A restart at full level is 0 dB.
        check(float(first_ms.max()) < 0.05 * peak_full,
              f"the first 100 ms after the rejoin peak at {db(first_ms.max() / peak_full):.1f} dB re full level")
        env = envelope(L[heard[0]:], 480)  # 10 periods of 1 kHz: exact RMS per block
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
        check(env[-1] < 0.5 * steady and np.max(np.abs(L)) < 0.5 * peak_full,
              f"{len(env) * 0.01:.1f} s into a 10 s fade the level is still {db(env[-1] / steady):.1f} dB down, "
              f"and no sample came near full level")

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
        watch.stop()
        check(rc == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
