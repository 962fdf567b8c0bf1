"""``./run bench [NAME] [ARGS]``: run one benchmark (default ``slice``).

Benchmarks:
  slice   the vertical slice: real RTSP camera → worker → JetStream; time to first alert,
          detector ms per frame, worker CPU, frame age.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    name = argv[0] if argv and not argv[0].startswith("-") else "slice"
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    if name in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if name == "slice":
        from bench.slice import main as run

        return run(rest)
    print(f"unknown benchmark {name!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
