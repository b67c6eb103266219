#!/usr/bin/python3
"""`earshot demo` as a newcomer runs it (SPEC §7): with no JACK server running it brings up a private
one, plays the band through earshotd with configs/demo.yaml, shows the live view, ends by itself,
prints the exposure report and leaves no process and no temporary directory behind."""

import glob
import os
import subprocess
import sys
import time

from harness import check, main_wrapper


def pids_of(text):
    """Pids whose command line contains `text` (from /proc: no procps needed)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(int(d))
    return found


def run(earshot):
    env = dict(os.environ)
    # No server of that name exists: the demo must start its own.
    env["JACK_DEFAULT_SERVER"] = f"nosuch-{os.getpid()}"
    env.pop("JACK_NO_START_SERVER", None)
    before = set(glob.glob("/tmp/earshot-demo-*"))
    t0 = time.monotonic()
    p = subprocess.run([earshot, "demo", "--seconds", "6"], env=env, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - t0
    out = p.stdout
    sys.stdout.write(out[-3000:] + "\n--- stderr ---\n" + p.stderr[-2000:] + "\n")
    check(p.returncode == 0, f"earshot demo exits 0 ({p.returncode}) after {took:.1f} s")
    check("starting a private one" in out, "it started a private JACK server")
    for name in ["Ruben (drums, IEM)", "Ana (bass, IEM)", "Mika (vocals, wedge)"]:
        check(name in out, f"the live view shows {name}")
    check("NIOSH today" in out and "LAeq,1s" in out, "with levels and dose columns")
    check("The show is over" in out and "WHO weekly" in out, "and ends with the exposure report")
    for who in ["ruben", "ana", "mika"]:
        check(f"\n{who}   WHO weekly" in out, f"{who} has an exposure log")
    time.sleep(0.5)
    leftovers = pids_of("jackd -s -n earshot-demo-") + pids_of("configs/demo.yaml --state-dir")
    check(not leftovers, f"no jackd or earshotd left running ({leftovers})")
    check(set(glob.glob("/tmp/earshot-demo-*")) <= before, "its temporary directory is removed")


if __name__ == "__main__":
    main_wrapper(run)
