#!/usr/bin/python3
"""`earshot top` driven in tmux (issue 6): the full-screen view shows every musician and updates;
q quits cleanly; when earshotd goes away, top leaves the screen and says so."""

import os
import shutil
import subprocess
import sys
import time

from harness import Rig, base_config, check, main_wrapper, sine, wait_for


def run(earshotd):
    if not shutil.which("tmux"):
        print("SKIP: tmux not installed")
        sys.exit(77)
    earshot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(earshotd))), "cli", "earshot")
    with Rig(earshotd) as rig:
        rig.start_jack()
        d = rig.start_daemon(rig.write_config(base_config(rig.server)))
        me = d.wait_connected()["jack"]["client"]
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, 0.1)
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 10, "tone connected")
        sock = os.path.join(rig.tmp, "run", "control.sock")
        tm = ["tmux", "-L", f"earshot-{rig.tag}"]
        env = dict(os.environ, TERM="xterm-256color")
        env.pop("TMUX", None)

        def screen():
            return subprocess.run(tm + ["capture-pane", "-p", "-t", "top"], capture_output=True, text=True, env=env).stdout

        def alive():
            return subprocess.run(tm + ["has-session", "-t", "top"], capture_output=True, env=env).returncode == 0

        try:
            subprocess.run(tm + ["new-session", "-d", "-s", "top", "-x", "160", "-y", "40",
                                 f"EARSHOT_SOCKET={sock} {earshot} top --rate 5"], check=True, env=env)
            first = wait_for(lambda: (lambda s: s if "drums" in s and "bass" in s else None)(screen()), 10,
                             "top to show the musicians")
            check("earshot top" in first and "LAeq,1s" in first and "NIOSH" in first,
                  "top shows the header, the level bars and the dose columns")
            wait_for(lambda: "90." in screen() or "91." in screen(), 10, "drums' level (90.99 dBA) on screen")
            check(True, "the level of the playing tone appears")
            time.sleep(1.5)
            second = screen()
            check(second != first, "the screen updates")
            subprocess.run(tm + ["send-keys", "-t", "top", "q"], env=env)
            wait_for(lambda: not alive(), 5, "top to quit on q")
            check(True, "q quits cleanly")

            # The daemon goes away under a running top: it says so and exits.
            subprocess.run(tm + ["new-session", "-d", "-s", "top", "-x", "160", "-y", "40",
                                 f"EARSHOT_SOCKET={sock} {earshot} top --rate 5; echo top-exit=$?; sleep 30"],
                           check=True, env=env)
            wait_for(lambda: "drums" in screen(), 10, "top running again")
            d.stop()
            shown = wait_for(lambda: (lambda s: s if "top-exit=" in s else None)(screen()), 10, "top to exit")
            check("earshotd went away" in shown and "top-exit=3" in shown,
                  "when earshotd stops, top restores the terminal, says why and exits 3")
        finally:
            subprocess.run(tm + ["kill-server"], capture_output=True, env=env)


if __name__ == "__main__":
    main_wrapper(run)
