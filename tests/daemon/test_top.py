#!/usr/bin/python3
"""`earshot top` driven in tmux (issue 6): the full-screen view shows every musician with level and
dose bars and follows the meters (a level that changes on the screen, not just the clock); an
80x24 terminal gets the compact layout, without wrapped lines, the header kept while 22 musicians
scroll; a stalled daemon (SIGSTOP) is flagged; the terminal is restored (normal screen, cursor
shown, echo and canonical mode back) after q, Ctrl-C, Ctrl-\\, Ctrl-Z (and taken again on fg),
and when earshotd goes away (exit 3, said why)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from harness import Rig, base_config, check, main_wrapper, wait_for

EXTRA = "".join(f"""  - id: m{i:02d}
    output: mono
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix:
      sends:
        tone: {{ gain_db: -20 }}
""" for i in range(1, 21))


def run(earshotd):
    if not shutil.which("tmux"):
        print("SKIP: tmux not installed")
        sys.exit(77)
    earshot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(earshotd))), "cli", "earshot")
    with Rig(earshotd) as rig:
        rig.start_jack()
        d = rig.start_daemon(rig.write_config(base_config(rig.server, extra_musicians=EXTRA)))
        me = d.wait_connected()["jack"]["client"]
        src = rig.player("src", outs=["out"])

        # 1 kHz, 0.1 peak for 2 s, then 12 dB lower for 2 s, and again: the level on screen moves.
        def gen(t0, n):
            t = t0 + np.arange(n)
            amp = np.where((t // 96000) % 2 == 0, 0.1, 0.025)
            return amp * np.sin(2 * np.pi * 1000 * t / 48000)
        src.gen = gen
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 10, "tone connected")
        sock = os.path.join(rig.tmp, "run", "control.sock")
        tm = ["tmux", "-L", f"earshot-{rig.tag}"]
        env = dict(os.environ, TERM="xterm-256color")
        env.pop("TMUX", None)

        def tmux(*args):
            return subprocess.run(tm + list(args), capture_output=True, text=True, env=env)

        def screen(target="top", join=False):
            return tmux("capture-pane", "-p", *(["-J"] if join else []), "-t", target).stdout

        def pane(fmt, target="top"):
            return tmux("display-message", "-p", "-t", target, fmt).stdout.strip()

        def alive(target="top"):
            return tmux("has-session", "-t", target).returncode == 0

        def restored(target):
            return pane("#{alternate_on} #{cursor_flag}", target) == "0 1"

        def shell(name, cols, rows):
            tmux("new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows),
                 "bash --norc --noprofile -i")
            tmux("send-keys", "-t", name, f"export EARSHOT_SOCKET={sock} PS1='$ '", "Enter")

        def run_in(name, cmd):
            tmux("send-keys", "-t", name, cmd, "Enter")

        def tty_modes(name):
            """echo and icanon as the shell's terminal has them now (stty)."""
            tmux("send-keys", "-t", name, "clear; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo",
                 "Enter")
            return wait_for(lambda: (lambda m: m.group(0) if m else None)(
                re.search(r"-?icanon -?echo|-?echo -?icanon", screen(name))), 5, "stty output")

        def level(s, name="drums"):
            m = re.search(rf"^\s*{name}\s+(?:L\s+[#.!]+\s+|L[#.!]+\s*)(\d+(?:\.\d)?)", s, re.M)
            return float(m.group(1)) if m else None

        try:
            # --- a wide terminal ---------------------------------------------------------------------
            tmux("new-session", "-d", "-s", "top", "-x", "160", "-y", "40",
                 f"EARSHOT_SOCKET={sock} {earshot} top --rate 5")
            first = wait_for(lambda: (lambda s: s if "drums" in s and "bass" in s and level(s) else None)(screen()), 10,
                             "top to show the musicians and a level")
            check("earshot top" in first and "LAeq,1s" in first and "NIOSH today" in first and "WHO week" in first
                  and "time left" in first, "the header: level, dose (day, week) and time-left columns")
            row = next(l for l in first.splitlines() if re.match(r"\s*drums\s", l))
            check(len(re.findall(r"[#.!]{10}", row)) >= 2 and "%" in row,
                  f"drums' row has a level bar and dose bars for the day and the week: {row.strip()}")
            check(pane("#{alternate_on} #{cursor_flag}") == "1 0", "on the alternate screen, cursor hidden")
            seen = set()
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and len(seen) < 2:
                v = level(screen())
                if v is not None:
                    seen.add(round(v / 6))  # 91 vs 79 dBA: different buckets
                time.sleep(0.2)
            check(len(seen) >= 2, f"the level on screen follows the signal (not just the clock): {sorted(seen)}")
            tmux("send-keys", "-t", "top", "q")
            wait_for(lambda: not alive(), 5, "top to quit on q")
            check(True, "q quits")

            # --- 80x24 over "SSH": compact, no wrapping, the header kept, scrolling -----------------
            shell("sh", 80, 24)
            run_in("sh", f"{earshot} top --rate 5; echo top-exit=$?")
            s = wait_for(lambda: (lambda s: s if level(s) and "m01" in s else None)(screen("sh")), 10,
                         "top in 80x24")
            lines = s.rstrip("\n").split("\n")
            check(len(lines) == 24 and lines[0].startswith("earshot top"), "24 rows, the title on the first")
            check(max(len(l) for l in lines) <= 79 and screen("sh", join=True) == s,
                  f"no line is wider than 79 columns and none wrapped (widest: {max(len(l) for l in lines)})")
            check("LAeq,1s" in s and "NIOSH" in s and "WHO" in s and re.search(r"^drums\s+L[#.!]{6}\s*\d+ R[#.!]{6}", s, re.M),
                  "one compact row per musician with both ears' bars")
            check(re.search(r"lines 1-\d+ of 22", s) and "m20" not in s,
                  "22 musicians do not fit: the footer says which lines are shown")
            tmux("send-keys", "-t", "sh", "End")
            s = wait_for(lambda: (lambda s: s if "m20" in s else None)(screen("sh")), 5, "the end of the list")
            check(s.split("\n")[0].startswith("earshot top") and "LAeq,1s" in s and "drums" not in s,
                  "End scrolls to the last musicians; the header stays")
            tmux("send-keys", "-t", "sh", "Home")
            wait_for(lambda: "drums" in screen("sh"), 5, "Home")
            # A narrower and shorter terminal: SIGWINCH lays it out again.
            tmux("resize-window", "-t", "sh", "-x", "70", "-y", "12")
            s = wait_for(lambda: (lambda s: s if re.search(r"lines 1-\d+ of 22", s) and len(s.rstrip("\n").split("\n")) <= 12
                                  else None)(screen("sh")), 5, "the layout for 70x12")
            check(max(len(l) for l in s.rstrip("\n").split("\n")) <= 69, "after a resize to 70x12 it fits again")
            tmux("resize-window", "-t", "sh", "-x", "80", "-y", "24")

            # A stalled daemon: the screen says so, and recovers.
            os.kill(d.p.pid, signal.SIGSTOP)
            try:
                wait_for(lambda: "no update from earshotd" in screen("sh"), 8, "the staleness warning")
                check(True, "earshotd stopped (SIGSTOP): top warns that nothing arrives")
            finally:
                os.kill(d.p.pid, signal.SIGCONT)
            wait_for(lambda: "no update from earshotd" not in screen("sh"), 8, "the warning to go")
            check(True, "and the warning goes once updates come again")

            # Ctrl-Z gives the terminal back; fg takes it again.
            tmux("send-keys", "-t", "sh", "C-z")
            wait_for(lambda: "Stopped" in screen("sh") and restored("sh"), 5, "top to stop")
            check(True, "Ctrl-Z: normal screen, cursor shown")
            check(tty_modes("sh") in ("icanon echo", "echo icanon"), "and echo and canonical mode are back")
            run_in("sh", "clear; fg; echo top-exit=$?")  # the line that started it went on at the stop
            wait_for(lambda: pane("#{alternate_on} #{cursor_flag}", "sh") == "1 0" and level(screen("sh")), 5,
                     "top to take the terminal again")
            check(True, "fg: top redraws on the alternate screen")
            tmux("send-keys", "-t", "sh", "C-c")
            wait_for(lambda: "top-exit=0" in screen("sh"), 5, "top to quit on Ctrl-C")
            check(restored("sh") and tty_modes("sh") in ("icanon echo", "echo icanon"),
                  "Ctrl-C: exit 0, the terminal restored")
            run_in("sh", f"clear; {earshot} top --rate 5; echo top-exit=$?")
            wait_for(lambda: level(screen("sh")), 10, "top again")
            tmux("send-keys", "-t", "sh", "C-\\")
            wait_for(lambda: "top-exit=0" in screen("sh"), 5, "top to quit on Ctrl-\\")
            check(restored("sh") and tty_modes("sh") in ("icanon echo", "echo icanon"),
                  "Ctrl-\\ (SIGQUIT): exit 0, the terminal restored (no core, no raw mode left)")

            # The daemon goes away under a running top: it says so and exits.
            run_in("sh", f"clear; {earshot} top --rate 5; echo top-exit=$?")
            wait_for(lambda: level(screen("sh")), 10, "top running again")
            d.stop()
            shown = wait_for(lambda: (lambda s: s if "top-exit=" in s else None)(screen("sh")), 10, "top to exit")
            check("earshotd went away" in shown and "top-exit=3" in shown and restored("sh"),
                  "when earshotd stops, top restores the terminal, says why and exits 3")
            check(tty_modes("sh") in ("icanon echo", "echo icanon"), "echo and canonical mode are back")
        finally:
            subprocess.run(tm + ["kill-server"], capture_output=True, env=env)


if __name__ == "__main__":
    main_wrapper(run)
