"""The errors anedoctor raises on purpose; anything else reaching the CLI is a bug."""


class ModelError(Exception):
    """A model, input or setting that cannot be used; the message names the file, the place and the problem."""
