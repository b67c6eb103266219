"""Test harness for earshotd against a real private JACK server (dummy backend).

Every server, daemon and client name carries a per-test tag (jack-testing.md pitfall 1); servers
are started with JACK_NO_START_SERVER=1 and torn down at exit, even on failure.

    with Rig(earshotd) as rig:
        rig.start_jack()
        d = rig.start_daemon(config_text)
        d.wait_connected()
        src = rig.player("src", ["out"])          # a python JACK client that plays signals
        ...
"""

import atexit
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import jack
import numpy as np

jack.set_error_function(lambda m: None)

# meson's timeout sends SIGTERM: turn it into SystemExit so the servers and daemons are cleaned up
# (a SIGKILLed jackd of another name keeps its slot in JACK's registry of 8 servers for good).
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
jack.set_info_function(lambda m: None)

FS = 48000


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)
    print("ok:", msg, flush=True)


def wait_for(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Jackd:
    def __init__(self, name, logdir, period=256, rate=FS):
        self.name, self.period, self.rate = name, period, rate
        self.log = os.path.join(logdir, f"jackd-{name}.log")
        self.p = None

    def start(self):
        logf = open(self.log, "a")
        self.p = subprocess.Popen(
            ["jackd", "-s", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            if self.p.poll() is not None:
                raise TestFailure(f"jackd {self.name} exited: " + open(self.log).read()[-2000:])
            try:
                jack.Client(f"probe-{self.name}", no_start_server=True, servername=self.name).close()
                return
            except jack.JackOpenError:
                if time.monotonic() > deadline:
                    raise TestFailure("jackd did not come up")
                time.sleep(0.02)

    def kill(self, sig=signal.SIGKILL):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def stop(self):
        self.kill(signal.SIGTERM)


class Daemon:
    def __init__(self, rig, exe, config_path, tag, extra_env=None, args=()):
        self.rig, self.exe, self.config = rig, exe, config_path
        self.args = list(args)
        self.state = os.path.join(rig.tmp, "state")
        self.runtime = os.path.join(rig.tmp, "run")
        self.log = os.path.join(rig.tmp, f"earshotd-{tag}.log")
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=rig.server, JACK_NO_START_SERVER="1")
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("WATCHDOG_USEC", None)
        if extra_env:
            self.env.update(extra_env)
        self.p = None

    def start(self):
        self.logf = open(self.log, "a")
        self.p = subprocess.Popen(
            [self.exe, "--config", self.config, "--state-dir", self.state, "--runtime-dir", self.runtime, "--no-mlock",
             *self.args],
            stdout=self.logf, stderr=subprocess.STDOUT, env=self.env)
        return self

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def status(self):
        try:
            with open(os.path.join(self.runtime, "status.json")) as f:
                s = json.load(f)
            return s if s.get("pid") == self.p.pid else None
        except (OSError, ValueError):
            return None

    def wait_connected(self, timeout=15):
        def ok():
            if not self.alive():
                raise TestFailure("earshotd exited: " + self.log_text()[-3000:])
            s = self.status()
            return s if s and s["jack"]["state"] == "connected" else None
        return wait_for(ok, timeout, "earshotd to join JACK")

    def musician(self, mid, status=None):
        s = status or self.status()
        for m in s["musicians"]:
            if m["id"] == mid:
                return m
        raise TestFailure(f"musician {mid} not in status")

    def log_text(self):
        try:
            return open(self.log, errors="replace").read()
        except OSError:
            return ""

    def signal(self, sig):
        self.p.send_signal(sig)

    def request(self, obj, timeout=5):
        """One request on the control socket (docs/control-protocol.md); returns the reply object."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(os.path.join(self.runtime, "control.sock"))
            f = s.makefile("rwb")
            json.loads(f.readline())  # the greeting
            f.write((json.dumps(obj) + "\n").encode())
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "event" not in r:
                    return r

    def stop(self, timeout=10):
        if not self.alive():
            return self.p.returncode if self.p else None
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise TestFailure("earshotd did not stop on SIGTERM within %d s" % timeout)

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()


class Player:
    """A JACK client that plays a function of the frame time on its outputs and records its inputs.

    signal(t0, n) -> array (n,) or (channels, n) for the outputs; inputs are kept as a list of
    (frame_time, array(channels, n)) blocks while recording. With record_now, recording starts with
    the client's very first cycle (record(..., keep=True) then returns it from there).
    """

    def __init__(self, rig, name, outs=(), ins=(), midi_outs=(), record_now=False):
        self.client = jack.Client(f"{name}-{rig.server}", no_start_server=True, servername=rig.server)
        self.name = self.client.name
        self.outs = [self.client.outports.register(o) for o in outs]
        self.ins = [self.client.inports.register(i) for i in ins]
        self.gen = None
        self.recording = bool(record_now and ins)
        self.blocks = queue.Queue()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, n):
        t = self.client.last_frame_time
        if self.outs:
            if self.gen is None:
                for p in self.outs:
                    p.get_array()[:] = 0
            else:
                y = np.asarray(self.gen(t, n), dtype=np.float32)
                if y.ndim == 1:
                    for p in self.outs:
                        p.get_array()[:] = y
                else:
                    for i, p in enumerate(self.outs):
                        p.get_array()[:] = y[i]
        if self.recording and self.ins:
            self.blocks.put((t, np.stack([p.get_array().copy() for p in self.ins])))

    def port(self, short):
        return f"{self.name}:{short}"

    def record(self, seconds_audio, timeout=60, stop=None, keep=False):
        """Records `seconds_audio` of audio (by frame count) and returns (t0, array(channels, n)).
        With `stop` (a threading.Event), recording also ends once it is set. With `keep`, what was
        recorded before the call (recording already on, e.g. record_now) is the start of it."""
        while not keep and not self.blocks.empty():
            self.blocks.get_nowait()
        need = int(seconds_audio * self.client.samplerate)
        got, parts, t0 = 0, [], None
        self.recording = True
        deadline = time.monotonic() + timeout
        try:
            while got < need and not (stop is not None and stop.is_set() and got > 0):
                try:
                    t, b = self.blocks.get(timeout=1)
                except queue.Empty:
                    if time.monotonic() > deadline:
                        raise TestFailure("recording timed out")
                    continue
                if t0 is None:
                    t0 = t
                parts.append(b)
                got += b.shape[1]
        finally:
            self.recording = False
        return t0, np.concatenate(parts, axis=1)

    def close(self):
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:
            pass


class Rig:
    def __init__(self, earshotd, period=256):
        self.exe = earshotd
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.server = f"es-{self.tag}"
        self.tmp = tempfile.mkdtemp(prefix="earshotd-test-")
        self.period = period
        self.jackd = None
        self.daemons = []
        self.players = []
        self.ctl = None

    def __enter__(self):
        atexit.register(self.cleanup)
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            try:
                sys.stdout.write("--- JACK ports and connections ---\n")
                for p in self.ports(""):
                    sys.stdout.write(f"{p} -> {self.connections(p)}\n")
            except Exception as e:
                sys.stdout.write(f"(no port list: {e})\n")
            for d in self.daemons:
                sys.stdout.write(f"--- earshotd log ({d.log}) ---\n{d.log_text()[-6000:]}\n")
        self.cleanup(keep=et is not None)
        return False

    def cleanup(self, keep=False):
        for p in self.players:
            p.close()
        self.players = []
        if self.ctl is not None:
            try:
                self.ctl.close()
            except Exception:
                pass
            self.ctl = None
        for d in self.daemons:
            d.kill()
        if self.jackd:
            self.jackd.stop()
            if jack_registered(self.server):
                # Its slot in JACK's registry of 8 servers is lost until a server of that name
                # starts and stops again: do that, so a failed test cannot starve the next ones.
                sys.stdout.write(f"WARNING: jackd {self.server} did not leave JACK's server registry "
                                 "(/dev/shm/jack-shm-registry); reclaiming its slot\n")
                try:
                    again = Jackd(self.server, self.tmp, period=self.period)
                    again.start()
                    again.stop()
                except Exception as e:
                    sys.stdout.write(f"WARNING: could not reclaim the slot: {e}\n")
                if jack_registered(self.server):
                    sys.stdout.write(f"WARNING: the slot of {self.server} is still taken\n")
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start_jack(self):
        if self.jackd is None:
            self.jackd = Jackd(self.server, self.tmp, period=self.period)
        self.jackd.start()
        return self.jackd

    def client(self):
        """A python JACK client for connections, freewheel and port queries."""
        if self.ctl is None:
            self.ctl = jack.Client(f"ctl-{self.server}", no_start_server=True, servername=self.server)
            self.ctl.activate()
        return self.ctl

    def write_config(self, text, name="earshot.yaml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_daemon(self, config_path, extra_env=None, args=()):
        d = Daemon(self, self.exe, config_path, f"{len(self.daemons)}", extra_env, args).start()
        self.daemons.append(d)
        return d

    def player(self, name, outs=(), ins=(), record_now=False):
        p = Player(self, name, outs, ins, record_now=record_now)
        self.players.append(p)
        return p

    def connect(self, a, b):
        c = self.client()
        wait_for(lambda: c.get_ports(a) and c.get_ports(b), 10, f"ports {a} and {b}")
        try:
            c.connect(a, b)
        except jack.JackErrorCode as e:
            if "already" not in str(e).lower():
                raise

    def ports(self, pattern=""):
        # python-jack lists the names, then looks each one up: a port that goes away in between
        # raises. Retry: the list is what the server has now.
        for _ in range(20):
            try:
                return [p.name for p in self.client().get_ports(pattern)]
            except jack.JackError:
                time.sleep(0.01)
        return [p.name for p in self.client().get_ports(pattern)]

    def connections(self, port):
        c = self.client()
        try:
            return sorted(p.name for p in c.get_all_connections(c.get_port_by_name(port)))
        except jack.JackError:
            return []  # no such port (yet)

    def freewheel(self, on):
        self.client().set_freewheel(on)

    def latency_range(self, port, capture=True):
        """The latency range JACK reports for a port, from `jack_lsp -l`."""
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.server, JACK_NO_START_SERVER="1")
        out = subprocess.run(["jack_lsp", "-l"], env=env, capture_output=True, text=True).stdout.splitlines()
        key = "port capture latency" if capture else "port playback latency"
        for i, line in enumerate(out):
            if line.strip() == port:
                for l2 in out[i + 1:i + 3]:
                    if key in l2:
                        a, b = l2.split("[")[1].split("]")[0].split()
                        return int(a), int(b)
        raise TestFailure(f"no latency line for {port}")


def jack_registered(server):
    """Whether JACK's machine-wide server registry (at most 8 servers; a server that dies without
    unregistering keeps its slot) still names `server`."""
    try:
        data = open("/dev/shm/jack-shm-registry", "rb").read()
    except OSError:
        return False
    return re.search(re.escape(server.encode()) + rb"(?![0-9A-Za-z_-])", data) is not None


def sine(freq, amp, fs=FS):
    def gen(t0, n):
        t = (np.arange(n) + t0) / fs
        return amp * np.sin(2 * np.pi * freq * t)
    return gen


def db(x):
    return 20 * np.log10(max(float(x), 1e-30))


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def periodic_sine(freq, amp, fs=FS):
    """A sine whose period is a whole number of samples (fs/freq), from one float32 table: the
    input repeats bit for bit, so an unchanged mix must too."""
    period = int(round(fs / freq))
    if abs(fs / period - freq) > 1e-9:
        raise ValueError("fs/freq must be a whole number of samples")
    table = (amp * np.sin(2 * np.pi * np.arange(period) / period)).astype(np.float32)

    def gen(t0, n):
        return table[(np.arange(n) + t0) % period]
    gen.table, gen.period = table, period
    return gen


def gain_per_sample(y, ref, floor):
    """The gain y/ref at every sample where |ref| >= floor (away from the zero crossings, where the
    ratio is noise): (indices, gains)."""
    ref = np.asarray(ref, dtype=np.float64)
    idx = np.nonzero(np.abs(ref) >= floor)[0]
    return idx, np.asarray(y, dtype=np.float64)[idx] / ref[idx]


def steepest(idx, g):
    """The largest gain change per sample between consecutive measured samples (a jump of the
    whole step within one sample shows as the step itself)."""
    if len(idx) < 2:
        return 0.0
    return float(np.max(np.abs(np.diff(g)) / np.diff(idx)))


def continuous_blocks(x, freq, block, fs=FS, tol_rad=0.02):
    """For a recorded tone of `freq` with a whole number of cycles per `block`: a run label per
    block. Consecutive blocks whose tone phase agrees (within tol_rad) belong to one run: the stream
    went on without a gap. A period lost or played twice (an xrun in clock-driven mode) shifts the
    phase and starts a new run. The first and last block of every run (they may hold the jump) and
    blocks too quiet to tell are labelled -1. Levels compared within one run are free of gaps, as
    long as no gap is a whole number of tone cycles: choose freq so that the period size times
    freq / fs is far from a whole number for small multiples of the period."""
    n = len(x) // block
    if abs(freq * block / fs - round(freq * block / fs)) > 1e-9:
        raise ValueError("the block must hold a whole number of cycles")
    ref = np.exp(-2j * np.pi * freq * np.arange(block) / fs)
    c = x[: n * block].reshape(n, block).astype(np.float64) @ ref
    loud = np.abs(c) > 1e-6 * block
    run = np.full(n, -1)
    r = -1
    for k in range(n):
        if not loud[k]:
            continue
        if k == 0 or not loud[k - 1] or abs(np.angle(c[k] / c[k - 1])) > tol_rad:
            r += 1
        run[k] = r
    labels = run.copy()
    for k in range(n):
        if run[k] >= 0 and (k == 0 or run[k - 1] != run[k] or k == n - 1 or run[k + 1] != run[k]):
            labels[k] = -1
    return labels


def envelope(x, block):
    n = len(x) // block
    return np.sqrt(np.mean(np.square(x[: n * block].reshape(n, block), dtype=np.float64), axis=1))


class NotifyListener:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (monotonic time, pid, text)
        self.t0 = time.monotonic()
        self._stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(cdata[0:4], "little")
            self.messages.append((time.monotonic() - self.t0, pid, data.decode()))

    def seen(self, key):
        return [m for m in self.messages if any(l.startswith(key) for l in m[2].split("\n"))]

    def close(self):
        self._stop = True
        self.th.join(1)
        self.sock.close()


def base_config(server_tag, extra_musicians="", ramp_ms=20, startup_ms=300, inputs_extra="", connect_src=None,
                drums_gain=0, client=None, drums_lookahead=1.0, bass_lookahead=None):
    """A two-musician config: `drums` (stereo) and `bass` (mono), input `tone` (and `kick`).

    Input `tone` auto-connects to the player `src` (a regex), the outputs to the player `sink`
    (exact names), so both directions of auto-connect are exercised whenever those clients appear.
    """
    src = connect_src or f"/src-{server_tag}:out/"
    sink = f"sink-{server_tag}"
    client = client or f"earshot-{server_tag}"
    bass_la = "" if bass_lookahead is None else f", lookahead_ms: {bass_lookahead}"
    return f"""version: 1
jack:
  client_name: {client}
mixer:
  ramp_ms: {ramp_ms}
  startup_ramp_ms: {startup_ms}
inputs:
  - id: tone
    connect: ["{src}"]
  - id: kick
{inputs_extra}musicians:
  - id: drums
    output: stereo
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    connect: ["{sink}:in_L", "{sink}:in_R"]
    protection: {{ peak_ceiling_db_spl: 110, lookahead_ms: {drums_lookahead} }}
    mix:
      sends:
        tone: {{ gain_db: {drums_gain} }}
  - id: bass
    output: mono
    connect: ["{sink}:in_m"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110{bass_la} }}
    mix:
      master_db: -6
      sends:
        tone: {{ gain_db: 0 }}
{extra_musicians}"""


def main_wrapper(fn):
    if len(sys.argv) < 2:
        print("usage: test.py path/to/earshotd", file=sys.stderr)
        sys.exit(2)
    try:
        fn(sys.argv[1])
    except TestFailure as e:
        print("FAIL:", e, flush=True)
        sys.exit(1)
    print("PASS", flush=True)
