"""The `agentiam` command, installed with the package as a console script.

The command line is compiled into the extension (`agentiam._native.cli`), so `pip install agentiam`
gives `agentiam serve`, `agentiam approvals ...` and `agentiam audit verify` with no Rust toolchain.
"""

from __future__ import annotations

import signal
import sys

from agentiam import _native


def main() -> None:
    """Runs `agentiam` with this process's arguments and exits with its code."""
    # Ctrl-C ends the command as it ends the native binary. Python's own handler only sets a flag
    # that nothing reads while Rust runs; `agentiam serve` installs its own handler and shuts down
    # gracefully (flushing and checkpointing its activity log).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_native.cli(["agentiam", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
