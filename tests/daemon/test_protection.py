#!/usr/bin/python3
"""Dose-aware protection in the running daemon (issue 7): the loudness cap holds the level live,
dose warnings fire once per threshold in order (status, log, the exposure log's events.csv), a
momentary RS2 warning, the dose guard lowers the mix at its configured rate when the planned show
would exceed the budget, an engineer's `earshot guard suspend` acknowledges it (logged with who and
when), and no MIDI mapping can do that."""

import csv
import os
import subprocess
import time

from harness import Rig, check, main_wrapper, sine, wait_for

# -13 dBFS peak sine; calibration -20 dBFS = 107 dB SPL; the send's +3.01 dB offsets the centre
# pan: each ear hears 114 dBA, the cap holds it at 110 dBA (NIOSH 100 % in 89 s at 110 dBA).
CONFIG = """version: 1
jack: {{ client_name: earshot-{tag} }}
mixer: {{ startup_ramp_ms: 100 }}
dosimetry: {{ guard: limit, guard_rate_db_per_min: 12, warn_pct: [5, 10, 20] }}
show: {{ length_min: 2 }}
inputs:
  - id: tone
    connect: ["/src-{tag}:out/"]
musicians:
  - id: drums
    output: stereo
    calibration: {{ sine_dbfs: -20, db_spl: 107 }}
    protection: {{ peak_ceiling_db_spl: 125, max_laeq_1s_dba: 110 }}
    mix: {{ sends: {{ tone: {{ gain_db: 3.0103 }} }} }}
"""


def run(earshotd):
    earshot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(earshotd))), "cli", "earshot")
    with Rig(earshotd) as rig:
        rig.start_jack()
        path = rig.write_config(CONFIG.format(tag=rig.server))
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        env = dict(os.environ, EARSHOT_SOCKET=os.path.join(rig.tmp, "run", "control.sock"))
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, 10 ** (-13 / 20))
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 10, "tone connected")

        # The cap, live: 114 dBA in, held at 110 dBA.
        m = wait_for(lambda: (lambda x: x if (x.get("laeq_1s_dba") or [None])[0] is not None
                              and x["dose"]["seconds"] >= 2 else None)(d.musician("drums")), 10, "levels")
        check(m["laeq_1s_dba"][0] <= 110.5, f"the loudness cap holds the ear at {m['laeq_1s_dba'][0]:.2f} dBA (cap 110)")
        check(m["loudness_cap"]["cap_dba"] == 110, "status shows the cap")

        # Warnings at 5, 10, 20 % NIOSH (about 5, 9, 18 s at 110 dBA), once each, in order.
        wait_for(lambda: d.musician("drums")["dose"]["niosh_pct"] >= 21, 40, "21 % NIOSH")
        time.sleep(0.6)
        msgs = [w["message"] for w in d.musician("drums")["warnings"]]
        niosh = [w for w in msgs if "of today's NIOSH dose" in w]
        check([w.split(" %")[0] for w in niosh] == ["5", "10", "20"],
              f"status lists the NIOSH warnings once each, in order: {niosh}")
        check(any("over RS2" in w for w in msgs), "a momentary warning: LAeq,1s over RS2 (100 dBA)")
        ev = list(csv.DictReader(open(os.path.join(d.state, "exposure", "drums", "events.csv"))))
        kinds = [(e["kind"], float(e["threshold"])) for e in ev if e["kind"] == "niosh_daily"]
        check(kinds == [("niosh_daily", 5.0), ("niosh_daily", 10.0), ("niosh_daily", 20.0)],
              f"the exposure log's events.csv has them, in order: {kinds}")
        check(d.log_text().count("of today's NIOSH dose reached") == 3, "and the log, once each")

        # The guard: 2 minutes at 110 dBA would be ~135 % NIOSH: it lowers the mix, 12 dB/min at most.
        g = d.musician("drums")["guard"]
        check(any("projected" in w["message"] and "lowering the mix" in w["message"]
                  for w in d.musician("drums")["warnings"]),
              "the guard warned that the planned show is over budget, and acts")
        check(g["mode"] == "limit" and g["attenuation_db"] > 0.5,
              f"it attenuates ({g['attenuation_db']:.2f} dB; now projecting {g['projected_pct']:.0f} %)")
        # The rate: sample the attenuation for a few seconds.
        samples = []
        for _ in range(8):
            samples.append((time.monotonic(), d.musician("drums")["guard"]["attenuation_db"]))
            time.sleep(0.5)
        rates = [abs(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:]) if b[0] > a[0]]
        check(max(rates) <= 12 / 60 * 1.5 + 0.02, f"no faster than 12 dB/min (fastest seen {max(rates) * 60:.1f} dB/min "
                                                 "between 0.5 s status snapshots)")
        lvl = d.musician("drums")["laeq_1s_dba"][0]
        check(lvl < 110 - 0.3, f"the ear level follows the guard ({lvl:.2f} dBA)")

        # An engineer acknowledges: the guard suspends and lets go (1 dB/s), logged with who.
        p = subprocess.run([earshot, "guard", "suspend", "drums"], env=env, capture_output=True, text=True)
        check(p.returncode == 0 and "suspended by root" in p.stdout, f"earshot guard suspend drums: {p.stdout.strip()}")
        g = wait_for(lambda: (lambda x: x if x["suspended"] else None)(d.musician("drums")["guard"]), 3, "suspended")
        check(g["suspended_by"].startswith("root") and g["suspended_at_utc"] > 0, "status: suspended, by whom and when")
        time.sleep(2.5)
        g2 = d.musician("drums")["guard"]
        check(g2["attenuation_db"] < g["attenuation_db"], f"the attenuation returns: {g['attenuation_db']:.2f} -> {g2['attenuation_db']:.2f} dB")
        ev = list(csv.DictReader(open(os.path.join(d.state, "exposure", "drums", "events.csv"))))
        check(any(e["kind"] == "guard_suspended" and "root" in e["message"] for e in ev), "events.csv records the acknowledgement")
        p = subprocess.run([earshot, "guard", "resume", "drums"], env=env, capture_output=True, text=True)
        check(p.returncode == 0, "earshot guard resume drums")
        wait_for(lambda: not d.musician("drums")["guard"]["suspended"], 3, "resumed in status")

        # No MIDI control can do it: there is no such action.
        bad = CONFIG.format(tag=rig.server) + """controllers:
  - id: pad
    api: jack
    port: "pad"
    musician: drums
    mappings:
      - { note: 36, kind: momentary, action: guard }
"""
        bad_path = rig.write_config(bad, "bad.yaml")
        p = subprocess.run([earshotd, "--check-config", "--config", bad_path], capture_output=True, text=True)
        check(p.returncode == 78 and "action" in p.stderr, f"a MIDI mapping cannot suspend the guard: {p.stderr.strip()[:160]}")
        check(d.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
