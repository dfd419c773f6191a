"""What every benchmark here shares: timing a whole process, and medians."""

import re
import shlex
import statistics
import subprocess


def timed(command, env=None):
    """Runs a command under `/usr/bin/time -v`.

    Returns:
        `(seconds, peak_mb, stdout)`: wall-clock time and peak resident memory of the
        whole process.

    Raises:
        SystemExit: the command failed, with the end of what it printed.
    """
    done = subprocess.run(
        ["/usr/bin/time", "-v", *map(str, command)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(map(str, command))} failed:\n{done.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    seconds = 0.0
    for part in wall[1].split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, int(peak[1]) / 1024, done.stdout


def median(values):
    """The median of the values that are not `None` (`None` if there are none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
