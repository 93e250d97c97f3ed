"""Reading the event files that `rhbuild run --events` writes (one JSON
object per line), for the table scripts of bench/."""
import json
import sys


def read_events(path):
    """The events of one file. A line that is not JSON (cut short by a
    killed run) is skipped and named on standard error, not fatal."""
    events = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except ValueError:
                print(f"{path}:{n}: skipped, not a JSON event", file=sys.stderr)
    return events
