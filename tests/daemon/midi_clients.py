"""JACK MIDI clients for the MIDI tests (python3-jack-client): a controller that sends, a device
that receives the LED feedback. Both stamp what they did with JACK frame times, so the tests can
count periods between a MIDI event and the audio it changes."""

import collections
import threading
import time

import jack


class MidiSender:
    """A JACK client with one MIDI output: send() queues messages, written at the top of the next
    process cycle (offset 0). `sent` keeps (frame time of that cycle, bytes).

    With `audio_outs`, it also plays `gen(t0, n)` (like harness.Player) on audio outputs, so a
    musician fed from it runs after it in every JACK cycle. With `stall_s` > 0, the cycle after one
    that wrote MIDI first sleeps that long: in freewheel (no deadline) this stands in for the time
    a real period gives earshotd's control thread to act on the event before earshotd's next
    cycle, which then starts only after this client (its audio input) is done."""

    def __init__(self, rig, name, port="out", per_cycle=256, audio_outs=()):
        self.client = jack.Client(f"{name}-{rig.server}", no_start_server=True, servername=rig.server)
        self.name = self.client.name
        self.port = self.client.midi_outports.register(port)
        self.audio = [self.client.outports.register(a) for a in audio_outs]
        self.gen = None
        self.stall_s = 0.0
        self._stall_next = False
        self.q = collections.deque()
        self.sent = []
        self.per_cycle = per_cycle
        self.lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.activate()
        rig.players.append(self)

    def _process(self, n):
        if self._stall_next:
            self._stall_next = False
            time.sleep(self.stall_s)
        t = self.client.last_frame_time
        for p in self.audio:
            p.get_array()[:] = 0 if self.gen is None else self.gen(t, n)
        self.port.clear_buffer()
        k = 0
        while self.q and k < self.per_cycle:
            msg = self.q[0]
            try:
                self.port.write_midi_event(0, msg)
            except jack.JackError:
                break  # the port's buffer is full: the rest goes next cycle
            self.q.popleft()
            self.sent.append((t, msg))
            k += 1
        if k and self.stall_s > 0:
            self._stall_next = True

    def send(self, *msgs):
        self.q.extend(bytes(m) for m in msgs)

    def idle(self):
        return not self.q

    def full_name(self, port="out"):
        return f"{self.name}:{port}"

    def close(self):
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:
            pass


class MidiCapture:
    """A JACK client with one MIDI input: `events` is a list of (frame time, bytes)."""

    def __init__(self, rig, name, port="in"):
        self.client = jack.Client(f"{name}-{rig.server}", no_start_server=True, servername=rig.server)
        self.name = self.client.name
        self.port = self.client.midi_inports.register(port)
        self.events = []
        self.client.set_process_callback(self._process)
        self.client.activate()
        rig.players.append(self)

    def _process(self, n):
        t = self.client.last_frame_time
        for off, data in self.port.incoming_midi_events():
            self.events.append((t + off, bytes(data)))

    def notes(self, note, channel=0):
        """Velocities of the Note On messages for `note` on `channel`, in order."""
        return [d[2] for _, d in list(self.events) if len(d) == 3 and d[0] == 0x90 | channel and d[1] == note]

    def close(self):
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:
            pass


def cc(num, val, ch=0):
    return bytes([0xB0 | ch, num, val])


def note_on(num, vel=127, ch=0):
    return bytes([0x90 | ch, num, vel])


def note_off(num, ch=0):
    return bytes([0x80 | ch, num, 0])
