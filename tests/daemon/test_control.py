#!/usr/bin/python3
"""The control socket and the `earshot` commands against a running earshotd on a private jackd
(issue 6, docs/control-protocol.md):

* access: the daemon creates its runtime directory and makes it traversable, the socket is 0660
  of the read group, status.json 0640; a peer in the read group only by a supplementary group and
  without a passwd entry reads; a stranger gets EACCES, and with the socket opened up to 0666 the
  daemon itself refuses it; read-only peers may `scene list` but not `scene save`, `set`, `panic`;
* every command through the CLI and as raw JSON lines, replies in request order (also around a
  `learn` that waits), a key given twice refused, the `commands` list;
* the status fields the issue lists, held meters per consumer, the subscription rate (+-15 %);
* `set` master, send gain, pan and mute change the output as expected (freewheel, sample-exact),
  scene recall is ramped, clamped values are reported, a damaged scenes.json is kept aside;
* abuse: garbage, 1 MiB lines, random bytes, 200 clients at once, a pipelined flood with VmRSS
  bounded and audio checked while it runs, a read-only uid filling its quota while root's
  `earshot panic` still works, idle connections closed, a reload withdrawing access;
* one daemon per runtime directory: a second one exits 73 and leaves the socket alone; a stale
  socket is replaced; a daemon user outside control.read_group is a config error (78)."""

import json
import os
import select
import signal
import socket
import stat
import subprocess
import threading
import time

import numpy as np

from harness import Rig, base_config, check, db, main_wrapper, rms, wait_for
from midi_clients import MidiSender, cc

DC = 0.1
FULL = DC * np.sqrt(0.5)  # drums_L with a DC input at centre pan
NOBODY = 65534  # uid nobody, gid nogroup (the read group)
STRANGER = 1  # uid/gid daemon: in neither group


class Conn:
    def __init__(self, path, timeout=5):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.hello = self.line()

    def raw(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return l

    def line(self):
        return json.loads(self.raw())

    def send(self, obj):
        self.s.sendall(obj if isinstance(obj, bytes) else (obj if isinstance(obj, str) else json.dumps(obj)).encode())

    def req(self, obj):
        self.send(json.dumps(obj) + "\n")
        while True:
            r = self.line()
            if "event" not in r:
                return r

    def close(self):
        self.s.close()


def as_user(uid, gid=None, groups=()):
    """setpriv to another uid (may have no passwd entry), gid and supplementary groups."""
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid if gid is None else gid}"]
    return cmd + ([f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"])


# Holds N connections as another user: prints {"held": n, "refused": [messages]}, then waits for
# its stdin to close.
HOLDER = r"""
import json, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held, refused = [], []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        f = b""
        while b"\n" not in f:
            d = s.recv(4096)
            if not d:
                break
            f += d
        hello = json.loads(f.split(b"\n")[0]) if f else {}
    except OSError as e:
        refused.append(str(e))
        continue
    if hello.get("hello") == "earshot":
        held.append(s)
    else:
        refused.append(hello.get("error", {}).get("code", "closed") + ": " + hello.get("error", {}).get("message", ""))
        s.close()
print(json.dumps({"held": len(held), "refused": refused}), flush=True)
sys.stdin.read()
"""

# N clients pipeline K status requests each (half of them never read); a probe pings meanwhile.
# Prints {"lines": ..., "probe_max_ms": ..., "probe_median_ms": ..., "seconds": ...}.
FLOOD = r"""
import json, selectors, socket, sys, threading, time
path, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
probe = socket.socket(socket.AF_UNIX); probe.settimeout(30); probe.connect(path)
pf = probe.makefile("rwb")
pf.readline()
lat, stop = [], False
def ping():
    while not stop:
        t = time.monotonic(); pf.write(b'{"cmd":"ping"}\n'); pf.flush()
        while b'"pong"' not in pf.readline(): pass
        lat.append(time.monotonic() - t); time.sleep(0.05)
th = threading.Thread(target=ping); th.start()
sel = selectors.DefaultSelector(); conns = []
req = b'{"cmd":"status"}\n' * k
t0 = time.monotonic()
for i in range(n):
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.setblocking(False)
    st = {"s": s, "out": req, "read": i % 2 == 0, "lines": 0}
    conns.append(st); sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
readers = [c for c in conns if c["read"]]
while time.monotonic() - t0 < 60:
    if all(c["lines"] >= k + 1 for c in readers) and all(not c["out"] for c in conns): break
    for key, ev in sel.select(0.5):
        st = key.data
        if ev & selectors.EVENT_WRITE and st["out"]:
            try: st["out"] = st["out"][st["s"].send(st["out"]):]
            except BlockingIOError: pass
            if not st["out"]: sel.modify(st["s"], selectors.EVENT_READ, st)
        if ev & selectors.EVENT_READ and st["read"]:
            try: d = st["s"].recv(1 << 20)
            except BlockingIOError: continue
            if not d: sel.unregister(st["s"]); continue
            st["lines"] += d.count(b"\n")
secs = time.monotonic() - t0
time.sleep(1)
stop = True; th.join()
lat.sort()
print(json.dumps({"lines": sum(c["lines"] for c in readers), "want": len(readers) * (k + 1), "seconds": secs,
                  "probe_max_ms": 1000 * lat[-1], "probe_median_ms": 1000 * lat[len(lat) // 2], "probes": len(lat)}), flush=True)
for c in conns: c["s"].close()
"""


def rss_mib(pid, key="VmRSS"):
    """Resident memory of a process in MiB: VmRSS (all of it, with JACK's shared memory) or RssAnon
    (the daemon's own heap: what a flood of clients could grow)."""
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1]) / 1024
    return 0.0


