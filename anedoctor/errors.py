"""The errors anedoctor raises on purpose; anything else reaching the CLI is a bug."""


class ModelError(Exception):
    """A model, input or setting that cannot be used; the message names the file, the place and the problem."""


class UnknownName(ModelError, KeyError):
    """A name (op, rule, chip …) that is not there; a KeyError too, so lookups fail the way dicts do."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
