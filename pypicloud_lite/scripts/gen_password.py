"""ppc-gen-password: print the argon2 hash of a password, for `user.<name> = <hash>` in the ini."""

from __future__ import annotations

import argparse
import getpass
import sys

from pypicloud_lite.access.passwords import hash_password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-gen-password", description=__doc__)
    parser.add_argument(
        "--stdin", action="store_true", help="read the password from standard input (the default without a terminal)"
    )
    args = parser.parse_args(argv)
    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("ppc-gen-password: the passwords differ", file=sys.stderr)
            return 1
    if not password:
        print("ppc-gen-password: empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
