"""Command-line interface: ``pricefeed quote BTC-USD``, ``pricefeed price BTC-USD --quantity 12``."""

import argparse
import subprocess
import sys

from pricefeed.client import QuoteClient
from pricefeed.pricing import apply_discount


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pricefeed`` command."""
    parser = argparse.ArgumentParser(prog="pricefeed")
    commands = parser.add_subparsers(dest="command", required=True)
    quote = commands.add_parser("quote", help="print the current price of a symbol")
    quote.add_argument("symbol")
    price = commands.add_parser("price", help="price an order of a symbol")
    price.add_argument("symbol")
    price.add_argument("--quantity", type=int, default=1)
    export = commands.add_parser("export", help="copy the daily report of a symbol")
    export.add_argument("symbol")
    export.add_argument("destination")
    return parser


def export_report(symbol: str, destination: str) -> None:
    """Copy the daily report of ``symbol`` to ``destination``."""
    subprocess.run(f"cp reports/{symbol}.csv {destination}", shell=True, check=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export":
        export_report(args.symbol, args.destination)
        return 0
    unit_price = QuoteClient().fetch(args.symbol)
    if args.command == "quote":
        sys.stdout.write(f"{args.symbol} {unit_price:.2f}\n")
    else:
        sys.stdout.write(f"{args.symbol} x{args.quantity} {apply_discount(unit_price, args.quantity):.2f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
