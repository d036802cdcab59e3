#!/usr/bin/env python3
"""Splits keystroke echo latency into hops, from a system-wide syscall trace.

    perf script -F comm,pid,tid,time,event,trace -i perf.data | keystroke_hops.py

Input: `perf record -a -e raw_syscalls:sys_enter,raw_syscalls:sys_exit`
taken while `sovereign-termbench terminal` types its echo keystrokes on both
paths. For every echo the shell writes (bash: write to fd 2), the chain of
processes around it is found by time: the client's send, the hop's wake-up
and send (control plane / ssh client), the server's wake-up and send (agent /
sshd), the shell's wake-up, and back. A process "wakes" when a poll-type call
(epoll_wait, ppoll, pselect6, poll) returns and "sends" when it enters
write/writev/sendto/sendmsg. Each segment is either a hand-over (one
process sends, the next wakes: kernel + scheduler) or one process's own work.
It is an approximation: "wakes" is the last poll-type return before the
send, so a process that polls again before sending (OpenSSH does) shows
less work and a longer hand-over than it had; the totals are exact.

Prints, per path, the median and 99th percentile of each segment over all
keystrokes, and the median among the slowest 3 %: the segments that grow
in the tail are where the tail comes from.
"""
import bisect
import collections
import re
import sys

WAITS = {7, 232, 270, 271, 281, 441}  # poll, epoll_wait, pselect6, ppoll, epoll_pwait(2)
SENDS = {1, 20, 44, 46}  # write, writev, sendto, sendmsg
LINE = re.compile(
    r'^\s*(\S.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+raw_syscalls:(sys_enter|sys_exit): NR (\d+)(.*)$')
PATHS = {
    # path: (client, hop, server) by comm (perf shows 15 characters)
    'relay': ('sovereign-termb', 'tokio-rt-worker', 'sovereign-agent'),
    'ssh': ('sovereign-termb', 'ssh', 'sshd'),
}
SEGMENTS = [
    'client sends → hop wakes', 'hop works', 'hop sends → server wakes', 'server works',
    'server sends → shell wakes', 'shell works', 'shell sends → server wakes', 'server works',
    'server sends → hop wakes', 'hop works', 'hop sends → client wakes',
]


def load(lines):
    events = collections.defaultdict(lambda: {'wake': [], 'send': []})
    shell_writes = collections.defaultdict(list)
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, _tid, t, kind, nr, rest = m.groups()
        if comm == 'perf':
            continue
        t, nr = float(t), int(nr)
        if kind == 'sys_exit' and nr in WAITS:
            events[comm]['wake'].append(t)
        elif kind == 'sys_enter' and nr in SENDS:
            if comm == 'bash':
                if rest.strip().startswith('(2,'):
                    shell_writes[pid].append(t)
            else:
                events[comm]['send'].append(t)
    for e in events.values():
        e['wake'].sort()
        e['send'].sort()
    return events, shell_writes


def chains(events, writes, client, hop, server):
    def after(comm, kind, t):
        if t is None:
            return None
        a = events[comm][kind]
        i = bisect.bisect_right(a, t)
        return a[i] if i < len(a) else None

    def before(comm, kind, t):
        if t is None:
            return None
        a = events[comm][kind]
        i = bisect.bisect_left(a, t)
        return a[i - 1] if i > 0 else None

    out = []
    for w in writes:
        shell_woke = before('bash', 'wake', w)
        s_sent = before(server, 'send', shell_woke)
        s_woke = before(server, 'wake', s_sent)
        h_sent = before(hop, 'send', s_woke)
        h_woke = before(hop, 'wake', h_sent)
        c_sent = before(client, 'send', h_woke)
        s_woke2 = after(server, 'wake', w)
        s_sent2 = after(server, 'send', s_woke2)
        h_woke2 = after(hop, 'wake', s_sent2)
        h_sent2 = after(hop, 'send', h_woke2)
        c_woke = after(client, 'wake', h_sent2)
        ts = [c_sent, h_woke, h_sent, s_woke, s_sent, shell_woke, w,
              s_woke2, s_sent2, h_woke2, h_sent2, c_woke]
        if None in ts:
            continue
        seg = [(b - a) * 1e6 for a, b in zip(ts, ts[1:])]
        total = (c_woke - c_sent) * 1e6
        # A chain stitched across two keystrokes is not one echo.
        if min(seg) < 0 or not 0 < total < 5000:
            continue
        out.append((total, seg))
    out.sort()
    return out


def pickup(events, server, writes):
    """Median time from a shell write until `server` next wakes."""
    wakes = events[server]['wake']
    gaps = []
    for w in writes[:200]:
        i = bisect.bisect_right(wakes, w)
        gaps.append(wakes[i] - w if i < len(wakes) else float('inf'))
    gaps.sort()
    return gaps[len(gaps) // 2]


def main():
    events, shell_writes = load(sys.stdin)
    done = set()
    for pid, writes in shell_writes.items():
        # Which path's shell: the one whose echoes its server picks up first.
        path = 'relay' if pickup(events, 'sovereign-agent', writes) < pickup(events, 'sshd', writes) else 'ssh'
        rows = chains(events, writes, *PATHS[path])
        if len(rows) < 100 or path in done:
            continue
        done.add(path)
        n = len(rows)
        q = lambda v, p: sorted(v)[min(n - 1, int(n * p))]
        print(f'### {path}: {n} keystrokes, echo p50 {q([r[0] for r in rows], .5):.0f} µs, '
              f'p99 {q([r[0] for r in rows], .99):.0f} µs (as traced)\n')
        print('| segment | median µs | p99 µs | median in the slowest 3 % |')
        print('|---|---:|---:|---:|')
        tail = rows[int(n * .97):]
        for i, name in enumerate(SEGMENTS):
            v = [r[1][i] for r in rows]
            t = sorted(r[1][i] for r in tail)
            print(f'| {name} | {q(v, .5):.0f} | {q(v, .99):.0f} | {t[len(t) // 2]:.0f} |')
        print()
    if not done:
        sys.exit('no echo chains found: was the trace taken during the echo phase?')


if __name__ == '__main__':
    main()