def config_text(rig):
    burst = f'    connect: ["burst-{rig.server}:out"]\n'
    text = base_config(rig.server, inputs_extra=burst)
    text = text.replace("mixer:", "control: { group: root, read_group: nogroup }\n"
                                  "dosimetry: { guard: warn }\nmixer:", 1)
    text = text.replace("protection: { peak_ceiling_db_spl: 110, lookahead_ms: 1.0 }",
                        "protection: { peak_ceiling_db_spl: 110, lookahead_ms: 1.0, max_laeq_1s_dba: 105 }")
    return text + f"""controllers:
  - id: desk
    api: jack
    port: "desk-{rig.server}:out"
    mappings:
      - {{ cc: 7, channel: 1, action: master, musician: bass }}
"""


def run(earshotd):
    earshot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(earshotd))), "cli", "earshot")
    with Rig(earshotd) as rig:
        # Like /run: others may traverse the parent. The runtime directory itself is the daemon's.
        os.chmod(rig.tmp, 0o711)
        run_dir = os.path.join(rig.tmp, "run")
        sock = os.path.join(run_dir, "control.sock")
        state = os.path.join(rig.tmp, "state")
        rig.start_jack()
        desk = MidiSender(rig, "desk")
        text = config_text(rig)
        path = rig.write_config(text)
        os.chmod(path, 0o644)
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        env = dict(os.environ, EARSHOT_SOCKET=sock)

        def cli(*args, user=None):
            cmd = [earshot, *args]
            if user is not None:
                cmd = (as_user(*user) if isinstance(user, tuple) else as_user(user)) + cmd
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout, p.stderr

        def status():
            return json.loads(cli("status", "--json")[1])["result"]

        # An idle connection (no subscription, no request): closed after 60 s (checked at the end).
        idle = Conn(sock, timeout=120)
        idle_t0 = time.monotonic()

        # --- the runtime directory, the socket file, status.json --------------------------------
        dm = stat.S_IMODE(os.stat(run_dir).st_mode)
        check(dm & 0o001 and not dm & 0o006,
              f"the daemon made its runtime directory traversable, not listable, for others ({oct(dm)})")
        st = os.stat(sock)
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
              f"control.sock is a socket with mode {oct(stat.S_IMODE(st.st_mode))} (0660: not world-accessible)")
        check(st.st_gid == NOBODY, "owned by the read group (nogroup) so that group can connect at all")
        sm = stat.S_IMODE(os.stat(os.path.join(run_dir, "status.json")).st_mode)
        check(sm == 0o640, f"status.json is {oct(sm)} (0640: the traversable directory does not expose it)")
        check(not [n for n in os.listdir(run_dir) if n.startswith(".cs-")], "no private bind directory left over")

        # --- access ------------------------------------------------------------------------------
        rc, out, err = cli("status", user=(2001, 2001, (NOBODY,)))
        check(rc == 0 and "drums" in out,
              f"uid 2001 (no passwd entry), in nogroup by a supplementary group, reads the status: {err.strip()}")
        rc, out, err = cli("status", user=NOBODY)
        check(rc == 0 and "drums" in out, "nobody (primary group nogroup) reads the status")
        rc, _, err = cli("set", "drums", "master", "0", user=NOBODY)
        check(rc == 1 and "permission_denied" in err, "but may not change the mix")
        rc, _, err = cli("panic", user=NOBODY)
        check(rc == 1 and "permission_denied" in err, "nor panic")
        rc, out, _ = cli("scene", "list", user=NOBODY)
        check(rc == 0, "a read-only peer may list the scenes")
        rc, _, err = cli("scene", "save", "x", user=NOBODY)
        check(rc == 1 and "permission_denied" in err and "scene change" in err, "but not save one")
        rc, _, err = cli("status", user=STRANGER)
        check(rc == 3 and "Permission denied" in err, "a user in neither group cannot even connect (EACCES)")
        os.chmod(sock, 0o666)
        rc, _, err = cli("status", user=STRANGER)
        os.chmod(sock, 0o660)
        check(rc == 3 and "may not use this socket" in err,
              f"with the socket opened up to 0666 the daemon itself refuses the stranger: {err.strip()}")
        rc, _, err = cli("status", user=(3000, 0))
        check(rc == 0, f"a uid in control.group (root) only, not in the read group, connects (ACL on the socket): {err.strip()}")

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
        for bad in (["set", "drums"], ["set", "bass", "tone", "pan", "nan"], ["set", "bass", "tone", "pan", "2"],
                    ["set", "bass", "tone", "gain", "abc"], ["set", "drums", "master", ""], ["dim", "--db", "abc"],
                    ["top", "--rate", "x"]):
            rc, _, err = cli(*bad)
            check(rc == 2 and err.strip(), f"usage error, exit 2: earshot {' '.join(bad)} ({err.strip()})")
        rc, out, _ = cli("scene", "save", "verse")
        check(rc == 0 and "saved" in out, "earshot scene save verse")
        cli("set", "drums", "master", "0")
        rc, out, _ = cli("scene", "list")
        check(rc == 0 and "verse" in out, "earshot scene list")
        rc, out, _ = cli("scene", "recall", "verse")
        check(rc == 0 and "recalled" in out, "earshot scene recall verse")
        check(d.musician("drums", status())["mix"]["master_db"] == -6, "the recall brought drums' master back to -6 dB")
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
        rc, out, _ = cli("guard", "suspend", "drums")
        check(rc == 0 and "suspended by root" in out, f"earshot guard suspend drums: {out.strip()}")
        rc, out, _ = cli("guard", "resume", "drums")
        check(rc == 0 and "resumed" in out, "earshot guard resume drums")
        rc, _, err = cli("learn", "nobody.master")
        check(rc == 1 and "not_found" in err, "earshot learn for an unknown musician: not_found")
        rc = subprocess.run([earshot, "status", "--socket", os.path.join(rig.tmp, "none.sock")],
                            capture_output=True, text=True).returncode
        check(rc == 3, "no daemon at the socket: exit 3")
        # A daemon that speaks another protocol version is refused, not misread.
        fake_path = os.path.join(rig.tmp, "v2.sock")
        fake = socket.socket(socket.AF_UNIX)
        fake.bind(fake_path)
        fake.listen(1)

        def serve_v2():
            c_, _ = fake.accept()
            c_.sendall(b'{"hello":"earshot","protocol":2,"version":"9.0.0","access":"control"}\n')
            c_.recv(1024)
            c_.close()
        threading.Thread(target=serve_v2, daemon=True).start()
        p = subprocess.run([earshot, "panic", "--socket", fake_path], capture_output=True, text=True, timeout=10)
        check(p.returncode == 3 and "speaks control protocol 2" in p.stderr and "protocol 1" in p.stderr,
              f"a daemon speaking protocol 2: refused with a clear message ({p.stderr.strip()})")
        fake.close()

        # --- raw JSON lines ---------------------------------------------------------------------
        c = Conn(sock)
        check(c.hello["hello"] == "earshot" and c.hello["protocol"] == 1 and c.hello["access"] == "control",
              f"greeting: {c.hello}")
        r = c.req({"id": 1, "cmd": "ping"})
        check(r == {"id": 1, "ok": True, "result": {"pong": True}}, "ping")
        r = c.req({"id": "x", "cmd": "commands"})
        cmds = {e["cmd"]: e for e in r["result"]["commands"]}
        check(r["ok"] and set(cmds) == {"ping", "commands", "status", "subscribe", "unsubscribe", "set", "scene",
                                        "reload", "dim", "panic", "learn", "guard"}, "commands lists every command")
        check(cmds["scene"]["read_only"] is False and cmds["scene"]["read_only_actions"] == ["list"]
              and cmds["status"]["read_only"] and not cmds["panic"]["read_only"],
              "scene is not read-only (only its list action is)")
        c.send("this is not json\n")
        r = c.line()
        check(not r["ok"] and r["error"]["code"] == "bad_json", "garbage: bad_json, and the connection stays")
        r = c.req({"id": 2, "cmd": "frobnicate"})
        check(r["id"] == 2 and r["error"]["code"] == "unknown_command", "an unknown command")
        c.send('{"id":9,"cmd":"ping","cmd":"reload"}\n')
        r = c.line()
        check(r["id"] == 9 and r["error"]["code"] == "bad_request" and "duplicate key 'cmd'" in r["error"]["message"],
              "a key given twice is refused (not last-wins: no reload ran)")
        c.send(('{"id":10,"cmd":"ping","' + "k" * 39 + '\u20ac":1}\n').encode())
        r = json.loads(c.raw().decode("utf-8"))
        check(r["error"]["code"] == "bad_request" and "unknown argument" in r["error"]["message"],
              "an error quoting a cut multi-byte name is valid UTF-8 JSON")
        r = c.req({"id": 3, "cmd": "set", "musician": "drums", "master_db": -6, "colour": "red"})
        check(r["error"]["code"] == "bad_request" and "colour" in r["error"]["message"], "an unknown argument")
        r = c.req({"id": 4, "cmd": "set", "musician": "drums", "input": "tone", "pan": 3})
        check(r["error"]["code"] == "bad_request", "pan out of range")
        # Pipelined: the replies come in the order of the requests.
        c.send("".join(json.dumps({"id": 100 + k, "cmd": ["ping", "status", "commands"][k % 3]}) + "\n"
                       for k in range(30)))
        ids = [c.line()["id"] for _ in range(30)]
        check(ids == list(range(100, 130)), "30 pipelined requests: 30 replies in request order")
        # Every command that changes things, as a raw request.
        r = c.req({"id": 11, "cmd": "set", "musician": "bass", "input": "kick", "gain_db": 0, "pan": 0, "mute": False})
        check(r["ok"] and r["result"]["gain_db"] == 0 and r["result"]["mute"] is False, "set a send (raw)")
        r = c.req({"id": 12, "cmd": "set", "musician": "drums", "master_db": -6})
        check(r["ok"] and r["result"]["master_db"] == -6, "set a master (raw)")
        r = c.req({"id": 13, "cmd": "scene", "action": "save", "name": "raw-1"})
        check(r["ok"] and r["result"]["saved"] == "raw-1", "scene save (raw)")
        r = c.req({"id": 14, "cmd": "scene", "action": "list"})
        check(r["ok"] and {"verse", "raw-1"} <= {s["name"] for s in r["result"]["scenes"]}
              and all(s["saved_utc"] > 1e9 for s in r["result"]["scenes"]), "scene list (raw), with save times")
        r = c.req({"id": 15, "cmd": "scene", "action": "recall", "name": "raw-1"})
        check(r["ok"] and set(r["result"]["musicians"]) == {"drums", "bass"} and r["result"]["skipped"] == []
              and r["result"]["clamped"] == [], "scene recall (raw): every musician, nothing skipped or clamped")
        r = c.req({"id": 16, "cmd": "scene", "action": "delete", "name": "raw-1"})
        check(r["ok"], "scene delete (raw)")
        r = c.req({"id": 17, "cmd": "reload"})
        check(r["ok"] and r["result"]["musicians"] == 2 and r["result"]["inputs"] == 2, "reload (raw)")
        r = c.req({"id": 18, "cmd": "dim", "on": True, "db": -10})
        check(r["ok"] and r["result"]["dim_db"] == -10, "dim on (raw)")
        check(status()["mixer"]["dim_db"] == -10, "the status shows the dim")
        r = c.req({"id": 19, "cmd": "dim", "on": False})
        check(r["ok"] and r["result"]["dim_db"] is None, "dim off (raw)")
        r = c.req({"id": 20, "cmd": "guard", "musician": "bass", "action": "suspend"})
        check(r["ok"] and r["result"]["suspended"] is True and r["result"]["mode"] == "warn", "guard suspend (raw)")
        r = c.req({"id": 21, "cmd": "guard", "musician": "bass", "action": "resume"})
        check(r["ok"] and r["result"]["suspended"] is False, "guard resume (raw)")
        r = c.req({"id": 22, "cmd": "panic", "on": True})
        check(r["ok"] and r["result"]["panic"] is True and status()["mixer"]["panic"] is True, "panic on (raw)")
        r = c.req({"id": 23, "cmd": "panic", "on": False})
        check(r["ok"] and r["result"]["panic"] is False, "panic off (raw)")
        r = c.req({"id": 24, "cmd": "learn", "target": "drums.send.nothing"})
        check(not r["ok"] and r["error"]["code"] == "not_found", "learn of an unknown input (raw)")

        # learn waits for a control to move: the next request's reply still comes after it.
        wait_for(lambda: status()["midi"]["controllers"][0]["state"] == "open", 10, "the desk controller to open")
        c.send('{"id":30,"cmd":"learn","target":"drums.send.tone"}\n{"id":31,"cmd":"ping"}\n')
        wait_for(lambda: status()["midi"]["learning"] == "drums.send.tone", 5, "the learn to start")
        c.s.settimeout(0.3)
        try:
            early = c.line()
        except socket.timeout:
            early = None
        c.s.settimeout(5)
        check(early is None, f"while the learn waits, the ping after it is not answered ({early})")
        desk.send(cc(21, 64))
        first, second = c.line(), c.line()
        check(first["id"] == 30 and first["ok"] and first["result"]["learned"] == "drums.send.tone" and second["id"] == 31,
              f"the learn's reply, then the ping's: {first}, {second}")
        lc = Conn(sock)
        lc.send('{"id":1,"cmd":"learn","target":"drums.master"}\n')
        wait_for(lambda: status()["midi"]["learning"] == "drums.master", 5, "a second learn to start")
        lc.close()
        wait_for(lambda: status()["midi"]["learning"] is None, 2, "the learn to be cancelled")
        check(True, "a learn whose client disconnects is cancelled (not left waiting 10 s)")

        # --- status fields (the list) ------------------------------------------------------
        burst = rig.player("burst", outs=["out"])
        # 1 kHz at 0.5 peak for 50 ms every 2 s of frame time, else silence: a peak to hold.
        burst.gen = lambda t0, n: np.where(((t0 + np.arange(n)) % 96000) < 2400,
                                           0.5 * np.sin(2 * np.pi * 1000 * (t0 + np.arange(n)) / 48000), 0.0)
        src = rig.player("src", outs=["out"])
        src.gen = lambda t0, n: np.full(n, DC)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        wait_for(lambda: rig.connections(f"{me}:kick") == [burst.port("out")], 10, "kick connected")
        s = wait_for(lambda: (lambda x: x if d.musician("bass", x).get("laeq_1s_dba", [None])[0] else None)(status()),
                     10, "bass' level")
        jk = s["jack"]
        check(jk["state"] == "connected" and jk["sample_rate"] == 48000 and jk["period"] == 256
              and jk["latency_frames"] == 48 and isinstance(jk["xruns"], int)
              and isinstance(jk["dsp_load_pct"], (int, float)), f"JACK: state, rate, period, latency, xruns, DSP {jk}")
        for m in s["musicians"]:
            n = m["channels"]
            check(len(m["laeq_1s_dba"]) == n and len(m["peak_db_spl"]) == n and m["limiter_gr_db"] >= 0,
                  f"{m['id']}: level and peak per ear ({n}), limiter gain reduction")
            check(set(m["dose"]) >= {"niosh_pct", "osha_pct", "osha_action_pct", "eu_lex8h_dba", "who_weekly_pct",
                                     "niosh_seconds_left", "who_seconds_left"},
                  f"{m['id']}: the dose object of SPEC section 5 and the time left")
            check(m["guard"]["mode"] == "warn" and m["guard"]["attenuation_db"] == 0 and isinstance(m["warnings"], list)
                  and "guard_gain_db" in m, f"{m['id']}: the guard's attenuation, warnings")
        drums = d.musician("drums", s)
        check(drums["loudness_cap"]["cap_dba"] == 105 and drums["loudness_cap"]["gain_reduction_db"] >= 0,
              "drums: the loudness cap and its gain reduction")

        # Held meters per consumer: a 1 Hz subscriber sees every burst although status.json and a
        # 20 Hz subscriber take their own holds in between.
        fast, slow = Conn(sock), Conn(sock)
        fast.req({"cmd": "subscribe", "rate_hz": 20})
        slow.req({"cmd": "subscribe", "rate_hz": 1})
        stop_fast = threading.Event()
        fast_peaks = []

        def drain_fast():
            while not stop_fast.is_set():
                e = fast.line()
                if e.get("event") == "status":
                    fast_peaks.append(d.musician("bass", e["data"])["peak_db_spl"][0])
        th = threading.Thread(target=drain_fast, daemon=True)
        th.start()
        slow_peaks = []
        t_end = time.monotonic() + 8.5
        while time.monotonic() < t_end:
            e = slow.line()
            if e.get("event") == "status":
                slow_peaks.append(d.musician("bass", e["data"])["peak_db_spl"][0])
        stop_fast.set()
        th.join()
        quiet = min(p for p in slow_peaks[1:] if p is not None)
        loud = [p for p in slow_peaks[1:] if p is not None and p > quiet + 6]
        check(len(loud) >= 3, f"the 1 Hz subscriber saw {len(loud)} bursts in 8.5 s (one every 2 s): {slow_peaks}")
        check(sum(1 for p in fast_peaks if p is not None and p > quiet + 6) >= 3, "and the 20 Hz one too")
        fast.close()
        slow.close()

        # The subscription rate, within 15 %.
        for rate in (20, 10, 4):
            sc = Conn(sock)
            sc.req({"cmd": "subscribe", "rate_hz": rate})
            sc.line()
            t0, nev, seqs = time.monotonic(), 0, []
            while time.monotonic() - t0 < 3.0:
                e = sc.line()
                nev += 1
                seqs.append(e["seq"])
            got = nev / (time.monotonic() - t0)
            check(abs(got - rate) <= 0.15 * rate and seqs == sorted(seqs),
                  f"subscribed at {rate} Hz: {got:.2f} Hz, sequence numbers rising")
            r = sc.req({"id": 1, "cmd": "unsubscribe"})
            check(r == {"id": 1, "ok": True, "result": {}}, "unsubscribe")
            sc.close()

        # --- set changes the audio (freewheel, sample-exact) --------------------------------------
        def out(seconds=0.5, settle=0.3):
            rig.freewheel(True)
            sink.record(settle)
            _, y = sink.record(seconds)
            rig.freewheel(False)
            return y

        cli("set", "bass", "kick", "mute")
        y = out()
        check(abs(db(rms(y[0]) / FULL) + 6.0) < 0.01, f"drums at master -6 dB: {db(rms(y[0]) / FULL):+.3f} dB")
        cli("set", "drums", "master", "-12")
        y = out()
        check(abs(db(rms(y[0]) / FULL) + 12.0) < 0.01, f"after `earshot set drums master -12`: {db(rms(y[0]) / FULL):+.3f} dB")
        cli("set", "drums", "master", "0")
        cli("set", "drums", "tone", "gain", "-6")
        y = out()
        check(abs(db(rms(y[0]) / FULL) + 6.0) < 0.01 and abs(db(rms(y[1]) / FULL) + 6.0) < 0.01,
              f"send gain -6 dB on both ears: {db(rms(y[0]) / FULL):+.3f} / {db(rms(y[1]) / FULL):+.3f} dB")
        cli("set", "drums", "tone", "gain", "0", "pan", "0.5")
        y = out()
        want_l, want_r = DC * np.cos(0.75 * np.pi / 2), DC * np.sin(0.75 * np.pi / 2)  # theta = (pan + 1) pi / 4
        check(abs(rms(y[0]) / want_l - 1) < 1e-3 and abs(rms(y[1]) / want_r - 1) < 1e-3,
              f"pan 0.5: L {rms(y[0]):.5f} (want {want_l:.5f}), R {rms(y[1]):.5f} (want {want_r:.5f})")
        cli("set", "drums", "tone", "pan", "0", "mute")
        y = out()
        check(np.all(y[0] == 0) and np.all(y[1] == 0), "mute: both ears silent")
        cli("set", "drums", "tone", "unmute")
        cli("set", "drums", "master", "-12")
        y = out()
        check(abs(db(rms(y[0]) / FULL) + 12.0) < 0.01, "unmuted, back at master -12 dB")

        # --- scenes: ramped recall, clamping, a damaged file ---------------------------------------
        cli("set", "drums", "master", "-6")
        cli("scene", "save", "up")
        cli("set", "drums", "master", "-12")
        y = out(0.3)
        res = {}
        th = threading.Thread(target=lambda: res.update(y=sink.record(40.0, timeout=120)[1]), daemon=True)
        rig.freewheel(True)
        th.start()
        time.sleep(0.3)
        rc, _, _ = cli("scene", "recall", "up")
        th.join()
        rig.freewheel(False)
        L = res["y"][0]
        lo, hi = FULL * 10 ** (-12 / 20), FULL * 10 ** (-6 / 20)
        a = int(np.argmax(L > lo * (1 + 1e-4)))
        b = int(np.argmax(L >= hi * (1 - 1e-4)))
        check(rc == 0 and 0 < a < b and abs(L[-1] - hi) < 1e-6, "the recall took drums from -12 to -6 dB")
        check(b - a >= 0.5 * 0.020 * 48000 and np.all(np.diff(L[a - 1:b + 1]) >= -1e-9)
              and np.max(np.abs(np.diff(L))) < (hi - lo) / 100,
              f"ramped: {b - a} samples, rising, no step above 1 % of the change (mixer.ramp_ms 20)")

        scenes_path = os.path.join(state, "scenes.json")
        sc = json.load(open(scenes_path))
        sc["scenes"]["hot"] = {"saved_utc": 1, "musicians": {
            "drums": {"master_db": 40, "sends": {"tone": {"gain_db": -200, "pan": None, "mute": False},
                                                 "ghost": {"gain_db": 0}}},
            "bass": {"master_db": "loud", "sends": {"tone": {"gain_db": -6, "pan": 3, "mute": "yes"}}},
            "piano": {"master_db": 0}}}
        json.dump(sc, open(scenes_path, "w"))
        r = Conn(sock).req({"id": 1, "cmd": "scene", "action": "recall", "name": "hot"})
        check(r["ok"], "a scene with out-of-range values is recalled")
        cl = {(e["musician"], e["target"], e["field"]): e for e in r["result"]["clamped"]}
        check(cl[("drums", "master", "gain_db")]["asked"] == 40 and cl[("drums", "master", "gain_db")]["applied"] == 12,
              "drums' master +40 dB applied as +12 and reported")
        check(cl[("drums", "tone", "gain_db")]["applied"] == -90, "a send of -200 dB applied as -90")
        check(cl[("drums", "tone", "pan")]["asked"] is None and cl[("drums", "tone", "pan")]["applied"] == 0,
              "\"pan\": null is the centre, not hard left")
        check(cl[("bass", "tone", "pan")]["applied"] == 1 and ("bass", "tone", "mute") in cl,
              "pan 3 applied as 1; a mute that is not a bool is left as it was")
        check(any("piano" in x for x in r["result"]["skipped"]) and any("ghost" in x for x in r["result"]["skipped"])
              and any("bass master" in x for x in r["result"]["skipped"]),
              f"unknown musicians and inputs, and a master that is not a gain, skipped: {r['result']['skipped']}")
        mx = d.musician("drums", status())["mix"]
        check(mx["master_db"] == 12 and mx["sends"]["tone"]["pan"] == 0, "the live mix has the clamped values")
        check("scene 'hot': drums master gain_db: 40 asked, 12 applied" in d.log_text(), "each clamp is logged")
        rc, out_, _ = cli("scene", "recall", "hot")
        check(rc == 0 and "clamped: drums master gain_db: 40 -> 12" in out_, "earshot scene recall prints the clamps")
        cli("set", "drums", "master", "-12")
        cli("set", "drums", "tone", "gain", "0", "pan", "0")
        cli("set", "bass", "tone", "gain", "0", "pan", "0")

        open(scenes_path, "w").write("{ this is not json")
        rc, _, err = cli("scene", "recall", "verse")
        check(rc == 1 and "internal" in err and "not a valid scenes file" in err,
              f"a damaged scenes.json on recall: internal, not not_found ({err.strip()})")
        rc, _, err = cli("scene", "list")
        check(rc == 1 and "internal" in err, "and on list")
        rc, out_, _ = cli("scene", "save", "fresh")
        aside = [n for n in os.listdir(state) if n.startswith("scenes.json.corrupt-")]
        check(rc == 0 and "moved to" in out_ and len(aside) == 1
              and open(os.path.join(state, aside[0])).read() == "{ this is not json",
              "saving over a damaged file keeps it aside (nothing silently dropped)")
        check(set(json.load(open(scenes_path))["scenes"]) == {"fresh"}, "and starts a new file")

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

        # Audio is recorded in real time (no freewheel) through all of what follows.
        level = FULL * 10 ** (-12 / 20)
        rec = {}
        rec_stop = threading.Event()
        rec_th = threading.Thread(target=lambda: rec.update(y=sink.record(600, timeout=900, stop=rec_stop)[1]),
                                  daemon=True)
        rec_th.start()
        rss0, anon0 = rss_mib(pid), rss_mib(pid, "RssAnon")
        rss_peak = [rss0, anon0]
        rss_stop = threading.Event()

        def watch_rss():
            while not rss_stop.is_set():
                rss_peak[0] = max(rss_peak[0], rss_mib(pid))
                rss_peak[1] = max(rss_peak[1], rss_mib(pid, "RssAnon"))
                time.sleep(0.05)
        rss_th = threading.Thread(target=watch_rss, daemon=True)
        rss_th.start()

        # 200 clients at once, each asking for the status.
        conns = [Conn(sock, timeout=20) for _ in range(200)]
        for k, cc_ in enumerate(conns):
            cc_.send(json.dumps({"id": k, "cmd": "status"}) + "\n")
        ok = sum(1 for k, cc_ in enumerate(conns) if cc_.line().get("id") == k)
        check(ok == 200, f"200 clients at once: {ok} got their status")
        extra, refused = [], 0
        for _ in range(80):  # 200 + the lazy one + the idle one + 80 > max_clients (256) + 4 for root
            try:
                cx = Conn(sock)
                if cx.hello.get("ok") is False:
                    refused += 1
                extra.append(cx)
            except (EOFError, ConnectionResetError):
                refused += 1
        check(refused >= 15, f"beyond control.max_clients (256, +4 for root) new clients are refused with an error ({refused})")
        for cc_ in conns + extra:
            cc_.close()
        for _ in range(300):
            Conn(sock).close()
        check(cli("status")[0] == 0, "300 connect/disconnect cycles: still answering")

        # A pipelined flood: 200 clients x 500 status requests, half of them never reading.
        p = subprocess.run(["/usr/bin/python3", "-c", FLOOD, sock, "200", "500"], capture_output=True, text=True,
                           timeout=120)
        f = json.loads(p.stdout.strip().splitlines()[-1])
        check(f["lines"] == f["want"], f"the flood's readers got all {f['want']} replies in {f['seconds']:.1f} s")
        check(f["probe_max_ms"] < 500, f"a ping during the flood: median {f['probe_median_ms']:.0f} ms, "
                                       f"max {f['probe_max_ms']:.0f} ms ({f['probes']} pings)")
        time.sleep(1.5)
        rss_stop.set()
        rss_th.join()
        rss1, anon1 = rss_mib(pid), rss_mib(pid, "RssAnon")
        check(rss_peak[0] - rss0 < 32 and rss_peak[1] < 64,
              f"VmRSS {rss0:.1f} MiB before, at most {rss_peak[0]:.1f} MiB during the abuse (+32 allowed); "
              f"its own heap (RssAnon) {anon0:.1f} -> at most {rss_peak[1]:.1f} MiB (bound: 64)")
        check(rss1 - rss0 < 8 and anon1 - anon0 < 8,
              f"and {rss1:.1f} MiB ({anon1:.1f} MiB RssAnon) once the clients are gone")
        st_ctl = status()["control"]
        check(st_ctl["queued_bytes"] < 1 << 20 and st_ctl["paused"] > 0,
              f"backpressure: clients paused {st_ctl['paused']} times, {st_ctl['queued_bytes']} bytes queued now")

        # A read-only uid fills its quota; root's `earshot panic` still works.
        holders = []

        def hold(user, n):
            h = subprocess.Popen(as_user(*user) + ["/usr/bin/python3", "-c", HOLDER, sock, str(n)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            holders.append(h)
            return json.loads(h.stdout.readline())

        got = hold((NOBODY, NOBODY), 70)
        check(got["held"] == 60 and len(got["refused"]) == 10 and "read-only user" in got["refused"][0],
              f"uid nobody gets 60 connections (a quarter of the 240 unreserved), then too_many_clients: {got['refused'][:1]}")
        for u in (2001, 2002):
            got = hold((u, u, (NOBODY,)), 60)
            check(got["held"] == 60, f"uid {u} (read-only) takes 60 more")
        got = hold((2003, 2003, (NOBODY,)), 60)
        check(50 <= got["held"] < 60 and "kept for control.group" in got["refused"][0],
              f"the next read-only uid gets the rest of the 240 unreserved slots ({got['held']}; root holds a few), "
              f"then: {got['refused'][0]}")
        got = hold((2004, 2004, (NOBODY,)), 1)
        check(got["held"] == 0 and "kept for control.group" in got["refused"][0],
              f"a fifth read-only uid is refused: {got['refused']}")
        got = hold((3001, 0), 1)
        check(got["held"] == 1, "an engineer (control.group) still gets one of the reserved slots")
        rc, out_, err_ = cli("panic")
        check(rc == 0 and "PANIC" in out_, f"and root's `earshot panic` works: {out_.strip()} {err_.strip()}")
        rc, out_, _ = cli("panic", "off")
        check(rc == 0, "panic off")
        for h in holders:
            h.stdin.close()
            h.wait(10)

        # Audio kept flowing all along, and nothing leaked.
        wait_for(lambda: status()["mixer"]["panic"] is False, 5, "panic off")
        time.sleep(2.5)  # the fade-in after panic off (mixer.startup_ramp_ms 300) and more
        rec_stop.set()
        rec_th.join()
        L = rec["y"][0]
        pan_at = int(np.argmax(L < level * (1 - 1e-4)))
        check(pan_at > 48000 * 5 and np.all(np.abs(L[:pan_at] - level) < 1e-6),
              f"the first {pan_at / 48000:.1f} s of the abuse (until the panic): every sample at the set level")
        check(np.all(np.abs(L[-48000:] - level) < 1e-6), "after panic off, back at the set level")
        wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= fds0 + 3, 10, "file descriptors to be released")
        check(True, f"file descriptors back to {len(os.listdir(f'/proc/{pid}/fd'))} (before: {fds0})")

        def lazy_handled():
            s_ = status()["control"]
            return s_ if s_["events_dropped"] > 0 or s_["slow_disconnects"] > 0 else None
        s_ = wait_for(lazy_handled, 40, "events for the lazy subscriber to be dropped", interval=0.5)
        check(True, f"the lazy subscriber: {s_['events_dropped']} events dropped, {s_['slow_disconnects']} "
                    "disconnected; the daemon never waited for it")
        lazy.close()

        # The idle connection: closed with idle_timeout once 60 s passed without a request.
        time.sleep(max(0.0, 62 - (time.monotonic() - idle_t0)))
        r = idle.line()
        check(r["error"]["code"] == "idle_timeout", "an idle connection is closed after 60 s with idle_timeout")
        try:
            idle.line()
            check(False, "closed")
        except (EOFError, ConnectionResetError):
            check(status()["control"]["idle_disconnects"] >= 1, "and counted")

        # --- a reload applies control.*: a read-only peer loses its access ------------------------
        ro = Conn(sock)  # root: control
        watcher = subprocess.Popen(as_user(NOBODY) + ["/usr/bin/python3", "-c",
                                   "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
                                   "f=s.makefile()\nprint(f.readline().strip(),flush=True)\nprint(f.readline().strip(),flush=True)",
                                   sock], stdout=subprocess.PIPE, text=True)
        check(json.loads(watcher.stdout.readline())["access"] == "read", "nobody is connected, read-only")
        open(path, "w").write(text.replace("read_group: nogroup", "max_clients: 64"))
        r = ro.req({"id": 1, "cmd": "reload"})
        check(r["ok"], "reload without control.read_group")
        gone = json.loads(watcher.stdout.readline())
        check(gone["error"]["code"] == "permission_denied" and "reload" in gone["error"]["message"],
              f"the read-only session is told and closed: {gone['error']['message']}")
        watcher.wait(5)
        check(os.stat(sock).st_gid == 0, "the socket now belongs to control.group (root)")
        rc, _, err = cli("status", user=NOBODY)
        check(rc == 3, "and nobody cannot connect any more")
        open(path, "w").write(text)
        check(ro.req({"id": 2, "cmd": "reload"})["ok"] and os.stat(sock).st_gid == NOBODY, "reload back")
        ro.close()

        # Out of file descriptors: accept() fails with EMFILE; the daemon backs off instead of
        # spinning, and takes the waiting connections once descriptors are free again.
        soft, hard = (int(x) for x in subprocess.run(["prlimit", f"--pid={pid}", "--nofile", "-o", "SOFT,HARD",
                                                      "--noheadings", "--raw"], capture_output=True,
                                                     text=True).stdout.split())
        nfd = len(os.listdir(f"/proc/{pid}/fd"))
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={nfd + 2}:{hard}"], check=True)
        waiting = []
        for _ in range(10):
            w = socket.socket(socket.AF_UNIX)
            w.settimeout(20)
            w.connect(sock)  # in the listen backlog: connect() succeeds before accept()
            waiting.append(w)
        cpu = lambda: sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13]) / 100
        time.sleep(0.5)
        c0 = cpu()
        time.sleep(2.0)
        spent = cpu() - c0
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"], check=True)
        hellos = [json.loads(w.makefile().readline()) for w in waiting]
        check("Too many open files" in d.log_text() and "retrying in" in d.log_text(),
              "out of file descriptors: accept fails and the daemon says it retries")
        check(spent < 0.5, f"it backs off instead of spinning: {spent:.2f} s of CPU in 2 s")
        check(all(h.get("hello") == "earshot" for h in hellos),
              "with descriptors free again, the waiting connections are served")
        for w in waiting:
            w.close()

        # --- one daemon per runtime directory -------------------------------------------------------
        ino = os.stat(sock).st_ino
        d2 = rig.start_daemon(path)
        rc2 = d2.p.wait(15)
        check(rc2 == 73 and "another earshotd" in d2.log_text(),
              f"a second earshotd on the same runtime directory exits 73: {d2.log_text().strip().splitlines()[-1:]}")
        check(os.stat(sock).st_ino == ino and cli("status")[0] == 0, "and the first one's socket is untouched")
        check(d.stop() == 0, "SIGTERM: exit 0")
        check(not os.path.exists(sock), "the socket file is removed at exit")

        # A stale socket (a daemon killed with SIGKILL) is replaced.
        d3 = rig.start_daemon(path)
        wait_for(lambda: os.path.exists(sock) and cli("status")[0] == 0, 10, "a new daemon")
        d3.kill()
        check(os.path.exists(sock), "SIGKILL leaves the socket file behind")
        d4 = rig.start_daemon(path)
        wait_for(lambda: cli("status")[0] == 0, 10, "the next daemon to answer on the stale path")
        check(True, "a stale socket is replaced")
        check(d4.stop() == 0, "stopped")
        other = os.path.join(rig.tmp, "other")
        os.makedirs(other)
        open(os.path.join(other, "control.sock"), "w").write("not a socket")
        d5 = subprocess.run([earshotd, "--config", path, "--state-dir", os.path.join(other, "state"),
                             "--runtime-dir", other, "--no-mlock"], capture_output=True, text=True, timeout=20,
                            env=dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="none-" + rig.server))
        check(d5.returncode == 73 and "is not a socket" in d5.stderr + d5.stdout,
              "a file that is not a socket at the path is never replaced (exit 73)")

        # --- the daemon's user must be in the group it gives the socket to ---------------------------
        mine = os.path.join(rig.tmp, "u2001")
        os.makedirs(mine)
        os.chown(mine, 2001, 2001)
        jenv = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="none-" + rig.server)
        args = [earshotd, "--config", path, "--state-dir", mine + "/state", "--runtime-dir", mine + "/run", "--no-mlock"]
        p = subprocess.run(as_user(2001, 2001, (0,)) + args[:3] + ["--check-config"], capture_output=True, text=True,
                           env=jenv, timeout=20)
        check(p.returncode == 78 and "must be a member of group 'nogroup'" in p.stderr,
              f"--check-config as a user outside control.read_group: 78 ({p.stderr.strip()})")
        p = subprocess.run(as_user(2001, 2001, (0,)) + args, capture_output=True, text=True, env=jenv, timeout=20)
        check(p.returncode == 78 and "must be a member of group 'nogroup'" in p.stdout + p.stderr,
              "and earshotd exits 78 at start-up (no restart loop under systemd)")
        p = subprocess.Popen(as_user(2001, 2001, (0, NOBODY)) + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=jenv)
        try:
            wait_for(lambda: os.path.exists(mine + "/run/control.sock"), 10, "a daemon run by a member of nogroup")
            check(os.stat(mine + "/run/control.sock").st_gid == NOBODY, "a member of nogroup may give it the socket")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(10)


if __name__ == "__main__":
    main_wrapper(run)
