#!/usr/bin/python3
"""The control socket and the `earshot` commands against a running earshotd on a private jackd
(issue 6): every command through the CLI and as raw JSON lines; `set` and `panic` change the output
as expected (freewheel, sample-exact); permissions (socket 0660, a read-only group, a stranger
refused); abuse (garbage, 1 MiB lines, 200 clients at once, 300 connect/disconnect cycles, a
subscriber that never reads) without blocking the daemon, leaking or disturbing audio."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time

import numpy as np

from harness import (Rig, base_config, check, db, main_wrapper, rms, wait_for)

DC = 0.1
FULL = DC * np.sqrt(0.5)  # drums_L with a DC input at centre pan


class Conn:
    def __init__(self, path, timeout=5):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.hello = self.line()

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)

    def send(self, obj):
        self.s.sendall((obj if isinstance(obj, (bytes, str)) else json.dumps(obj)).encode()
                       if not isinstance(obj, bytes) else obj)

    def req(self, obj):
        self.send(json.dumps(obj) + "\n")
        while True:
            r = self.line()
            if "event" not in r:
                return r

    def close(self):
        self.s.close()


def run(earshotd):
    earshot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(earshotd))), "cli", "earshot")
    with Rig(earshotd) as rig:
        os.chmod(rig.tmp, 0o755)  # other users must reach the socket for the permission checks
        run_dir = os.path.join(rig.tmp, "run")
        os.makedirs(run_dir, mode=0o755)
        rig.start_jack()
        text = base_config(rig.server).replace("mixer:", "control: { group: root, read_group: nogroup }\nmixer:", 1)
        path = rig.write_config(text)
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        sock = os.path.join(run_dir, "control.sock")
        env = dict(os.environ, EARSHOT_SOCKET=sock)

        def cli(*args, user=None):
            cmd = [earshot, *args]
            if user is not None:
                cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout, p.stderr

        # --- the socket file -----------------------------------------------------------------
        st = os.stat(sock)
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
              f"control.sock is a socket with mode {oct(stat.S_IMODE(st.st_mode))} (0660: not world-accessible)")
        check(st.st_gid == 65534, "owned by the read group (nogroup) so that group can connect at all")

        # --- every command through the CLI -------------------------------------------------------
        rc, out, err = cli("status")
        check(rc == 0 and "drums" in out and "bass" in out and "connected" in out, "earshot status")
        rc, out, _ = cli("status", "--json")
        j = json.loads(out)
        check(rc == 0 and j["ok"] and j["result"]["jack"]["latency_frames"] == 48, "earshot status --json")
        rc, out, _ = cli("set", "drums", "master", "-6")
        check(rc == 0 and "master -6.0 dB" in out, f"earshot set drums master -6: {out.strip()}")
        rc, out, _ = cli("set", "bass", "tone", "gain", "-3", "pan", "0.5", "unmute")
        check(rc == 0 and "gain -3.0 dB" in out, f"earshot set bass tone gain -3 pan 0.5: {out.strip()}")
        rc, _, err = cli("set", "nobody", "master", "0")
        check(rc == 1 and "not_found" in err, "an unknown musician is refused (exit 1)")
        rc, _, err = cli("set", "drums", "master", "+40")
        check(rc == 1 and "[-90, 12]" in err, "a gain above +12 dB is refused")
        rc, _, _ = cli("set", "drums")
        check(rc == 2, "usage errors exit 2")
        rc, out, _ = cli("scene", "save", "verse")
        check(rc == 0 and "saved" in out, "earshot scene save verse")
        rc, out, _ = cli("set", "drums", "master", "0")
        rc, out, _ = cli("scene", "list")
        check(rc == 0 and "verse" in out, "earshot scene list")
        rc, out, _ = cli("scene", "recall", "verse")
        check(rc == 0 and "recalled" in out, "earshot scene recall verse")
        check(d.musician("drums", json.loads(cli("status", "--json")[1])["result"])["mix"]["master_db"] == -6,
              "the recall brought drums' master back to -6 dB")
        rc, _, err = cli("scene", "recall", "chorus")
        check(rc == 1 and "not_found" in err, "recalling an unknown scene is refused")
        rc, out, _ = cli("reload")
        check(rc == 0 and "reloaded" in out, "earshot reload")
        open(path, "w").write(text.replace("peak_ceiling_db_spl: 110, lookahead_ms", "peak_ceiling_db_spl: 200, lookahead_ms"))
        rc, _, err = cli("reload")
        check(rc == 1 and "invalid_config" in err and f"{path}:" in err and "200 is out of range" in err,
              "a reload of an invalid config fails with its errors (file:line:col)")
        open(path, "w").write(text)
        rc, out, _ = cli("dim", "--db", "-12")
        check(rc == 0 and "-12.0 dB" in out, "earshot dim --db -12")
        rc, out, _ = cli("dim", "off")
        check(rc == 0 and "dim off" in out, "earshot dim off")
        rc, _, err = cli("learn", "drums.master")
        check(rc == 1 and "unavailable" in err, "earshot learn without MIDI controllers: unavailable")
        rc, _, err = subprocess.run([earshot, "status", "--socket", os.path.join(rig.tmp, "none.sock")],
                                    capture_output=True, text=True).returncode, None, None
        check(rc == 3, "no daemon at the socket: exit 3")

        # --- raw JSON lines ---------------------------------------------------------------------
        c = Conn(sock)
        check(c.hello["hello"] == "earshot" and c.hello["protocol"] == 1 and c.hello["access"] == "control",
              f"greeting: {c.hello}")
        r = c.req({"id": 1, "cmd": "ping"})
        check(r == {"id": 1, "ok": True, "result": {"pong": True}}, "ping")
        r = c.req({"id": "x", "cmd": "commands"})
        check(r["ok"] and {e["cmd"] for e in r["result"]["commands"]} >= {"status", "set", "scene", "reload", "dim",
                                                                          "panic", "learn", "subscribe"},
              "commands lists every command")
        c.send("this is not json\n")
        r = c.line()
        check(not r["ok"] and r["error"]["code"] == "bad_json", "garbage: bad_json, and the connection stays")
        r = c.req({"id": 2, "cmd": "frobnicate"})
        check(r["id"] == 2 and r["error"]["code"] == "unknown_command", "an unknown command")
        r = c.req({"id": 3, "cmd": "set", "musician": "drums", "master_db": -6, "colour": "red"})
        check(r["error"]["code"] == "bad_request" and "colour" in r["error"]["message"], "an unknown argument")
        r = c.req({"id": 4, "cmd": "set", "musician": "drums", "input": "tone", "pan": 3})
        check(r["error"]["code"] == "bad_request", "pan out of range")
        r = c.req({"id": 5, "cmd": "status"})
        check(r["ok"] and r["result"]["musicians"][0]["id"] == "drums", "status as a raw request")
        r = c.req({"id": 6, "cmd": "subscribe", "rate_hz": 10})
        check(r["ok"], "subscribe at 10 Hz")
        t0 = time.monotonic()
        events = [c.line() for _ in range(5)]
        dt = time.monotonic() - t0
        check(all(e["event"] == "status" for e in events) and events[-1]["seq"] > events[0]["seq"] and 0.2 < dt < 2,
              f"5 status events in {dt:.2f} s")
        r = c.req({"id": 7, "cmd": "unsubscribe"})
        check(r["ok"], "unsubscribe")
        c.close()

        # --- set and panic change the audio (freewheel, sample-exact) ----------------------------
        src = rig.player("src", outs=["out"])
        src.gen = lambda t0, n: np.full(n, DC)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        rig.freewheel(True)
        sink.record(1.0)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 6.0) < 0.01, f"drums at master -6 dB: {db(rms(y[0]) / FULL):+.3f} dB")
        cli("set", "drums", "master", "-12")
        rig.freewheel(True)
        sink.record(0.5)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 12.0) < 0.01, f"after `earshot set drums master -12`: {db(rms(y[0]) / FULL):+.3f} dB")

        out = {}
        th = threading.Thread(target=lambda: out.update(y=sink.record(40.0, timeout=120)[1]))
        rig.freewheel(True)
        th.start()
        time.sleep(0.3)
        rc, _, _ = cli("panic")
        th.join()
        rig.freewheel(False)
        L = out["y"][0]
        level = FULL * 10 ** (-12 / 20)
        start = int(np.argmax(L < level * (1 - 1e-5)))
        end = int(np.nonzero(L)[0][-1]) + 1
        check(rc == 0 and 0 < start < end and np.all(L[end:] == 0),
              "panic: drums fell to silence during the recording")
        check(end - start <= 256, f"panic: from full level to silence in {end - start} samples (one period: 256)")
        check(np.all(np.diff(L[start - 1:end + 1]) <= 1e-9), "as a ramp (no jump up, no click)")
        cli("panic", "off")
        rig.freewheel(True)
        sink.record(2.5)
        _, y = sink.record(0.3)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 12.0) < 0.01, "panic off: back to the live mix after the fade-in")

        # --- permissions ------------------------------------------------------------------------
        rc, out, err = cli("status", user=65534)
        check(rc == 0 and "drums" in out, "nobody (in the read group nogroup) may read the status")
        rc, _, err = cli("set", "drums", "master", "0", user=65534)
        check(rc == 1 and "permission_denied" in err, "but not change the mix")
        rc, _, err = cli("panic", user=65534)
        check(rc == 1 and "permission_denied" in err, "nor panic")
        rc, _, err = cli("status", user=1)
        check(rc == 3 and "Permission denied" in err, "a user in neither group cannot even connect")

        # --- abuse ------------------------------------------------------------------------------
        pid = d.p.pid
        fds0 = len(os.listdir(f"/proc/{pid}/fd"))
        c = Conn(sock)
        try:
            c.send(b"x" * (1 << 20))  # the daemon stops reading at 64 KiB: the send may break
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.line()
            check(r["error"]["code"] == "line_too_long", "a 1 MiB line: line_too_long")
        except (EOFError, ConnectionResetError):
            check(False, "a 1 MiB line gets an error before the close")
        try:
            c.line()
            check(False, "the connection is closed after it")
        except (EOFError, ConnectionResetError, BrokenPipeError):
            check(True, "and the connection is closed")
        c.close()
        rnd = np.random.default_rng(3)
        for _ in range(50):
            c = Conn(sock)
            c.send(bytes(rnd.integers(0, 256, 2000, dtype=np.uint8)) + b"\n")
            c.close()
        check(cli("status")[0] == 0, "50 connections of random bytes: the daemon still answers")

        # A subscriber that never reads.
        lazy = Conn(sock)
        lazy.send(json.dumps({"cmd": "subscribe", "rate_hz": 20}) + "\n")

        # 200 clients at once, each asking for the status.
        conns = [Conn(sock, timeout=20) for _ in range(200)]
        for k, cc in enumerate(conns):
            cc.send(json.dumps({"id": k, "cmd": "status"}) + "\n")
        ok = sum(1 for k, cc in enumerate(conns) if cc.line().get("id") == k)
        check(ok == 200, f"200 clients at once: {ok} got their status")
        extra = []
        refused = 0
        for _ in range(80):  # 200 + the lazy one + 80 > max_clients (256)
            try:
                cx = Conn(sock)
                if cx.hello.get("ok") is False:
                    refused += 1
                extra.append(cx)
            except (EOFError, ConnectionResetError):
                refused += 1
        check(refused >= 20, f"beyond control.max_clients (256) new clients are refused with an error ({refused})")
        for cc in conns + extra:
            cc.close()
        for _ in range(300):
            Conn(sock).close()
        check(cli("status")[0] == 0, "300 connect/disconnect cycles: still answering")

        # Audio kept flowing all along, and nothing leaked.
        rig.freewheel(True)
        _, y = sink.record(0.3)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 12.0) < 0.01, "audio still flows at the set level")
        wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= fds0 + 2, 10, "file descriptors to be released")
        check(True, f"file descriptors back to {len(os.listdir(f'/proc/{pid}/fd'))} (before: {fds0})")
        # The lazy subscriber's socket buffer fills (a few hundred KiB at ~50 KB/s), then its queue.
        def lazy_handled():
            s = json.loads(cli("status", "--json")[1])["result"]["control"]
            return s if s["events_dropped"] > 0 or s["slow_disconnects"] > 0 else None
        s = wait_for(lazy_handled, 40, "events for the lazy subscriber to be dropped", interval=0.5)
        check(True, f"the lazy subscriber: {s['events_dropped']} events dropped, {s['slow_disconnects']} "
                    "disconnected; the daemon never waited for it")
        rig.freewheel(True)
        _, y = sink.record(0.3)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 12.0) < 0.01, "and audio still flows")
        lazy.close()
        check(d.stop() == 0, "SIGTERM: exit 0")
        check(not os.path.exists(sock), "the socket file is removed at exit")


if __name__ == "__main__":
    main_wrapper(run)
