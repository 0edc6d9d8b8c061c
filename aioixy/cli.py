"""The ``aioixy`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys


def _loop_runner(use_uvloop: bool):
    if use_uvloop:
        import uvloop

        return uvloop.run
    return asyncio.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aioixy", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="forward packets on the built-in devices, with live rates")
    demo.add_argument("--device", default="null", help="source device (default: null)")
    demo.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--uvloop", action="store_true", help="run on uvloop")
    demo.add_argument("--json", action="store_true", help="print a JSON summary only")
    args = parser.parse_args(argv)

    from aioixy import AioixyError
    from aioixy import demo as demo_mod

    try:
        if args.cmd == "demo":
            run = _loop_runner(args.uvloop)
            result = run(demo_mod.run(args.device, args.duration, args.batch_size,
                                      as_json=args.json))
            return 0 if result.pools_whole and not result.out_of_order else 1
    except AioixyError as exc:
        print(f"aioixy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
