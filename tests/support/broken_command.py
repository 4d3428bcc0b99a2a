"""A Click command with a bug in it, for the CLI's internal-error contract test.

Registered in :data:`dlsetup.cli.COMMANDS` by the test only (monkeypatch): production code has
no hook for it.
"""

from __future__ import annotations

import click


@click.command()
@click.option("--json", "as_json", is_flag=True)
def broken(as_json: bool) -> None:
    """Fail the way a bug does: an exception dlsetup does not know."""
    raise ZeroDivisionError("division by zero in a test command")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def leaky(as_json: bool) -> None:
    """Fail with a message that quotes a channel URL with credentials in it."""
    raise RuntimeError("cannot reach https://alice:s3cret@host.invalid/ch/noarch/repodata.json")


class _SignalInFinalizer:
    def __del__(self) -> None:
        import signal

        signal.raise_signal(signal.SIGTERM)  # the handler's exception would be lost here


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--in-callback", is_flag=True, help="In a weakref callback dlsetup cannot spot.")
def swallowed(as_json: bool, in_callback: bool) -> None:
    """Receive SIGTERM where Python drops the handler's exception, then work on for 5 s."""
    import time
    import weakref

    if in_callback:

        class Target:
            pass

        def callback(ref: object) -> None:
            import signal

            signal.raise_signal(signal.SIGTERM)

        target = Target()
        keep = weakref.ref(target, callback)
        del target  # the callback runs here
        assert keep() is None
        click.echo("finished")
        return
    _SignalInFinalizer()  # collected at once: __del__ runs here
    time.sleep(5)
    click.echo("finished")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def wrapped(as_json: bool) -> None:
    """Receive SIGTERM while a class body's ``__set_name__`` runs (a dataclass field as a module
    imports): Python 3.11 turns the handler's exception into ``RuntimeError: Error calling
    __set_name__``, caused by it."""
    import signal

    class Field:
        def __set_name__(self, owner: type, name: str) -> None:
            signal.raise_signal(signal.SIGTERM)

    type("Record", (), {"solve_channels": Field()})
    click.echo("finished")
