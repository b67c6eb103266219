#!/usr/bin/python3
"""`earshot demo` as a newcomer runs it (SPEC §7): with no JACK server running it brings up a private
one, plays the band through earshotd with configs/demo.yaml, shows the live view with real levels,
ends by itself, prints the exposure report (a finite LAeq for everyone) and leaves no process and no
temporary directory behind. Ended early the way a terminal does it — Ctrl-C or a hangup sent to its
process group — it stops in order (earshotd fades out while the server is still there, and never
sees the signal itself: a SIGHUP would be a reload for it); killed outright (SIGKILL), its guardian
stops earshotd, then jackd (which frees its slot in JACK's machine-wide registry of 8 servers), and
removes the temporary directory."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import check, jack_registered as registered, main_wrapper, wait_for


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


def demo_env():
    env = dict(os.environ)
    # No server of that name exists: the demo must start its own.
    env["JACK_DEFAULT_SERVER"] = f"nosuch-{os.getpid()}"
    env.pop("JACK_NO_START_SERVER", None)
    return env


def children_of(demo_pid):
    """The demo's jackd and earshotd: both carry earshot-demo-<pid> (server and client name)."""
    return pids_of(f"earshot-demo-{demo_pid} ")


def full_run(earshot):
    before = set(glob.glob("/tmp/earshot-demo-*"))
    t0 = time.monotonic()
    p = subprocess.run([earshot, "demo", "--seconds", "6"], env=demo_env(), capture_output=True, text=True,
                       timeout=90)
    took = time.monotonic() - t0
    out = p.stdout
    sys.stdout.write(out[-3000:] + "\n--- stderr ---\n" + p.stderr[-2000:] + "\n")
    check(p.returncode == 0, f"earshot demo exits 0 ({p.returncode}) after {took:.1f} s")
    check("starting a private one" in out, "it started a private JACK server")
    for name in ["Ruben (drums, IEM)", "Ana (bass, IEM)", "Mika (vocals, wedge)"]:
        check(name in out, f"the live view shows {name}")
    check("NIOSH today" in out and "LAeq,1s" in out, "with levels and dose columns")
    # The last frame shows real levels: a LAeq,1s figure (not "--") on every ear line.
    last = out[out.rfind("earshot demo "):out.find("The show is over")]
    levels = [float(x) for x in re.findall(r"^ .*? [LRM]   [#.]+\s+(\d+\.\d)\s", last, re.M)]
    check(len(levels) == 5 and all(60 < v < 115 for v in levels),
          f"the last frame shows a LAeq,1s for all 5 ears: {levels} dBA")
    check("The show is over" in out and "WHO weekly" in out, "and ends with the exposure report")
    for who in ["ruben", "ana", "mika"]:
        m = re.search(rf"\n{who}   WHO weekly.*?\n.*?\n  \d{{4}}-\d\d-\d\d\s+\d+:\d\d:\d\d\s+(\S+)", out)
        check(m is not None, f"{who} has an exposure log")
        laeq = float(m.group(1)) if m and re.fullmatch(r"-?\d+(\.\d+)?", m.group(1)) else float("nan")
        check(60 < laeq < 115, f"{who}'s report has a finite LAeq ({m.group(1) if m else '?'} dBA): audio was heard")
    time.sleep(0.5)
    leftovers = pids_of("jackd -s -n earshot-demo-") + pids_of("configs/demo.yaml --client-name")
    check(not leftovers, f"no jackd or earshotd left running ({leftovers})")
    check(set(glob.glob("/tmp/earshot-demo-*")) <= before, "its temporary directory is removed")


def ended_by(earshot, sig, what):
    """Starts the demo in a session of its own (as a terminal's job), waits for the show, then sends
    `sig` to its whole process group, as the terminal does."""
    keep = tempfile.mkdtemp(prefix="earshot-demo-test-")
    before = set(glob.glob("/tmp/earshot-demo-*"))
    out = open(os.path.join(keep, "stdout"), "w+")
    p = subprocess.Popen([earshot, "demo", "--seconds", "60", "--keep", keep], env=demo_env(), stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "connected" in open(out.name).read() or p.poll() is not None, 30, "the show to start")
        check(p.poll() is None, f"{what}: the demo runs")
        wait_for(lambda: len(children_of(p.pid)) == 2, 10, "jackd and earshotd")
        kids = children_of(p.pid)
        check(all(os.getpgid(k) != p.pid for k in kids), f"{what}: jackd and earshotd are not in the demo's process group")
        time.sleep(1.0)
        t = time.monotonic()
        os.killpg(p.pid, sig)
        rc = p.wait(30)
        check(rc == 0, f"{what}: the demo cleans up and exits 0 ({rc}) after {time.monotonic() - t:.1f} s")
        text = open(out.name).read()
        check("The show is over" in text, f"{what}: it prints the exposure report")
        log = open(os.path.join(keep, "earshotd.log")).read()
        check("stopping: fading out" in log and "<5>stopped" in log, f"{what}: earshotd faded out and stopped")
        check("JACK shut earshotd down" not in log, f"{what}: the server was still there for earshotd's fade-out")
        check("SIGHUP" not in log and "reloading" not in log, f"{what}: earshotd never saw the terminal's signal")
        time.sleep(0.3)
        check(not [k for k in kids if os.path.exists(f"/proc/{k}")], f"{what}: no jackd or earshotd left")
        check(set(glob.glob("/tmp/earshot-demo-*")) <= before, f"{what}: its temporary directory is removed")
        check(not registered(f"earshot-demo-{p.pid}"), f"{what}: its jackd left JACK's server registry")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        shutil.rmtree(keep, ignore_errors=True)


def killed(earshot):
    """SIGKILL of the demo alone: its guardian stops earshotd, then jackd, and cleans up."""
    before = set(glob.glob("/tmp/earshot-demo-*"))
    p = subprocess.Popen([earshot, "demo", "--seconds", "60"], env=demo_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(children_of(p.pid)) == 2, 30, "jackd and earshotd")
        kids = children_of(p.pid)
        time.sleep(1.0)
        p.kill()
        p.wait()
        wait_for(lambda: not [k for k in kids if os.path.exists(f"/proc/{k}")], 20, "the children to stop")
        check(True, "SIGKILL of the demo: its jackd and earshotd are stopped")
        check(not registered(f"earshot-demo-{p.pid}"),
              "its jackd stopped cleanly: no slot left in JACK's server registry")
        wait_for(lambda: set(glob.glob("/tmp/earshot-demo-*")) <= before, 5, "the temporary directory to go")
        check(True, "and its temporary directory is removed")
    finally:
        for k in children_of(p.pid):
            os.kill(k, signal.SIGKILL)
        for d in set(glob.glob("/tmp/earshot-demo-*")) - before:  # nobody was left to remove it
            shutil.rmtree(d, ignore_errors=True)


def run(earshot):
    full_run(earshot)
    ended_by(earshot, signal.SIGINT, "Ctrl-C")
    ended_by(earshot, signal.SIGHUP, "hangup")
    killed(earshot)


if __name__ == "__main__":
    main_wrapper(run)
