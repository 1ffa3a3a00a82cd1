#!/usr/bin/env python3
"""Writes crates/tfo-agent/link/text-order.txt: the functions a running agent executes, for
the linker to put first and together in .text (see crates/tfo-agent/build.rs).

Which code runs is read from the page cache, not sampled: the release binary is copied
onto a small ext4 image on a loop device with read-ahead 0 and dropped from the page
cache, so every page of it the agent touches is read in alone (no read-around, and
fault-around only maps pages already cached). The agent then runs as bench-node runs it
(system and node_exporter collectors every second, disk buffer, gzip, OTLP/gRPC export
to the Python receiver peer, /metrics, /healthz and /readyz scraped) for --seconds, and
mincore(2) lists the binary's pages in the page cache. Every function (from `nm -S`)
overlapping a touched page of .text is written, in address order.

Needs root (losetup, mount). Run by scripts/gen-text-order after a release build.
"""

import argparse
import ctypes
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_node import clean_env, free_port, wait_port  # noqa: E402

PAGE = 4096


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def resident_pages(path):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    ptr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    pages = (size + PAGE - 1) // PAGE
    vec = (ctypes.c_ubyte * pages)()
    if libc.mincore(ptr, size, vec) != 0:
        raise SystemExit("mincore failed: errno %d" % ctypes.get_errno())
    # Unmapped, or the image could not be unmounted.
    libc.munmap(ptr, size)
    os.close(fd)
    return {i for i in range(pages) if vec[i] & 1}


def text_section(binary):
    """(address, file offset) of .text."""
    for line in run("readelf", "-SW", binary).splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[1] == ".text":
            return int(f[3], 16), int(f[4], 16)
    raise SystemExit("no .text in " + binary)


def touched_functions(binary, pages):
    addr, off = text_section(binary)
    names, seen = [], set()
    syms = []
    for line in run("nm", "-S", "--defined-only", binary).splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in "tTwW":
            continue
        a, size, name = int(f[0], 16), int(f[1], 16), f[3]
        first = (a - addr + off) // PAGE
        last = (a - addr + off + max(size, 1) - 1) // PAGE
        if any(p in pages for p in range(first, last + 1)):
            syms.append((a, name))
    for _, name in sorted(syms):
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("gen-text-order: needs root (loop device, mount)")
    tmp = tempfile.mkdtemp(prefix="tfo-text-order-")
    img, mnt = os.path.join(tmp, "img"), os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    size = os.path.getsize(a.agent)
    with open(img, "wb") as f:
        f.truncate(size * 2 + (64 << 20))
    run("mkfs.ext4", "-q", img)
    dev = run("losetup", "-f", "--show", img)
    procs = []
    try:
        run("blockdev", "--setra", "0", dev)
        run("mount", dev, mnt)
        binary = os.path.join(mnt, "tfo-agent")
        shutil.copy(a.agent, binary)
        os.sync()
        fd = os.open(binary, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        if resident_pages(binary):
            raise SystemExit("could not drop the copy from the page cache")
        grpc, http, prom, health = (free_port() for _ in range(4))
        receiver = subprocess.Popen(
            [a.python, os.path.join(os.path.dirname(__file__), "..", "tests", "peers",
                                    "otlp_receiver.py"),
             "--grpc-port", str(grpc), "--http-port", str(http),
             "--out", os.path.join(tmp, "received.jsonl")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(receiver)
        wait_port(grpc, receiver, "receiver")
        cfg = os.path.join(tmp, "agent.yaml")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "agent: {data_dir: '%s'}" % os.path.join(tmp, "data"),
                "collectors:",
                "  system: {enabled: true, interval: 1s}",
                "  node_exporter: {enabled: true, interval: 1s}",
                "telemetryflow: {endpoint: '127.0.0.1:%d'}" % grpc,
                "buffer: {path: '%s'}" % os.path.join(tmp, "buffer"),
                "health: {listen_address: '127.0.0.1:%d'}" % health,
                "prometheus: {listen_address: '127.0.0.1:%d'}" % prom,
            ]) + "\n")
        agent = subprocess.Popen([binary, "-c", cfg, "run"], env=clean_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(agent)
        wait_port(prom, agent, "agent")
        end = time.time() + a.seconds
        while time.time() < end:
            for url in ("http://127.0.0.1:%d/metrics" % prom,
                        "http://127.0.0.1:%d/healthz" % health,
                        "http://127.0.0.1:%d/readyz" % health):
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                except OSError:
                    pass
            time.sleep(2)
        agent.terminate()
        agent.wait(timeout=20)
        pages = resident_pages(binary)
        names = touched_functions(binary, pages)
        with open(a.out, "w") as f:
            f.write("\n".join(names) + "\n")
        print("gen-text-order: %d pages of the binary touched, %d functions written to %s"
              % (len(pages), len(names), a.out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for cmd in (["umount", mnt], ["losetup", "-d", dev]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print("gen-text-order: %s: %s" % (" ".join(cmd), r.stderr.strip()), file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
