#!/usr/bin/env python3
"""Sums valgrind memcheck logs (vg.<pid>.log in the directory given) and prints the definite
leak records, grouped by stack: those with a frame in our code (the module or its crates), and
the rest (CPython or Redis alone), which are counted but not ours to fix.

Processes forked by a server (BGSAVE, a replica's full sync) are reported apart: after fork()
only the forking thread exists, so what the others own (thread-locals, spawned closures) has
no pointer left in the child, which exits once it saved. Those are not leaks."""
import collections
import pathlib
import re
import sys

OURS = re.compile(r"libredisgears\.so|redisgears::|dataflow::|cluster::|formats::|reqs_manager::|wheels_cache::")
RECORD = re.compile(r"==\d+== ([\d,]+) (?:\(.*?\) )?bytes in ([\d,]+) blocks are definitely lost")
FRAME = re.compile(r"==\d+==    (?:at|by) 0x[0-9A-F]+: (.*)")


def records(text):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = RECORD.search(line)
        if not m:
            continue
        frames = []
        for follow in lines[i + 1:]:
            f = FRAME.match(follow)
            if not f:
                break
            frames.append(f.group(1))
        yield int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), frames


def main():
    logs = sorted(pathlib.Path(sys.argv[1]).glob("vg.*.log"))
    pids = {log.name.split(".")[1] for log in logs}
    servers = complete = 0
    ours = collections.defaultdict(lambda: [0, 0, 0])
    theirs = collections.defaultdict(lambda: [0, 0, 0])
    forked = collections.defaultdict(lambda: [0, 0, 0])
    children = 0
    for log in logs:
        text = log.read_text(errors="replace")
        if "redis-server" not in text and "redis-check" not in text:
            continue
        parent = re.search(r"Parent PID: (\d+)", text)
        if parent and parent.group(1) in pids:
            children += 1
            for size, blocks, frames in records(text):
                key = tuple(f for f in frames if "vgpreload" not in f)[:12]
                forked[key][0] += size
                forked[key][1] += blocks
                forked[key][2] += 1
            continue
        servers += 1
        if "LEAK SUMMARY" in text or "All heap blocks were freed" in text:
            complete += 1
        for size, blocks, frames in records(text):
            key = tuple(f for f in frames if "vgpreload" not in f)[:12]
            table = ours if any(OURS.search(f) for f in frames) else theirs
            table[key][0] += size
            table[key][1] += blocks
            table[key][2] += 1
    print(f"{servers} servers under valgrind, {complete} with a leak summary")
    print(f"{children} processes they forked: {sum(v[0] for v in forked.values())} bytes "
          f"unreachable at their exit in {len(forked)} distinct stacks (other threads' memory, not leaks)")
    for name, table in (("ours", ours), ("CPython/Redis only", theirs)):
        total = sum(v[0] for v in table.values())
        print(f"definitely lost, {name}: {total} bytes in {sum(v[1] for v in table.values())} blocks, {len(table)} distinct stacks")
    for key, (size, blocks, seen) in sorted(ours.items(), key=lambda kv: -kv[1][0]):
        print(f"\n{size} bytes in {blocks} blocks ({seen} servers):")
        for frame in key:
            print(f"    {frame}")
    if "-v" in sys.argv:
        for key, (size, blocks, seen) in sorted(theirs.items(), key=lambda kv: -kv[1][0])[:10]:
            print(f"\n[not ours] {size} bytes in {blocks} blocks ({seen} servers):")
            for frame in key[:6]:
                print(f"    {frame}")
    sys.exit(1 if ours else 0)


main()
