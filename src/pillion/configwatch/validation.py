"""Running a watch's ``validate`` command (e.g. ``nginx -t``) before the app is told."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["ValidationFailed", "validate"]

_TAIL_CHARACTERS = 1000  # of the command's output, in the log


class ValidationFailed(Exception):
    """The command refused the change, timed out or could not run; ``output`` is the
    tail of what it wrote (stdout and stderr together)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


async def validate(command: list[str], time_limit: float) -> None:
    """Run ``command``; ``ValidationFailed`` unless it exits 0 within ``time_limit``."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise ValidationFailed(f"{command[0]}: cannot run: {exc.strerror or exc}") from None
    try:
        async with asyncio.timeout(time_limit):
            output, _ = await process.communicate()
    except TimeoutError:
        raise ValidationFailed(f"{command[0]}: killed after {time_limit:g}s") from None
    finally:
        if process.returncode is None:  # timed out, or Pillion is stopping
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip()[-_TAIL_CHARACTERS:]
        raise ValidationFailed(f"{command[0]} exited {process.returncode}", tail)
