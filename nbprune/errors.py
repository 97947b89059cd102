"""The one exception family nbprune raises for bad input; the command line turns it into exit code 2."""


class NbpruneError(Exception):
    """Bad input: the message names the value, what was expected and how to fix it."""


class DataError(NbpruneError, FileNotFoundError):
    """The dataset folder is missing files or holds corrupt ones."""


class ModelFileError(NbpruneError, ValueError):
    """A model file that is unsafe, unreadable or does not fit the model."""


class ScheduleError(NbpruneError, ValueError):
    """A retention schedule or iteration number that cannot be used."""


class TrainingError(NbpruneError, RuntimeError):
    """Training could not go on (for example the loss became NaN)."""


class InputError(NbpruneError, TypeError, ValueError):
    """Input of the wrong type, dtype or shape for the model (a TypeError and a ValueError, as before)."""


class DivergenceWarning(RuntimeWarning):
    """Training stopped early because the loss became NaN or Inf; the last good model was kept."""


class ConfigError(NbpruneError, ValueError):
    """A setting with a value outside what it allows, or a name that is not a setting."""


class SessionError(NbpruneError, RuntimeError):
    """A session folder that cannot be used now: missing parts, locked by another run, not writable."""


class StorageError(NbpruneError, OSError):
    """A file or folder nbprune must write cannot be written: read-only, full, or in the way."""
