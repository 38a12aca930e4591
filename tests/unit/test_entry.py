"""How every process of the CLI and the job scripts ends."""

import gc

import click
import pytest

from textcnn.cli import run_process

pytestmark = pytest.mark.unit


def test_a_process_entry_freezes_the_heap_however_the_command_ends():
    """run_process (the console script, python -m textcnn, jobs/*.py) freezes the heap before the
    interpreter exits: its last collection had taken 1-2 s of every process here."""
    @click.command()
    def fails():
        raise SystemExit(3)

    gc.unfreeze()
    try:
        with pytest.raises(SystemExit):
            run_process(fails, args=[])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

