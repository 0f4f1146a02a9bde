"""What the benchmark reports share: reading the files that bench/lib.sh's
run_step leaves (NAME.rc, NAME.err, NAME.json, NAME.seconds) and describing
the machine a table was measured on."""

import json
import os
import platform
import re
import subprocess


def read(path):
    """The file's text, stripped; None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def step_failure(folder, step):
    """None when STEP ran and exited 0, else a one-line reason ("not run",
    "timeout after S s", or the last line of its stderr)."""
    rc = read(os.path.join(folder, step + ".rc"))
    if rc is None:
        return "not run"
    if rc in ("124", "137"):
        return f"timeout after {read(os.path.join(folder, step + '.seconds'))} s"
    if rc == "0":
        return None
    lines = [line for line in (read(os.path.join(folder, step + ".err")) or "").splitlines() if line.strip()]
    return re.sub(r"^kiln: error: ", "", lines[-1] if lines else f"exit {rc}")[:300]


def step_json(folder, step):
    """The last line of STEP's stdout parsed as JSON; None when it is not."""
    try:
        return json.loads(read(os.path.join(folder, step + ".json")).splitlines()[-1])
    except (ValueError, AttributeError, IndexError):
        return None


def physical_cores():
    cores, package = set(), "0"
    for line in open("/proc/cpuinfo"):
        if line.startswith("physical id"):
            package = line.split(":")[1].strip()
        elif line.startswith("core id"):
            cores.add((package, line.split(":")[1].strip()))
    return len(cores) or os.cpu_count()


def machine(kiln=None):
    """One line: CPU, threads and cores, the vector extensions that matter,
    RAM, OS, the kiln version (when KILN is given) and the load average."""
    cpuinfo = open("/proc/cpuinfo").read()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 "unknown CPU")
    isa = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")
           if re.search(r"\b" + f + r"\b", cpuinfo)]
    mem = (read("/proc/meminfo") or "").splitlines()[0].split()[1:2]
    mem_gib = f"{int(mem[0]) / 2**20:.0f} GiB" if mem else "?"
    parts = [f"{model}, {os.cpu_count()} hardware threads ({physical_cores()} cores), {', '.join(isa) or 'no AVX-512'}",
             f"{mem_gib} RAM", f"Debian {read('/etc/debian_version') or '?'}, Linux {platform.release()}"]
    if kiln:
        try:
            parts.append(subprocess.run([kiln, "--version"], capture_output=True, text=True).stdout.strip())
        except OSError:
            parts.append("kiln (not found)")
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    parts.append(f"load average {load} when the report was written")
    return "; ".join(parts)
