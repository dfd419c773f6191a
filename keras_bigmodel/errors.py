"""The error types for problems a user can cause and fix, and for a run stopped by a signal."""

import signal


class UserError(Exception):
    """Bad usage or bad input: a missing file or column, a wrong value, an invalid config.

    The message names the file, column, row or option at fault and says what to do. The
    command line prints it on one line and exits with code 2; anything else is a bug.
    """


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM, after saving a checkpoint where it had begun.

    A `KeyboardInterrupt`, so that code catching `Exception` lets it through as it would
    Ctrl-C. `train` fills in the run directory and the model; the command line turns it
    into exit code 130 (SIGINT) or 143 (SIGTERM) and a hint with the `--resume` command.

    Attributes:
        signum: the signal that stopped training.
        epoch: epochs completed when it stopped (`None` before training began).
        step: batches completed in the epoch under way.
        run_dir: the run directory that `--resume` continues.
        model: the model name.
        overwrite: whether the run was replacing another (`--overwrite`).
    """

    def __init__(self, signum, epoch=None, step=0):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.epoch = epoch
        self.step = step
        self.run_dir = None
        self.model = None
        self.overwrite = False

    @property
    def exit_code(self):
        """128 plus the signal number, as shells report a process a signal ended."""
        return 128 + int(self.signum)

    def resume_command(self):
        """The command that continues the run."""
        return resume_command(self.model, self.run_dir, overwrite=self.overwrite)

    def where(self):
        """Where training stopped, for people."""
        if self.epoch is None:
            return "before training began"
        return progress_text(self.epoch, self.step)


def resume_command(model, run_dir, overwrite=False):
    """The command that continues an unfinished run (with `--overwrite` for a run that
    replaces another)."""
    flags = " --overwrite" if overwrite else ""
    return f"bigmodel train {model} --out {run_dir}{flags} --resume"


def progress_text(epoch, step):
    """Says where training stands, for people: `epoch` epochs done and `step` batches of
    the next."""
    if not epoch and not step:
        return "before the first batch"
    if step:
        return f"in epoch {epoch + 1} after batch {step}"
    return f"after epoch {epoch}"
